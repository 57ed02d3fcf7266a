"""Rendering jobs: one view of one town to one or more files, run in a process pool.

A :class:`ViewJob` is small and picklable and carries its own seed, so the bytes of every
file depend only on the job, never on which worker ran it or in what order. Each view draws
its own :class:`train.world.DomainGap` (season, sun, sensor, changed objects), which is
what makes the two views of a pair look like two different sensors at two times.

Every file is written to a temporary name in its directory and renamed into place, so a
crash leaves no truncated image behind.

Usage::

    run_jobs([ViewJob(town, "satellite", (120.0, -300.0), (256, 256), 0.35, seed, (path,))],
             workers=4)
"""

from __future__ import annotations

import functools
import io
import multiprocessing as mp
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from d4g_edge.fileio import atomic_write

from ._towns import TownSpec, get_world

KINDS = ("satellite", "panorama", "blank")


@dataclass(frozen=True)
class ViewJob:
    town: TownSpec
    kind: str  # "satellite" (north-up tile), "panorama", or "blank" (all-zero label PNG)
    position_en: tuple[float, float]  # tile centre or camera position, local metres
    size: tuple[int, int]  # (height, width) in pixels
    gsd_m: float  # satellite metres per pixel (unused for panoramas)
    seed: int
    paths: tuple[str, ...]  # every path receives the same bytes
    gap_strength: float = 1.0
    jpeg_quality: int = 92
    vfov_deg: float = 180.0  # panoramas: vertical field of view, centred on the horizon


def save_image_atomic(path: Path, image: np.ndarray, quality: int = 92) -> None:
    """Write an image (format from the suffix) via a temporary file and ``os.replace``."""
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    options = {"quality": quality} if fmt == "JPEG" else {"optimize": False}
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    atomic_write(path, buffer.getvalue())


def render(job: ViewJob) -> np.ndarray:
    """The job's image as (H, W, 3) uint8, or (H, W) uint8 zeros for ``blank``."""
    if job.kind == "blank":
        return np.zeros(job.size, dtype=np.uint8)
    from train.world import DomainGap

    world = get_world(job.town)
    rng = np.random.default_rng(job.seed)
    gap = DomainGap.sample(rng, job.gap_strength)
    if job.kind == "satellite":
        if job.size[0] != job.size[1]:
            raise ValueError(f"satellite tiles are square, got {job.size}")
        return world.render_satellite(
            job.position_en, size_px=job.size[0], gsd_m=job.gsd_m, gap=gap, rng=rng
        )
    if job.kind == "panorama":
        # A narrower field of view is the middle band of a taller full-sphere panorama, so
        # the angular resolution stays that of ``size`` and the horizon stays centred.
        height = job.size[0]
        full = max(height, round(height * 180.0 / job.vfov_deg))
        pano = world.render_panorama(
            job.position_en, height=full, width=job.size[1], gap=gap, rng=rng
        )
        top = (full - height) // 2
        return np.ascontiguousarray(pano[top : top + height])
    raise ValueError(f"unknown job kind {job.kind!r}; expected one of {KINDS}")


def _run_one(render_fn: Callable, job) -> int:
    image = render_fn(job)
    for p in job.paths:
        save_image_atomic(Path(p), image, job.jpeg_quality)
    return len(job.paths)


def run_jobs(
    jobs: Sequence, workers: int = 1, desc: str = "render", render_fn: Callable = render
) -> None:
    """Render and write every job, in ``workers`` processes, with a progress bar.
    ``render_fn`` (module level, so workers can unpickle it) turns a job into its image; a
    job has ``paths`` and ``jpeg_quality``."""
    write = functools.partial(_run_one, render_fn)
    if workers <= 1 or len(jobs) < 2:
        for job in tqdm(jobs, desc=desc, unit="img"):
            write(job)
        return
    # fork lets workers inherit the towns already generated in this process; where fork is
    # unavailable each worker regenerates them from the TownSpec (same bytes, just slower).
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else None)
    chunk = max(1, min(16, len(jobs) // (workers * 8)))
    with ctx.Pool(workers) as pool:
        for _ in tqdm(
            pool.imap_unordered(write, jobs, chunk), total=len(jobs), desc=desc, unit="img"
        ):
            pass
