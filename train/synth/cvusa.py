"""Write a synthetic dataset in the official CVUSA layout.

Files (ids 1..train+test, shuffled between the splits as in the release)::

    bingmap/19/0000001.jpg                 satellite tile centred on the panorama
    streetview/panos/0000001.jpg           panorama
    streetview/annotations/0000001.png     all-zero placeholder (the world has no labels)
    split_locations/all.csv                sat_lat,sat_lon,grd_lat,grd_lon,0 (row id-1)
    splits/train-19zl.csv, splits/val-19zl.csv   written last

The fifth column of the release's ``all.csv`` is undocumented; it is written as 0.

Usage::

    write_cvusa(cfg, run_jobs)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from d4g_edge.fileio import atomic_write

from ._config import SynthConfig
from ._pairs import STREAM_IDS, STREAM_VIEWS, pair_jobs, plan_pairs, town_records
from ._photos import run_with_photos
from ._render import ViewJob
from ._towns import derived_seed

BASE_LATLON = (40.0, -88.0)  # the US Midwest, where much of CVUSA lies
OWNED = ("bingmap", "streetview", "splits", "split_locations", "photos.csv")


def _rel(pair_id: int) -> tuple[str, str, str]:
    return (
        f"bingmap/19/{pair_id:07d}.jpg",
        f"streetview/panos/{pair_id:07d}.jpg",
        f"streetview/annotations/{pair_id:07d}.png",
    )


def write_cvusa(cfg: SynthConfig, run: Callable[[Sequence[ViewJob]], None]) -> list[dict]:
    """Render and write every file; returns the towns used (for ``synth_info.json``)."""
    pairs = plan_pairs(cfg, BASE_LATLON)
    rng = np.random.default_rng(derived_seed(cfg.seed, STREAM_IDS))
    ids = rng.permutation(len(pairs)) + 1
    out = cfg.out
    jobs: list[ViewJob] = []
    for pair, pair_id in zip(pairs, ids, strict=True):
        sat, pano, anno = _rel(int(pair_id))
        seed = derived_seed(cfg.seed, STREAM_VIEWS, int(pair_id))
        jobs += pair_jobs(cfg, pair, (str(out / sat),), (str(out / pano),), seed)
        jobs.append(
            ViewJob(pair.town, "blank", (0.0, 0.0), cfg.pano_size, 0.0, 0, (str(out / anno),))
        )
    run_with_photos(cfg, run, jobs)  # the photos (and photos.csv) only with cfg.photos

    by_id = sorted(zip(ids.tolist(), pairs, strict=True))
    # The tile is centred on the panorama, so satellite and ground coordinates coincide.
    atomic_write(
        out / "split_locations/all.csv",
        "".join(f"{p.lat!r},{p.lon!r},{p.lat!r},{p.lon!r},0\n" for _, p in by_id),
    )
    # Split files last: an interrupted run leaves no split that lists unwritten images.
    for split, name in (("train", "train-19zl.csv"), ("test", "val-19zl.csv")):
        rows = ["{},{},{}\n".format(*_rel(i)) for i, p in by_id if p.split == split]
        atomic_write(out / "splits" / name, "".join(rows))
    return town_records(pairs)
