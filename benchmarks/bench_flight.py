"""Drone flights through a held-out world town: single-frame vs tracked error, and the
track's promise (not a test).

Indexes a regular grid of satellite tiles of a town never used for training with the drone
family's satellite student, flies a drone over it (straight legs that turn at the edge of
the indexed area, altitude varying between ``--alt-min`` and ``--alt-max``, camera
``--pitch`` degrees from nadir looking ahead), renders a camera frame every ``--step-m``
metres (:meth:`train.world.World.render_drone`, its own domain gap per frame) into a folder
with an ``IMAGE.json`` sidecar per frame (the autopilot's heading, altitude, pitch and noisy
odometry), and runs ``d4g-edge follow --json`` on that folder: each frame is localized alone
and through the :class:`d4g_edge.tracker.Tracker`; the sidecar's heading and altitude are left
out with ``--no-heading`` / ``--no-altitude``; ``follow`` moves the fix from the point the
frame's centre shows back to the drone with the known pitch.

Trust. ``--calibration-frames N`` first calibrates the town's bundle to "the user's map": N
geotagged drone frames at random places, altitudes, headings and pitches of the same town
(their own random stream; sidecar lat/lon = the drone, plus ``heading_deg``, ``altitude_m``,
``pitch_deg``; ``--calibration-nadir`` of them straight down, the only frames
:mod:`d4g_edge.build.calibrate` turns into heading-searched and prior rows) and
``--calibration-negatives`` frames over another town with their true lat/lon (outside the
bundle), through :func:`d4g_edge.build.calibrate.calibrate`. Each flight then reports the share of
frames ``follow`` calls usable (the track locked), how often the truth lies within
``uncertainty_m`` on those frames, their median radius, and a table of the published
``horiz_accuracy`` (radius / 2.4477, :mod:`d4g_edge.cli.follow`) against the true error.
``--fit-flights K`` fits the track's margin on the first K of ``--flights`` (the
split-conformal quantile of error minus the posterior radius over their usable frames, as
``benchmarks.bench_track --fit-drives``), writes it into the bundle's calibration
(``track.margin_m``, which ``follow``'s tracker reads) and reports on the other flights.
``--never-lock`` streams ``--negative-frames`` black, i.i.d.-noise and blurred-noise frames and
``--negative-flights`` flights over a town ~1,000 km away through ``follow``; none may be
usable. Prints JSON, writes it (``--json``) and a plot of the first reported flight
(``--plot``, needs matplotlib).

The flights themselves (paths, frames, sidecars) are in :mod:`benchmarks._flight_frames`,
their scoring in :mod:`benchmarks._flight_score`.

Usage::

    python -m benchmarks.bench_flight --drone artifacts/drone/drone_int8.onnx \\
        --satellite artifacts/drone/satellite_int8.onnx --frames 60 --plot flight.png
    python -m benchmarks.bench_flight --drone artifacts/drone/drone_int8.onnx \\
        --satellite artifacts/drone/satellite_int8.onnx --bundle runs/flight/town \\
        --calibration-frames 800 --flights 4 --fit-flights 2 --frames 60 --never-lock \\
        --negative-frames 60 --json runs/flight/flight.json     # + --no-heading
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from benchmarks._flight_frames import fly, geotagged_frames, write_frames
from benchmarks._flight_score import accuracy_table, flight_summary, score_flight
from benchmarks.bench_track import SIGMA_OF_R95
from d4g_edge.build.builder import build_index
from d4g_edge.build.calibrate import calibrate, write_calibration
from d4g_edge.bundle import Bundle
from d4g_edge.cli.app import main as d4g_edge_cli
from d4g_edge.log import logger, setup_logging
from d4g_edge.trust import Calibration, conformal_quantile
from train.tile_sources import WorldTileSource

CAL_STREAM, NEG_STREAM, NEVER_STREAM = 10_001, 10_002, 99  # rng streams beside the flights


def calibrate_town(args, src, bundle: Path, work: Path) -> dict:
    """Calibrate the flight's bundle on geotagged frames of its own town (+ negatives)."""
    folder = work / "calibration"
    rng = np.random.default_rng([args.seed, CAL_STREAM])
    geotagged_frames(src.world, args, rng, args.calibration_frames, folder)
    n_neg = args.calibration_negatives
    if n_neg is None:
        n_neg = args.calibration_frames // 4
    if n_neg:
        other = WorldTileSource(args.seed + 2, args.style, args.size_m, args.tile_size_m,
                                args.stride_m, origin=(35.0, -110.0))  # fmt: skip
        rng = np.random.default_rng([args.seed, NEG_STREAM])
        geotagged_frames(other.world, args, rng, n_neg, folder, start=args.calibration_frames)
    logger.info("calibrating %s on %s", bundle, folder)
    cmd = f"bench_flight seed {args.seed}: {args.calibration_frames} frames + {n_neg} negatives"
    _, report = calibrate(bundle, folder, command=cmd)
    report = {k: report[k] for k in ("coverage_asked", "coverage_fit", "coverage_cv",
              "ok_rate_of_right_cv", "frames", "rows", "rows_in_map", "seconds")}  # fmt: skip
    logger.info("calibration: %s", json.dumps(report))
    return {**report, "negative_frames": n_neg}


