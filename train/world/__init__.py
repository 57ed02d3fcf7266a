"""Procedural cross-view world: a seeded 2.5-D town rendered as satellite tiles and panoramas.

Usage::

    from train.world import World, DomainGap, TOWN_STYLES
    world = World.generate(seed=0, style="suburb")
"""

from train.world._gap import DomainGap, DomainGapError
from train.world._styles import TOWN_STYLES, TownStyle, UnknownStyleError, get_style
from train.world.world import OutsideWorldError, World

__all__ = [
    "TOWN_STYLES",
    "DomainGap",
    "DomainGapError",
    "OutsideWorldError",
    "TownStyle",
    "UnknownStyleError",
    "World",
    "get_style",
]
