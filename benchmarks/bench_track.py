"""Drives through a held-out world town: single-frame vs tracked error, and the track's
promise (not a test).

Indexes a regular tile grid of a town never used for training (``tools.build_index``'s world
source) with the model's calibration copied in from ``--calibration`` (the bundled default's
fit: a new map uses its model's fit until ``d4g-edge calibrate`` refits it), drives a car
along its streets (a panorama every ``--step-m`` metres, north at the centre column), and
feeds each frame's :class:`~d4g_edge.localizer.Observation` to the
:class:`~d4g_edge.tracker.Tracker` with noisy odometry. Reports per drive the errors, the
share of frames the track is locked, and how often the truth lies inside the radius of a
locked fix; then streams that must never lock: black frames, noise, and a drive through
another town far away. ``--fit-drives K`` fits the track's radius margin on the first K drives
(the split-conformal quantile of error minus posterior radius over their locked frames) and
reports on the others; ``--write-calibration`` stores that margin in the ``--calibration``
bundle's fit (``track.margin_m``), where every tracker built from a bundle with that fit
finds it. The published ``horiz_accuracy`` is the radius / 2.4477 (:mod:`d4g_edge.cli.follow`).

Usage::

    python -m benchmarks.bench_track --ground artifacts/default/ground_int8.onnx \\
        --satellite artifacts/default/satellite_int8.onnx --drives 6 --fit-drives 2 \\
        --frames 40 --json runs/track.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._phone_walk import walk_photos
from d4g_edge.build.builder import build_index
from d4g_edge.build.calibrate import write_calibration
from d4g_edge.geo import haversine_m
from d4g_edge.localizer import DEFAULT_BUNDLE, Localizer
from d4g_edge.log import logger, setup_logging
from d4g_edge.tracker import Tracker
from d4g_edge.trust import Calibration, conformal_quantile
from train.tile_sources import WorldTileSource
from train.world import DomainGap

SIGMA_OF_R95 = 2.4477  # a circular 2-D Gaussian's 95 % radius in sigmas (sqrt(-2 ln 0.05))


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


def render_drive(world, path, rng, size: tuple[int, int], vfov: float) -> list[np.ndarray]:
    h, w = size
    full = round(h * 180.0 / vfov)
    frames = []
    for pos in path:
        pano = world.render_panorama(pos, height=full, width=w, gap=DomainGap.sample(rng), rng=rng)
        frames.append(np.ascontiguousarray(pano[(full - h) // 2 : (full - h) // 2 + h]))
    return frames


def odometry(path, rng, noise: float) -> list:
    odo = [None]
    for a, b in itertools.pairwise(path):
        move = b - a
        dist = max(0.0, float(np.hypot(*move)) * (1 + rng.normal(0, noise)))
        odo.append((dist, float(np.degrees(np.arctan2(move[0], move[1]))) + rng.normal(0, 5)))
    return odo


def run_stream(loc, tracker, frames, truths, odo, heading, fov_deg=None) -> list[dict]:
    """Each frame through observe + track; truths: (lat, lon) per frame or None; heading:
    one for every frame (None: searched) or a list, one per frame (a phone's compass)."""
    tracker.reset()
    recs = []
    headings = heading if isinstance(heading, list) else [heading] * len(frames)
    for frame, truth, o, h in zip(frames, truths, odo, headings, strict=True):
        obs = loc.observe(frame, top_k=100, heading=h, fov_deg=fov_deg)
        fix = tracker.track(obs, odometry=o)
        rec = {
            "single_status": obs.fix.status,
            "single_radius_m": obs.fix.uncertainty_m,
            "locked": fix.locked,
            "radius_m": fix.uncertainty_m,
            "raw_radius_m": fix.posterior_radius_m * tracker.track_scale,
        }
        if truth is not None:
            rec["single_error_m"] = float(haversine_m(obs.fix.lat, obs.fix.lon, *truth))
            rec["error_m"] = float(haversine_m(fix.lat, fix.lon, *truth))
        recs.append(rec)
    return recs


def drive_summary(recs: list[dict]) -> dict:
    err = np.array([r["error_m"] for r in recs])
    single = np.array([r["single_error_m"] for r in recs])
    single_r = np.array([np.inf if r["single_radius_m"] is None else r["single_radius_m"]
                         for r in recs])  # fmt: skip
    locked = np.array([r["locked"] for r in recs])
    radius = np.array([r["radius_m"] for r in recs])
    out = {
        "frames": len(recs),
        "single_median_m": float(np.median(single)),
        "single_within_25m": float((single <= 25).mean()),
        "single_radius_coverage": float((single <= single_r).mean()),
        "single_ok_share": float(np.mean([r["single_status"] == "ok" for r in recs])),
        "tracked_median_m": float(np.median(err)),
        "locked_share": float(locked.mean()),
        "coverage_locked": float((err[locked] <= radius[locked]).mean()) if locked.any() else None,
        "median_radius_locked_m": float(np.median(radius[locked])) if locked.any() else None,
        "error_locked_median_m": float(np.median(err[locked])) if locked.any() else None,
    }
    return out


def accuracy_table(recs: list[dict]) -> list[dict]:
    """Published horiz_accuracy (locked frames) against the true error, in bins."""
    locked = [r for r in recs if r["locked"]]
    if not locked:
        return []
    acc = np.array([r["radius_m"] / SIGMA_OF_R95 for r in locked])
    err = np.array([r["error_m"] for r in locked])
    edges = np.unique(np.quantile(acc, np.linspace(0, 1, 5)))
    rows = []
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        # each frame in one bin: [lo, hi), the last bin closed
        sel = (acc >= lo) & ((acc < hi) if k < len(edges) - 2 else (acc <= hi))
        if sel.any():
            rows.append({
                "horiz_accuracy_m": f"{lo:.1f}-{hi:.1f}",
                "frames": int(sel.sum()),
                "error_median_m": float(np.median(err[sel])),
                "error_p95_m": float(np.percentile(err[sel], 95)),
                "within_r95": float((err[sel] <= acc[sel] * SIGMA_OF_R95).mean()),
            })  # fmt: skip
    return rows


def town_bundle(args) -> tuple[Path, WorldTileSource]:
    src = WorldTileSource(args.seed, args.style, args.size_m, args.tile_size_m, args.stride_m)
    bundle = args.bundle or Path(tempfile.mkdtemp()) / "town"
    if not (bundle / "manifest.json").is_file():
        build_index(src, args.satellite, bundle, ground=args.ground)
    if args.calibration is not None:
        from d4g_edge.bundle import Bundle

        cal = Calibration.from_bundle(Bundle.load(args.calibration))
        if cal is None:
            raise SystemExit(f"{args.calibration} holds no calibration")
        write_calibration(bundle, cal)
    return bundle, src


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    p.add_argument("--ground", type=Path, required=True)
    p.add_argument("--satellite", type=Path, required=True)
    p.add_argument("--bundle", type=Path, default=None, help="reuse/keep the town's bundle here")
    p.add_argument(
        "--calibration",
        type=Path,
        default=DEFAULT_BUNDLE,
        help="bundle whose calibration the town's bundle takes (the model's fit)",
    )
    p.add_argument("--seed", type=int, default=90210, help="held-out town seed")
    p.add_argument("--style", default="suburb")
    p.add_argument("--size-m", type=float, default=600.0)
    p.add_argument("--tile-size-m", type=float, default=90.0)
    p.add_argument("--stride-m", type=float, default=45.0)
    p.add_argument("--drives", type=int, default=4)
    p.add_argument("--fit-drives", type=int, default=0, help="drives that fit the track margin")
    p.add_argument(
        "--write-calibration",
        action="store_true",
        help="store the fitted margin in --calibration's fit",
    )
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--negative-frames", type=int, default=30)
    p.add_argument("--step-m", type=float, default=10.0)
    p.add_argument("--odometry-noise", type=float, default=0.1, help="relative distance noise")
    p.add_argument("--pano-size", default="128x512", help="rendered panorama HxW")
    p.add_argument("--vfov", type=float, default=180.0)
    p.add_argument("--walks", type=int, default=0, help="phone walks (photos, issue 23)")
    p.add_argument("--walk-step-m", type=float, default=5.0)
    p.add_argument("--phone-fov", type=float, default=70.0, help="the phone's horizontal FoV")
    p.add_argument("--compass-sigma", type=float, default=10.0, help="compass error, degrees")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)  # fmt: skip


