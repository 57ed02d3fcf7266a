"""The drone flights of :mod:`benchmarks.bench_flight`, in the world: flight paths, rendered
camera frames and the ``IMAGE.json`` sidecars ``d4g-edge follow`` reads (the autopilot's
heading, altitude, pitch and noisy odometry), and geotagged frames for calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from d4g_edge.drone import camera_offset_m
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


def render(world, pos, alt, pitch, heading, args, rng) -> np.ndarray:
    return world.render_drone(
        pos,
        altitude_m=float(alt),
        pitch_deg=float(pitch),
        heading_deg=float(heading),
        height=args.frame_px,
        width=args.frame_px,
        gap=DomainGap.sample_drone(rng, 1.0),
        rng=rng,
    )


def write_frames(folder: Path, frames, metas, prefix: str = "frame", start: int = 0) -> Path:
    """PNG frames, each with its ``IMAGE.json`` sidecar."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, (frame, meta) in enumerate(zip(frames, metas, strict=True), start):
        name = folder / f"{prefix}_{k:05d}.png"
        Image.fromarray(frame).save(name)
        name.with_name(name.name + ".json").write_text(json.dumps(meta))
    return folder


def fly(world, args, rng) -> dict:
    """One flight: frames, the sidecars ``follow`` reads, and the truth."""
    path, headings = flight_path(
        world.extent_m, args.frames, args.step_m, rng, margin_m=args.tile_size_m
    )
    altitudes = altitude_profile(args.frames, args.alt_min, args.alt_max)
    frames, metas, offsets, seen_prev = [], [], [], None
    for pos, heading, alt in zip(path, headings, altitudes, strict=True):
        frames.append(render(world, pos, alt, args.pitch, heading, args, rng))
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
                max(0.0, dist),
                float(np.degrees(np.arctan2(move[0], move[1])) + rng.normal(0, 5)),
            ]
        seen_prev = seen
        metas.append(meta)
    return {"frames": frames, "metas": metas, "path": path, "altitudes": altitudes,
            "offsets": offsets}  # fmt: skip


def geotagged_frames(world, args, rng, n: int, folder: Path, start: int = 0) -> None:
    """``n`` frames at random places / altitudes / headings / pitches, sidecar = the truth."""
    e0, n0, e1, n1 = world.extent_m
    m = args.tile_size_m
    frames, metas = [], []
    for _ in range(n):
        pos = rng.uniform([e0 + m, n0 + m], [e1 - m, n1 - m])
        alt = rng.uniform(args.alt_min, args.alt_max)
        heading = rng.uniform(0, 360)
        pitch = 0.0 if rng.uniform() < args.calibration_nadir else rng.uniform(0, 2 * args.pitch)
        frames.append(render(world, pos, alt, pitch, heading, args, rng))
        lat, lon = world.georef.metres_to_latlon(*pos)
        metas.append({"lat": float(lat), "lon": float(lon), "heading_deg": float(heading),
                      "altitude_m": float(alt), "pitch_deg": float(pitch)})  # fmt: skip
    write_frames(folder, frames, metas, "cal", start)
