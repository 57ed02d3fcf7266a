"""A drive through a held-out world town: single-frame vs tracked position error (not a test).

Indexes a regular tile grid of a town never used for training (``train.build_index``'s world
source), drives a car along its streets (a panorama every ``--step-m`` metres, rendered like
the CVUSA-layout training data: 65-degree vertical band, north at the centre column), and
localizes each frame alone (the best tile's centre) and through the
:class:`d4g_edge.tracker.Tracker` fed with noisy odometry. Prints mean / median / p90 errors
in metres. Needs the exported students (the random tiny test models give noise).

Usage::

    python -m benchmarks.bench_track --ground artifacts/ground_int8.onnx \
        --satellite artifacts/satellite_int8.onnx --seed 90210 --frames 60 --json track.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from d4g_edge._log import logger, setup_logging
from d4g_edge.build import build_index
from d4g_edge.geo import haversine_m
from d4g_edge.localizer import Localizer
from d4g_edge.tracker import Tracker
from train.tile_sources import WorldTileSource
from train.world import DomainGap


def drive(world, n: int, step_m: float, rng, margin_m: float) -> np.ndarray:
    """(n, 2) east/north positions following the street centrelines."""
    s = world.scene
    pos = world.sample_street_points(1, rng, margin_m=margin_m)[0]
    heading = None
    out = []
    e0, n0, e1, n1 = world.extent_m
    for _ in range(n):
        out.append(pos.copy())
        i = int(np.argmin(((s.street_pts - pos) ** 2).sum(1)))
        d = np.array([np.cos(s.street_dir[i]), np.sin(s.street_dir[i])])  # east, north
        if heading is not None and d @ heading < 0:
            d = -d  # keep driving the same way along the road
        nxt = pos + step_m * d
        if not (e0 + margin_m < nxt[0] < e1 - margin_m and n0 + margin_m < nxt[1] < n1 - margin_m):
            d = -d  # turn back at the edge of the indexed area
            nxt = pos + step_m * d
        pos, heading = nxt, d
    return np.asarray(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    p.add_argument("--ground", type=Path, required=True)
    p.add_argument("--satellite", type=Path, required=True)
    p.add_argument("--bundle", type=Path, default=None, help="reuse/keep the town's bundle here")
    p.add_argument("--seed", type=int, default=90210, help="held-out town seed")
    p.add_argument("--style", default="suburb")
    p.add_argument("--size-m", type=float, default=600.0)
    p.add_argument("--tile-size-m", type=float, default=90.0)
    p.add_argument("--stride-m", type=float, default=15.0)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--step-m", type=float, default=10.0)
    p.add_argument("--odometry-noise", type=float, default=0.1, help="relative distance noise")
    p.add_argument("--pano-size", default="96x512", help="rendered panorama HxW")
    p.add_argument("--vfov", type=float, default=65.0)
    p.add_argument("--temperature", type=float, default=0.02)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    setup_logging()
    src = WorldTileSource(args.seed, args.style, args.size_m, args.tile_size_m, args.stride_m)
    bundle = args.bundle or Path(tempfile.mkdtemp()) / "town"
    if not (bundle / "manifest.json").is_file():
        build_index(src, args.satellite, bundle, ground=args.ground)
    loc = Localizer(bundle)
    tracker = Tracker.from_bundle(loc.bundle, temperature=args.temperature)
    rng = np.random.default_rng(args.seed)
    path = drive(src.world, args.frames, args.step_m, rng, margin_m=args.tile_size_m / 2)
    h, w = (int(v) for v in args.pano_size.split("x"))
    full = round(h * 180.0 / args.vfov)
    georef, single, tracked = src.world.georef, [], []
    for k, pos in enumerate(path):
        gap = DomainGap.sample(rng, 1.0)
        pano = src.world.render_panorama(pos, height=full, width=w, gap=gap, rng=rng)
        pano = np.ascontiguousarray(pano[(full - h) // 2 : (full - h) // 2 + h])
        ids, scores, _ = loc.retrieve(pano, top_k=100, heading=0.0)
        odo = None
        if k:
            move = pos - path[k - 1]
            dist = float(np.hypot(*move)) * (1 + rng.normal(0, args.odometry_noise))
            odo = (dist, float(np.degrees(np.arctan2(move[0], move[1]))) + rng.normal(0, 5))
        fix = tracker.step(ids, scores, odometry=odo)
        lat, lon = georef.metres_to_latlon(*pos)
        t = loc.bundle.tiles
        single.append(float(haversine_m(t.lat[ids[0]], t.lon[ids[0]], lat, lon)))
        tracked.append(float(haversine_m(fix.lat, fix.lon, lat, lon)))
        logger.info(
            "frame %d: single %.1f m, tracked %.1f m (±%.0f)",
            k,
            single[-1],
            tracked[-1],
            fix.uncertainty_m,
        )

    def stats(e):
        e = np.asarray(e)
        return {
            "mean_m": float(e.mean()),
            "median_m": float(np.median(e)),
            "p90_m": float(np.percentile(e, 90)),
            "within_25m": float((e <= 25).mean()),
        }

    report = {
        "town": src.describe(),
        "frames": len(path),
        "step_m": args.step_m,
        "single_frame": stats(single),
        "tracked": stats(tracked),
        "tracked_after_10": stats(tracked[10:]) if len(tracked) > 10 else None,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
