"""One-tile-per-panorama pairs (CVUSA, CVACT): where they are and how to render them.

Train pairs come from the first ``ceil(train / pairs_per_town)`` towns, test pairs from
the next towns, so the test split is cross-area. The tile of a pair is centred on the
panorama's position, as in both releases.

Usage::

    pairs = plan_pairs(cfg, base=(40.0, -88.0))
    jobs = pair_jobs(cfg, pairs[0], sat_path, pano_path, seed=7)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ._config import SynthConfig
from ._render import ViewJob
from ._towns import TownSpec, derived_seed, get_world, split_counts, street_points, town_specs

STREAM_TOWNS, STREAM_POINTS, STREAM_VIEWS, STREAM_IDS = 1, 2, 3, 4


@dataclass(frozen=True)
class Pair:
    split: str  # "train" | "test"
    town: TownSpec
    east: float
    north: float
    lat: float
    lon: float


def plan_pairs(cfg: SynthConfig, base: tuple[float, float]) -> list[Pair]:
    """Train then test pairs, each drawn from its own towns around ``base`` (lat, lon)."""
    n_train_towns = math.ceil(cfg.train / cfg.pairs_per_town)
    n_test_towns = math.ceil(cfg.test / cfg.pairs_per_town)
    towns = town_specs(
        cfg.seed, 0, n_train_towns + n_test_towns, base, cfg.town_size_m, STREAM_TOWNS
    )
    margin = 0.75 * cfg.tile_m  # > half the tile diagonal: the whole tile lies inside the town
    pairs: list[Pair] = []
    for split, split_towns, total in (
        ("train", towns[:n_train_towns], cfg.train),
        ("test", towns[n_train_towns:], cfg.test),
    ):
        for town, n in zip(split_towns, split_counts(total, len(split_towns)), strict=True):
            world = get_world(town)
            points = street_points(
                world, n, derived_seed(cfg.seed, STREAM_POINTS, town.seed), margin
            )
            lat, lon = world.georef.metres_to_latlon(points[:, 0], points[:, 1])
            pairs += [
                Pair(split, town, float(e), float(n_), float(la), float(lo))
                for (e, n_), la, lo in zip(points, lat, lon, strict=True)
            ]
    return pairs


def town_records(pairs: list[Pair]) -> list[dict]:
    """One record per town in first-use order: its split and the TownSpec fields."""
    seen: dict[TownSpec, str] = {}
    for p in pairs:
        seen.setdefault(p.town, p.split)
    return [{"split": split, **dataclasses.asdict(town)} for town, split in seen.items()]


def pair_jobs(
    cfg: SynthConfig, pair: Pair, sat_paths: tuple[str, ...], pano_paths: tuple[str, ...], seed: int
) -> list[ViewJob]:
    """The satellite and panorama jobs of one pair, each with its own seed (domain gap)."""
    common = dict(
        town=pair.town,
        position_en=(pair.east, pair.north),
        gap_strength=cfg.gap_strength,
        jpeg_quality=cfg.jpeg_quality,
    )
    return [
        ViewJob(
            kind="satellite",
            size=(cfg.sat_size, cfg.sat_size),
            gsd_m=cfg.gsd_m,
            seed=derived_seed(seed, 0),
            paths=sat_paths,
            **common,
        ),
        ViewJob(
            kind="panorama",
            size=cfg.pano_size,
            vfov_deg=cfg.pano_vfov_deg,
            gsd_m=cfg.gsd_m,
            seed=derived_seed(seed, 1),
            paths=pano_paths,
            **common,
        ),
    ]
