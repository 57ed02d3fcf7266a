"""A drone flight through a held-out world town: single-frame vs tracked error (not a test).

Indexes a regular grid of satellite tiles of a town never used for training with the drone
family's satellite student, flies a drone over it (straight legs that turn at the edge of
the indexed area, altitude varying between ``--alt-min`` and ``--alt-max``, camera
``--pitch`` degrees from nadir looking ahead), renders a camera frame every ``--step-m``
metres (:meth:`train.world.World.render_drone`, its own domain gap per frame) into a folder
with an ``IMAGE.json`` sidecar per frame (the autopilot's heading, altitude, pitch and noisy
odometry), and runs ``d4g-edge follow`` on that folder: each frame is localized alone and
through the :class:`d4g_edge.tracker.Tracker`; the sidecar's heading and altitude are left
out with ``--no-heading`` / ``--no-altitude``; ``follow`` moves the fix from the point the
frame's centre shows back to the drone with the known pitch. Prints mean / median / p90
errors in metres, writes JSON and a plot of the error curve (``--plot``, needs matplotlib).

Usage::

    python -m benchmarks.bench_flight --drone artifacts/drone_int8.onnx \
        --satellite artifacts/satellite_drone_int8.onnx --frames 60 --plot flight.png
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from d4g_edge.__main__ import main as d4g_edge_cli
from d4g_edge._log import logger, setup_logging
from d4g_edge.build import build_index
from d4g_edge.bundle import Bundle
from d4g_edge.drone import camera_offset_m
from d4g_edge.geo import haversine_m, offset_latlon
from train.tile_sources import WorldTileSource
from train.world import DomainGap


def flight_path(extent, n: int, step_m: float, rng, margin_m: float):
    """(n, 2) east/north positions and (n,) headings: straight legs that turn back inwards
    (by a random angle) when the next step would leave the area."""
    e0, n0, e1, n1 = extent
    lo, hi = np.array([e0 + margin_m, n0 + margin_m]), np.array([e1 - margin_m, n1 - margin_m])
    pos = rng.uniform(lo, hi)
    heading = rng.uniform(0, 360)
    out, headings = [], []
    for _ in range(n):
        out.append(pos.copy())
        headings.append(heading)
        for _ in range(32):
            d = np.array([np.sin(np.radians(heading)), np.cos(np.radians(heading))])
            if np.all((pos + step_m * d > lo) & (pos + step_m * d < hi)):
                break
            heading = (heading + rng.uniform(90, 270)) % 360
        pos = pos + step_m * d
    return np.asarray(out), np.asarray(headings)


def altitude_profile(n: int, lo: float, hi: float) -> np.ndarray:
    """Climb from ``lo`` to ``hi`` and back down over the flight (a smooth cycle)."""
    t = np.linspace(0.0, 2.0 * np.pi, n)
    return lo + (hi - lo) * (1.0 - np.cos(t)) / 2.0


def stats(e) -> dict:
    e = np.asarray(e)
    return {
        "mean_m": float(e.mean()),
        "median_m": float(np.median(e)),
        "p90_m": float(np.percentile(e, 90)),
        "within_25m": float((e <= 25).mean()),
        "within_50m": float((e <= 50).mean()),
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = report["per_frame"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(f["single_m"], ".", color="0.6", label="single frame")
    ax.plot(f["tracked_m"], "-", color="C0", label="tracked")
    ax.set_xlabel("frame")
    ax.set_ylabel("error (m)")
    ax.set_yscale("symlog", linthresh=10)
    alt = ax.twinx()
    alt.plot(f["altitude_m"], "--", color="C2", label="altitude")
    alt.set_ylabel("altitude (m)", color="C2")
    ax.legend(loc="upper left")
    ax.set_title(
        f"drone flight, {report['frames']} frames: tracked median "
        f"{report['tracked']['median_m']:.1f} m, single-frame "
        f"{report['single_frame']['median_m']:.1f} m"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    p.add_argument("--drone", type=Path, required=True, help="drone student (.onnx)")
    p.add_argument("--satellite", type=Path, required=True, help="its satellite partner")
    p.add_argument("--bundle", type=Path, default=None, help="reuse/keep the town's bundle here")
    p.add_argument("--seed", type=int, default=90210, help="held-out town seed")
    p.add_argument("--style", default="suburb")
    p.add_argument("--size-m", type=float, default=800.0)
    p.add_argument("--tile-size-m", type=float, default=120.0)
    p.add_argument("--tile-px", type=int, default=128)
    p.add_argument("--stride-m", type=float, default=30.0)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--step-m", type=float, default=20.0)
    p.add_argument("--alt-min", type=float, default=60.0)
    p.add_argument("--alt-max", type=float, default=240.0)
    p.add_argument("--pitch", type=float, default=20.0, help="camera degrees from nadir")
    p.add_argument("--frame-px", type=int, default=128)
    p.add_argument("--odometry-noise", type=float, default=0.1, help="relative distance noise")
    p.add_argument("--no-heading", action="store_true", help="search the heading instead")
    p.add_argument("--no-altitude", action="store_true", help="ignore the altitude")
    p.add_argument("--temperature", type=float, default=0.02)
    p.add_argument("--frames-dir", type=Path, default=None, help="keep the frames here")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", type=Path, default=None)
    args = p.parse_args()
    setup_logging()
    src = WorldTileSource(
        args.seed, args.style, args.size_m, args.tile_size_m, args.stride_m, tile_px=args.tile_px
    )
    bundle = args.bundle or Path(tempfile.mkdtemp()) / "town"
    if not (bundle / "manifest.json").is_file():
        build_index(src, args.satellite, bundle, ground=args.drone)
    views = Bundle.load(bundle).views
    if views != ("drone",):
        raise SystemExit(f"{bundle} serves {views}, not drone frames")
    rng = np.random.default_rng(args.seed)
    world, georef = src.world, src.world.georef
    path, headings = flight_path(
        world.extent_m, args.frames, args.step_m, rng, margin_m=args.tile_size_m
    )
    altitudes = altitude_profile(args.frames, args.alt_min, args.alt_max)
    frames_dir = args.frames_dir or Path(tempfile.mkdtemp()) / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    offsets, seen_prev = [], None
    for k, (pos, heading, alt) in enumerate(zip(path, headings, altitudes, strict=True)):
        frame = world.render_drone(
            pos,
            altitude_m=float(alt),
            pitch_deg=args.pitch,
            heading_deg=float(heading),
            height=args.frame_px,
            width=args.frame_px,
            gap=DomainGap.sample_drone(rng, 1.0),
            rng=rng,
        )
        # the tracker follows the point the frame's centre shows; the autopilot's odometry
        # (VIO / flow) with the known attitude gives how far that point moved
        offsets.append(camera_offset_m(float(alt), args.pitch, float(heading)))
        seen = pos + offsets[-1]
        meta: dict = {"pitch_deg": args.pitch}
        if not args.no_heading:
            meta["heading_deg"] = float(heading)
        if not args.no_altitude:
            meta["altitude_m"] = float(alt)
        if seen_prev is not None:
            move = seen - seen_prev
            dist = float(np.hypot(*move)) * (1 + rng.normal(0, args.odometry_noise))
            meta["odometry"] = [
                dist,
                float(np.degrees(np.arctan2(move[0], move[1])) + rng.normal(0, 5)),
            ]
        seen_prev = seen
        name = frames_dir / f"frame_{k:04d}.png"
        Image.fromarray(frame).save(name)
        name.with_name(name.name + ".json").write_text(json.dumps(meta))
    out = io.StringIO()
    argv = ["follow", str(frames_dir), "--bundle", str(bundle), "--json"]
    argv += ["--max-frames", str(args.frames), "--idle-timeout", "2", "--top-k", "100"]
    argv += ["--temperature", str(args.temperature)]
    with contextlib.redirect_stdout(out):
        d4g_edge_cli(argv)
    records = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    if len(records) != len(path):
        raise SystemExit(f"d4g-edge follow returned {len(records)} fixes for {len(path)} frames")
    single, tracked = [], []
    for rec, pos, offset in zip(records, path, offsets, strict=True):
        lat, lon = georef.metres_to_latlon(*pos)
        # the single-frame answer: the best tile, moved back to the drone like the fix
        back_lat, back_lon = offset_latlon(
            rec["single_frame_lat"], rec["single_frame_lon"], *(-offset)
        )
        single.append(float(haversine_m(back_lat, back_lon, lat, lon)))
        tracked.append(float(haversine_m(rec["lat"], rec["lon"], lat, lon)))
    logger.info("flight: %d frames in %s", len(records), frames_dir)
    report = {
        "town": src.describe(),
        "frames": len(path),
        "step_m": args.step_m,
        "altitude_m": [args.alt_min, args.alt_max],
        "pitch_deg": args.pitch,
        "heading_known": not args.no_heading,
        "altitude_known": not args.no_altitude,
        "single_frame": stats(single),
        "tracked": stats(tracked),
        "tracked_after_10": stats(tracked[10:]) if len(tracked) > 10 else None,
        "per_frame": {
            "single_m": single,
            "tracked_m": tracked,
            "altitude_m": altitudes.tolist(),
        },
    }
    print(json.dumps({k: v for k, v in report.items() if k != "per_frame"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.plot:
        plot(report, args.plot)
        logger.info("wrote %s", args.plot)


if __name__ == "__main__":
    main()