def follow(folder: Path, bundle: Path, n: int, args) -> list[dict]:
    """``d4g-edge follow --json`` over a frame folder; one record per frame."""
    out = io.StringIO()
    argv = ["follow", str(folder), "--bundle", str(bundle), "--json"]
    argv += ["--max-frames", str(n), "--idle-timeout", "2", "--top-k", "100"]
    argv += ["--temperature", str(args.temperature)]
    with contextlib.redirect_stdout(out):
        d4g_edge_cli(argv)
    records = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    if len(records) != n:
        raise SystemExit(f"d4g-edge follow returned {len(records)} fixes for {n} frames")
    return records


def run_flights(args, src, bundle: Path, work: Path, ks) -> list[list[dict]]:
    out = []
    for k in ks:
        # flight 0 is the flight this benchmark always flew (the town's seed as its stream)
        rng = np.random.default_rng(args.seed if k == 0 else [args.seed, k])
        flight = fly(src.world, args, rng)
        folder = write_frames(work / f"flight_{k}", flight["frames"], flight["metas"])
        recs = score_flight(follow(folder, bundle, args.frames, args), flight, src.world.georef)
        for i, (r, alt) in enumerate(zip(recs, flight["altitudes"], strict=True)):
            r.update(k=i, altitude_m=float(alt))
        logger.info("flight %d: %d frames in %s", k, len(recs), folder)
        out.append(recs)
    return out


def fit_margin(args, bundle: Path, fit_recs: list[dict]) -> dict:
    """The track margin from the fit flights' usable frames, written into the bundle."""
    cal = Calibration.from_bundle(Bundle.load(bundle))
    if cal is None:
        raise SystemExit(f"{bundle} holds no calibration: add --calibration-frames")
    m0 = float(cal.track.get("margin_m", 0.0))
    locked = [r for r in fit_recs if r["locked"]]
    # follow prints the radius with the margin in force; the filter's own is that less it
    excess = np.array([max(0.0, r["error_m"] - (r["radius_m"] - m0)) for r in locked])
    margin = conformal_quantile(excess, cal.coverage)
    every = np.array([max(0.0, r["error_m"] - (r["radius_m"] - m0)) for r in fit_recs])
    every = conformal_quantile(every, cal.coverage)
    fit = {
        "margin_m": margin if np.isfinite(margin) else None,  # None: too few usable frames
        "fit_frames": len(locked),
        "margin_before_m": m0,
        # what the margin would be over every frame, usable or not (a diagnostic)
        "margin_all_frames_m": every if np.isfinite(every) else None,
    }
    if not np.isfinite(margin):
        logger.warning("only %d usable frames in the fit flights: margin not written", len(locked))
        return fit
    how = f"bench_flight seed {args.seed}, flights 0..{args.fit_flights - 1}"
    track = {**cal.track, "margin_m": margin, "fit_frames": len(locked), "fit": how}
    write_calibration(bundle, replace(cal, track=track))
    logger.info("track margin %.1f m from %d usable frames", margin, len(locked))
    return fit