def render_drives(args, src, size) -> list[tuple]:
    """Each drive's frames, true positions and odometry (drive ``d`` on stream [seed, d])."""
    georef = src.world.georef
    drives = []
    for d in range(args.drives):
        rng = np.random.default_rng([args.seed, d])
        path = drive(src.world, args.frames, args.step_m, rng, margin_m=args.tile_size_m / 2)
        frames = render_drive(src.world, path, rng, size, args.vfov)
        truths = [tuple(float(v) for v in georef.metres_to_latlon(*pos)) for pos in path]
        drives.append((frames, truths, odometry(path, rng, args.odometry_noise)))
        logger.info("drive %d rendered", d)
    return drives


def phone_walks(args, loc, tracker, src, size) -> dict:
    """Walks of ``--walks`` pedestrians taking phone photos (:mod:`benchmarks._phone_walk`),
    tracked with the compass heading and with the heading searched: summaries per kind."""
    georef = src.world.georef
    recs = {"compass heading": [], "heading searched": []}
    for w in range(args.walks):
        rng = np.random.default_rng([args.seed, 500 + w])
        path = drive(src.world, args.frames, args.walk_step_m, rng, args.tile_size_m / 2)
        panos = render_drive(src.world, path, rng, size, args.vfov)
        photos, compass = walk_photos(panos, path, rng, args.phone_fov, args.compass_sigma)
        truths = [tuple(float(v) for v in georef.metres_to_latlon(*pos)) for pos in path]
        odo = odometry(path, rng, args.odometry_noise)
        for name, heading in (("compass heading", compass), ("heading searched", None)):
            recs[name] += run_stream(loc, tracker, photos, truths, odo, heading, args.phone_fov)
        logger.info("phone walk %d done", w)
    return {
        "walks": args.walks,
        "fov_deg": args.phone_fov,
        "compass_sigma_deg": args.compass_sigma,
        **{name: drive_summary(r) for name, r in recs.items()},
    }


