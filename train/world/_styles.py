"""Town styles: the parameters that make a suburb look unlike a downtown or a farm area.

A style fixes distributions (block sizes, building sizes/heights, palettes, land cover), a
seed draws one town from them. Train and test areas use different seeds (and may use
different styles), so evaluation is cross-area.

Usage::

    style = get_style("suburb")
    style.block_m  # (min, max) road spacing in metres
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

RGB = tuple[int, int, int]


class UnknownStyleError(ValueError):
    """The requested town style is not in TOWN_STYLES."""


@dataclass(frozen=True)
class TownStyle:
    """Distributions of one kind of town (all lengths in metres)."""

    name: str
    # road network: a jittered grid at a random angle, thinned, plus long arterials
    block_m: tuple[float, float]
    road_wiggle_m: float  # amplitude of the sinusoidal meander of grid roads
    road_drop_prob: float  # fraction of grid road segments removed (dead ends, superblocks)
    n_arterials: tuple[int, int]
    local_width_m: tuple[float, float]
    arterial_width_m: tuple[float, float]
    sidewalk_m: float
    # buildings are placed on lots along the roads
    lot_frontage_m: tuple[float, float]
    lot_depth_m: tuple[float, float]
    setback_m: tuple[float, float]
    building_prob: float
    urban_weight: float  # how much the built-up field thins buildings out (0: not at all)
    floors: tuple[int, int]
    floor_h_m: float
    gabled_prob: float
    roof_palette: tuple[RGB, ...]
    facade_palette: tuple[RGB, ...]
    dynamic_building_frac: float  # buildings that appear/disappear between capture epochs
    # vegetation, land cover, terrain
    street_tree_spacing_m: float  # 0 = no street trees
    yard_trees_per_lot: float
    tree_radius_m: tuple[float, float]
    forest_frac: float
    crop_frac: float
    paved_frac: float  # plazas / parking lots instead of lawn between buildings
    water: str  # "none" | "lake" | "coast"
    relief_m: float
    cars_per_100m: float


_ROOFS_WARM: tuple[RGB, ...] = (
    (150, 70, 55),
    (120, 60, 50),
    (90, 85, 85),
    (70, 70, 75),
    (160, 110, 80),
)
_ROOFS_FLAT: tuple[RGB, ...] = (
    (170, 170, 165),
    (140, 140, 140),
    (110, 105, 100),
    (190, 185, 175),
    (95, 100, 110),
)
_FACADES: tuple[RGB, ...] = (
    (215, 205, 185),
    (190, 170, 150),
    (225, 220, 210),
    (170, 150, 130),
    (200, 190, 170),
)
_FACADES_CITY: tuple[RGB, ...] = (
    (160, 160, 165),
    (180, 165, 140),
    (140, 120, 105),
    (200, 200, 205),
    (120, 130, 140),
)
_FACADES_COAST: tuple[RGB, ...] = (
    (240, 235, 225),
    (230, 215, 190),
    (200, 220, 230),
    (235, 225, 200),
)

STYLES: dict[str, TownStyle] = {
    "suburb": TownStyle(
        name="suburb",
        block_m=(90.0, 150.0),
        road_wiggle_m=10.0,
        road_drop_prob=0.15,
        n_arterials=(1, 2),
        local_width_m=(6.5, 9.0),
        arterial_width_m=(13.0, 17.0),
        sidewalk_m=1.8,
        lot_frontage_m=(18.0, 28.0),
        lot_depth_m=(9.0, 14.0),
        setback_m=(5.0, 9.0),
        building_prob=0.8,
        urban_weight=1.0,
        floors=(1, 2),
        floor_h_m=3.0,
        gabled_prob=0.75,
        roof_palette=_ROOFS_WARM,
        facade_palette=_FACADES,
        dynamic_building_frac=0.12,
        street_tree_spacing_m=14.0,
        yard_trees_per_lot=1.2,
        tree_radius_m=(2.0, 4.5),
        forest_frac=0.1,
        crop_frac=0.0,
        paved_frac=0.05,
        water="lake",
        relief_m=6.0,
        cars_per_100m=3.0,
    ),
    "downtown": TownStyle(
        name="downtown",
        block_m=(70.0, 110.0),
        road_wiggle_m=1.0,
        road_drop_prob=0.05,
        n_arterials=(2, 3),
        local_width_m=(10.0, 14.0),
        arterial_width_m=(18.0, 24.0),
        sidewalk_m=3.5,
        lot_frontage_m=(14.0, 34.0),
        lot_depth_m=(18.0, 32.0),
        setback_m=(0.5, 2.0),
        building_prob=0.93,
        urban_weight=0.3,
        floors=(3, 14),
        floor_h_m=3.5,
        gabled_prob=0.05,
        roof_palette=_ROOFS_FLAT,
        facade_palette=_FACADES_CITY,
        dynamic_building_frac=0.08,
        street_tree_spacing_m=20.0,
        yard_trees_per_lot=0.1,
        tree_radius_m=(2.0, 3.5),
        forest_frac=0.0,
        crop_frac=0.0,
        paved_frac=0.8,
        water="none",
        relief_m=3.0,
        cars_per_100m=5.0,
    ),
    "rural": TownStyle(
        name="rural",
        block_m=(220.0, 420.0),
        road_wiggle_m=25.0,
        road_drop_prob=0.35,
        n_arterials=(1, 2),
        local_width_m=(5.0, 6.5),
        arterial_width_m=(8.0, 11.0),
        sidewalk_m=0.0,
        lot_frontage_m=(30.0, 70.0),
        lot_depth_m=(10.0, 24.0),
        setback_m=(8.0, 25.0),
        building_prob=0.3,
        urban_weight=1.0,
        floors=(1, 2),
        floor_h_m=3.2,
        gabled_prob=0.85,
        roof_palette=_ROOFS_WARM,
        facade_palette=_FACADES,
        dynamic_building_frac=0.15,
        street_tree_spacing_m=0.0,
        yard_trees_per_lot=2.0,
        tree_radius_m=(2.5, 5.5),
        forest_frac=0.25,
        crop_frac=0.6,
        paved_frac=0.0,
        water="lake",
        relief_m=14.0,
        cars_per_100m=0.6,
    ),
    "coastal": TownStyle(
        name="coastal",
        block_m=(80.0, 130.0),
        road_wiggle_m=6.0,
        road_drop_prob=0.12,
        n_arterials=(1, 2),
        local_width_m=(6.0, 8.5),
        arterial_width_m=(12.0, 16.0),
        sidewalk_m=2.0,
        lot_frontage_m=(14.0, 24.0),
        lot_depth_m=(9.0, 16.0),
        setback_m=(3.0, 6.0),
        building_prob=0.85,
        urban_weight=1.0,
        floors=(1, 4),
        floor_h_m=3.0,
        gabled_prob=0.35,
        roof_palette=_ROOFS_FLAT + _ROOFS_WARM[:2],
        facade_palette=_FACADES_COAST,
        dynamic_building_frac=0.12,
        street_tree_spacing_m=18.0,
        yard_trees_per_lot=0.5,
        tree_radius_m=(1.5, 3.0),
        forest_frac=0.05,
        crop_frac=0.0,
        paved_frac=0.25,
        water="coast",
        relief_m=8.0,
        cars_per_100m=3.5,
    ),
}

TOWN_STYLES: tuple[str, ...] = tuple(STYLES)


def get_style(name: str) -> TownStyle:
    """The style called ``name``; an unknown name lists the valid ones and the closest."""
    if name not in STYLES:
        close = difflib.get_close_matches(name, TOWN_STYLES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownStyleError(
            f"unknown town style {name!r}; expected one of {sorted(TOWN_STYLES)}.{hint}"
        )
    return STYLES[name]