def never_lock(args, bundle: Path, work: Path) -> dict:
    """Streams with nothing of the map in them, through follow: usable frames per stream."""
    n = args.negative_frames
    rng = np.random.default_rng([args.seed, NEVER_STREAM])
    far = WorldTileSource(args.seed + 1, "downtown", args.size_m, args.tile_size_m,
                          args.stride_m, origin=(47.0, -100.0))  # fmt: skip
    short = replace_frames(args, n)
    flights = [fly(far.world, short, rng)]  # the first on the stream the others share
    flights += [fly(far.world, short, np.random.default_rng([args.seed, NEVER_STREAM, j]))
                for j in range(1, args.negative_flights)]  # fmt: skip
    px = args.frame_px

    def blurred():
        noise = Image.fromarray(rng.integers(0, 256, (px, px, 3), dtype=np.uint8))
        return np.asarray(noise.filter(ImageFilter.GaussianBlur(rng.uniform(1, 6))))

    streams = {
        "black": [np.zeros((px, px, 3), np.uint8)] * n,
        "noise": [rng.integers(0, 256, (px, px, 3), dtype=np.uint8) for _ in range(n)],
        "blurred noise": [blurred() for _ in range(n)],
    }
    streams |= {f"flight {j} 1,000 km away": f["frames"] for j, f in enumerate(flights)}
    out = {}
    for i, (name, frames) in enumerate(streams.items()):
        # the autopilot's sidecars (heading, altitude, odometry) come with every frame
        metas = flights[max(0, i - 3)]["metas"]
        folder = write_frames(work / f"never_{i}", frames, metas)
        recs = follow(folder, bundle, n, args)
        out[name] = {
            "frames": n,
            "usable_frames": int(sum(r["usable"] for r in recs)),
            "frame_status": dict(Counter(r["frame_status"] for r in recs)),
            # what follow prints as uncertainty_m while it publishes no fix
            "median_radius_m": float(np.median([r["uncertainty_m"] or np.inf for r in recs])),
        }
        logger.info("never-lock %s: %s", name, out[name])
    return out