def fit_margin(args, tracker, bundle: Path, fit_results: list[list[dict]]) -> None:
    """The track margin from the fit drives' locked frames (the split-conformal quantile of
    error minus the filter's radius), set on ``tracker`` and, with ``--write-calibration``,
    stored in ``--calibration``'s fit and the town's bundle."""
    fit = [r for rs in fit_results for r in rs if r["locked"]]
    excess = np.array([max(0.0, r["error_m"] - r["raw_radius_m"]) for r in fit])
    tracker.margin_m = conformal_quantile(excess, tracker.coverage)
    logger.info("track margin %.1f m from %d locked frames", tracker.margin_m, len(fit))
    if args.write_calibration:
        from dataclasses import replace

        from d4g_edge.bundle import Bundle

        cal = Calibration.from_bundle(Bundle.load(args.calibration))
        track = {
            **cal.track,
            "margin_m": tracker.margin_m,
            "fit_frames": len(fit),
            "fit": f"bench_track seed {args.seed}, drives 0..{args.fit_drives - 1}",
        }
        write_calibration(args.calibration, replace(cal, track=track))
        write_calibration(bundle, replace(cal, track=track))


def never_lock(args, loc, tracker, size) -> dict:
    """Streams that must never lock (black, noise, a drive 1,000 km away): locked frames."""
    rng = np.random.default_rng([args.seed, 99])
    n = args.negative_frames
    far = WorldTileSource(args.seed + 1, "downtown", args.size_m, args.tile_size_m,
                          args.stride_m, origin=(47.0, -100.0))  # fmt: skip
    far_path = drive(far.world, n, args.step_m, rng, margin_m=args.tile_size_m / 2)
    negatives = {
        "black": [np.zeros((*size, 3), np.uint8)] * n,
        "noise": [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)],
        "drive 1,000 km away": render_drive(far.world, far_path, rng, size, args.vfov),
    }
    neg = {}
    for name, frames in negatives.items():
        odo = odometry(far_path, rng, args.odometry_noise)[:n]
        recs = run_stream(loc, tracker, frames, [None] * n, odo, heading=None)
        neg[name] = {"frames": n, "locked_frames": int(sum(r["locked"] for r in recs))}
    return neg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    bundle, src = town_bundle(args)
    loc = Localizer(bundle, threads=1)
    tracker = Tracker.from_bundle(loc.bundle)
    size = tuple(int(v) for v in args.pano_size.split("x"))
    drives = render_drives(args, src, size)
    results = [run_stream(loc, tracker, *dr, heading=0.0) for dr in drives]
    if args.fit_drives:
        fit_margin(args, tracker, bundle, results[: args.fit_drives])
        # the reported drives run again, under the fitted margin
        results = results[: args.fit_drives] + [
            run_stream(loc, tracker, *dr, heading=0.0) for dr in drives[args.fit_drives :]
        ]
    report_drives = results[args.fit_drives :]
    flat = [r for rs in report_drives for r in rs]
    report = {
        "town": src.describe(),
        "track_margin_m": tracker.margin_m,
        "drives": [drive_summary(rs) for rs in report_drives],
        "all_report_drives": drive_summary(flat),
        "horiz_accuracy_vs_error": accuracy_table(flat),
        "never_lock": never_lock(args, loc, tracker, size),
    }
    if args.walks:
        report["phone_walks"] = phone_walks(args, loc, tracker, src, size)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
