"""Towns of the procedural world that a synthetic dataset is drawn from.

A town is fully described by a picklable :class:`TownSpec`; worker processes rebuild (or,
after ``fork``, inherit) the same :class:`train.world.World` from it, so rendering in any
process gives the same bytes. Train and test towns never share a seed, which makes every
layout cross-area: the test split shows places (and styles) never seen in training.

Usage::

    specs = town_specs(cfg, "train", n_towns=2, base=(40.0, -88.0))
    world = get_world(specs[0])
    points = street_points(world, n=100, seed=(cfg.seed, 1, 0), margin_m=70.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from d4g_edge.geo import offset_latlon

if TYPE_CHECKING:
    from train.world import World

_TOWN_GAP_M = 2000.0  # empty land between neighbouring towns' extents
_TOWNS_PER_ROW = 8


@dataclass(frozen=True)
class TownSpec:
    seed: int
    style: str
    origin_lat: float  # top-left corner of the town raster
    origin_lon: float
    size_m: float


_WORLDS: dict[TownSpec, World] = {}


def get_world(spec: TownSpec) -> World:
    """The town's world, generated once per process (forked workers inherit the cache)."""
    world = _WORLDS.get(spec)
    if world is None:
        from train.world import World  # deferred: `python -m train.synth --help` stays fast

        world = World.generate(
            seed=spec.seed,
            style=spec.style,
            size_m=spec.size_m,
            origin_lat=spec.origin_lat,
            origin_lon=spec.origin_lon,
        )
        _WORLDS[spec] = world
    return world


def derived_seed(*entropy: int) -> int:
    """A 63-bit seed that depends on every entropy value (numpy SeedSequence hashing)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1, np.uint64)[0] >> 1)


def town_specs(
    seed: int, first: int, count: int, base: tuple[float, float], size_m: float, stream: int
) -> list[TownSpec]:
    """``count`` towns numbered from ``first``, laid out on a grid east/south of ``base``.

    The style cycles through ``TOWN_STYLES`` with the town number, so consecutive towns (and
    hence the first train and first test town) look different.
    """
    from train.world import TOWN_STYLES

    specs = []
    pitch = size_m + _TOWN_GAP_M
    for k in range(first, first + count):
        row, col = divmod(k, _TOWNS_PER_ROW)
        lat, lon = (float(v) for v in offset_latlon(*base, col * pitch, -row * pitch))
        specs.append(
            TownSpec(
                seed=derived_seed(seed, stream, k),
                style=TOWN_STYLES[k % len(TOWN_STYLES)],
                origin_lat=round(lat, 6),
                origin_lon=round(lon, 6),
                size_m=size_m,
            )
        )
    return specs


def street_points(world: World, n: int, seed: int, margin_m: float) -> np.ndarray:
    """(n, 2) east/north metres where a street-view car could stand, deterministic in seed."""
    rng = np.random.default_rng(seed)
    return np.asarray(world.sample_street_points(n, rng, margin_m=margin_m), dtype=np.float64)


def split_counts(total: int, parts: int) -> list[int]:
    """``total`` items over ``parts`` groups as evenly as possible, larger groups first."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]
