"""Throughput of the procedural world: pairs/s, ms per satellite tile and per panorama.

Not a test: prints a table and optionally writes JSON. Numpy here is single-threaded, so
this measures one core; set OMP_NUM_THREADS=1 to be sure no BLAS thread pool joins in.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.bench_world --json /tmp/bench_world.json
    python -m benchmarks.bench_world --style downtown --pairs 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger, setup_logging
from train.world import TOWN_STYLES, DomainGap, World


@dataclass(frozen=True)
class BenchConfig:
    style: str = "suburb"
    seed: int = 0
    size_m: float = 1200.0
    pairs: int = 60
    sat_size: int = 256
    gsd_m: float = 0.3
    pano_height: int = 128
    pano_width: int = 512
    gap_strength: float = 1.0


def run(cfg: BenchConfig) -> dict:
    t0 = time.perf_counter()
    world = World.generate(cfg.seed, cfg.style, size_m=cfg.size_m)
    gen_s = time.perf_counter() - t0
    rng = np.random.default_rng(cfg.seed)
    pts = world.sample_street_points(cfg.pairs + 2, rng)
    # warm-up (lazy per-world acceleration structures are built on first use)
    world.render_panorama(pts[-1], cfg.pano_height, cfg.pano_width)
    world.render_satellite(pts[-2], cfg.sat_size, cfg.gsd_m)
    sat_s, pano_s = [], []
    for p in tqdm(pts[: cfg.pairs], desc="pairs", disable=None):
        gs, gg = DomainGap.sample(rng, cfg.gap_strength), DomainGap.sample(rng, cfg.gap_strength)
        t = time.perf_counter()
        world.render_satellite(p, cfg.sat_size, cfg.gsd_m, gap=gs, rng=rng)
        sat_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        world.render_panorama(p, cfg.pano_height, cfg.pano_width, gap=gg, rng=rng)
        pano_s.append(time.perf_counter() - t)
    total = float(np.sum(sat_s) + np.sum(pano_s))
    return {
        "config": asdict(cfg),
        "pairs_per_s": cfg.pairs / total,
        "sat_ms_mean": 1e3 * float(np.mean(sat_s)),
        "sat_ms_p90": 1e3 * float(np.percentile(sat_s, 90)),
        "pano_ms_mean": 1e3 * float(np.mean(pano_s)),
        "pano_ms_p90": 1e3 * float(np.percentile(pano_s, 90)),
        "world_gen_s": gen_s,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": platform.processor() or platform.machine(),
    }


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2))


def main(argv: list[str] | None = None) -> dict:
    setup_logging()
    defaults = BenchConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", choices=sorted(TOWN_STYLES), default=defaults.style)
    for name in ("seed", "pairs", "sat_size", "pano_height", "pano_width"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("size_m", "gsd_m", "gap_strength"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = vars(ap.parse_args(argv))
    out = args.pop("json")
    cfg = BenchConfig(**args)
    logger.info("bench_world %s", cfg)
    res = run(cfg)
    rows = [
        ("pairs/s", f"{res['pairs_per_s']:.1f}"),
        ("ms / satellite", f"{res['sat_ms_mean']:.1f} (p90 {res['sat_ms_p90']:.1f})"),
        ("ms / panorama", f"{res['pano_ms_mean']:.1f} (p90 {res['pano_ms_p90']:.1f})"),
        ("world gen s", f"{res['world_gen_s']:.2f}"),
    ]
    table = "\n".join(f"{k:<16} {v}" for k, v in rows)
    logger.info(
        "%s %.0f m, sat %dpx @ %.2f m, pano %dx%d\n%s",
        cfg.style,
        cfg.size_m,
        cfg.sat_size,
        cfg.gsd_m,
        cfg.pano_height,
        cfg.pano_width,
        table,
    )
    if out is not None:
        _write_json(out, res)
    return res


if __name__ == "__main__":
    main()