def replace_frames(args, n: int) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "frames": n})


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = report["per_frame"][0]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(f["single_m"], ".", color="0.6", label="single frame")
    ax.plot(f["tracked_m"], "-", color="C0", label="tracked")
    radius = [r if u else np.nan for r, u in zip(f["radius_m"], f["usable"], strict=True)]
    ax.plot(radius, ":", color="C3", label="95 % radius (usable)")
    ax.set_xlabel("frame")
    ax.set_ylabel("error (m)")
    ax.set_yscale("symlog", linthresh=10)
    alt = ax.twinx()
    alt.plot(f["altitude_m"], "--", color="C2", label="altitude")
    alt.set_ylabel("altitude (m)", color="C2")
    ax.legend(loc="upper left")
    ax.set_title(
        f"drone flight, {len(f['tracked_m'])} frames: tracked median "
        f"{np.median(f['tracked_m']):.1f} m, single-frame {np.median(f['single_m']):.1f} m, "
        f"usable {np.mean(f['usable']):.0%}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse_args(argv=None) -> argparse.Namespace:
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
    p.add_argument("--flights", type=int, default=1, help="flights in all (fit + reported)")
    p.add_argument("--fit-flights", type=int, default=0, help="flights that fit the margin")
    p.add_argument("--frames", type=int, default=60, help="frames per flight")
    p.add_argument("--step-m", type=float, default=20.0)
    p.add_argument("--alt-min", type=float, default=60.0)
    p.add_argument("--alt-max", type=float, default=240.0)
    p.add_argument("--pitch", type=float, default=20.0, help="camera degrees from nadir")
    p.add_argument("--frame-px", type=int, default=128)
    p.add_argument("--odometry-noise", type=float, default=0.1, help="relative distance noise")
    p.add_argument("--no-heading", action="store_true", help="search the heading instead")
    p.add_argument("--no-altitude", action="store_true", help="ignore the altitude")
    p.add_argument("--temperature", type=float, default=0.02)
    p.add_argument(
        "--calibration-frames",
        type=int,
        default=0,
        help="calibrate the bundle on this many geotagged frames of the town first",
    )
    p.add_argument(
        "--calibration-negatives",
        type=int,
        default=None,
        help="frames over another town among them (default: a quarter as many)",
    )
    p.add_argument(
        "--calibration-nadir",
        type=float,
        default=0.6,
        help="share of calibration frames straight down (the others: pitch 0..2x --pitch); "
        "only nadir frames give d4g-edge calibrate heading-searched and prior rows",
    )
    p.add_argument("--never-lock", action="store_true", help="streams that must never lock")
    p.add_argument("--negative-frames", type=int, default=30, help="frames per never-lock stream")
    p.add_argument("--negative-flights", type=int, default=3, help="flights 1,000 km away")
    p.add_argument("--frames-dir", type=Path, default=None, help="keep the frames here")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", type=Path, default=None)
    args = p.parse_args(argv)  # fmt: skip
    if not 0 <= args.fit_flights < args.flights:
        p.error("--fit-flights must leave at least one of --flights to report on")
    return args


def town_bundle(args) -> tuple[Path, WorldTileSource]:
    src = WorldTileSource(
        args.seed, args.style, args.size_m, args.tile_size_m, args.stride_m, tile_px=args.tile_px
    )
    bundle = args.bundle or Path(tempfile.mkdtemp()) / "town"
    if not (bundle / "manifest.json").is_file():
        build_index(src, args.satellite, bundle, ground=args.drone)
    views = Bundle.load(bundle).views
    if views != ("drone",):
        raise SystemExit(f"{bundle} serves {views}, not drone frames")
    return bundle, src


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    bundle, src = town_bundle(args)
    work = args.frames_dir or Path(tempfile.mkdtemp()) / "frames"
    cal = calibrate_town(args, src, bundle, work) if args.calibration_frames else None
    fit = run_flights(args, src, bundle, work, range(args.fit_flights))
    margin = fit_margin(args, bundle, [r for rs in fit for r in rs]) if fit else None
    flights = run_flights(args, src, bundle, work, range(args.fit_flights, args.flights))
    flat = [r for rs in flights for r in rs]
    report = {
        "town": src.describe(),
        "frames_per_flight": args.frames,
        "step_m": args.step_m,
        "altitude_m": [args.alt_min, args.alt_max],
        "pitch_deg": args.pitch,
        "heading_known": not args.no_heading,
        "altitude_known": not args.no_altitude,
        "calibration": cal,
        "track_margin": margin,
        "flights": [flight_summary(rs) for rs in flights],
        "reported_flights": flight_summary(flat),
        "horiz_accuracy_vs_error": accuracy_table(flat),
        # what follow prints on every frame, usable or not (never published unless usable)
        "printed_accuracy_vs_error_all_frames": accuracy_table(
            [r | {"locked": True} for r in flat]
        ),
        "horiz_accuracy_sigma_of_r95": SIGMA_OF_R95,
        "never_lock": never_lock(args, bundle, work) if args.never_lock else None,
    }
    keys = (
        ("single_m", "single_m"),
        ("tracked_m", "error_m"),
        ("radius_m", "radius_m"),
        ("usable", "locked"),
        ("frame_status", "frame_status"),
        ("altitude_m", "altitude_m"),
    )
    report["per_frame"] = [{k: [r[key] for r in rs] for k, key in keys} for rs in flights]
    print(json.dumps({k: v for k, v in report.items() if k != "per_frame"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.plot:
        plot(report, args.plot)
        logger.info("wrote %s", args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
