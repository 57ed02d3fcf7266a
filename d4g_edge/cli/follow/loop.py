"""The ``d4g-edge follow`` loop: each frame localized, tracked, printed and published.

A frame that cannot be used is skipped with one warning; the loop goes on. SIGINT (exit 130)
and SIGTERM (exit 143) end it with a message after closing the MAVLink connection, as do
``--max-frames`` and ``--idle-timeout`` (exit 0).

Usage::

    run_follow(args)     # args: the parsed flags of d4g_edge.cli.follow.parser
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
import threading
from pathlib import Path

from d4g_edge import drone
from d4g_edge.cli.follow.errors import SidecarError
from d4g_edge.cli.follow.frames import FrameFolder, camera_frames, camera_index
from d4g_edge.cli.follow.mavlink import MavlinkPublisher, check_quality
from d4g_edge.cli.follow.mavlink_url import parse_mavlink_url
from d4g_edge.cli.follow.sidecars import FrameMeta, read_sidecar
from d4g_edge.cli.output import dumps
from d4g_edge.cli.output import printable as show
from d4g_edge.errors import ImageError, SearchError
from d4g_edge.ground_query import exif_fov
from d4g_edge.log import logger

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells


class _Stopped(BaseException):
    """SIGINT / SIGTERM arrived: end the loop (BaseException: no ``except Exception`` eats it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stop(signum, frame):
    raise _Stopped(signum)


def _install_signals() -> dict:
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in EXIT_SIGNAL:
            old[sig] = signal.signal(sig, _raise_stop)
    return old


def run_follow(args: argparse.Namespace) -> int:
    """Run ``d4g-edge follow`` with the parsed flags; returns the exit status."""
    check_quality(args.good_m, args.poor_m)
    camera = args.source.startswith("camera:")
    if camera:
        camera_index(args.source)
    else:
        folder = FrameFolder(
            Path(args.source),
            interval_s=args.interval,
            settle_s=args.settle,
            idle_timeout_s=args.idle_timeout,
            retries=args.retries,
        )
    target = parse_mavlink_url(args.mavlink) if args.mavlink is not None else None
    pub, counts = None, {"frames": 0, "fixes": 0, "skipped": 0}
    old = _install_signals()
    try:
        if target is not None:
            pub = MavlinkPublisher(
                target, args.good_m, args.poor_m, max_yaw_sigma_deg=args.yaw_sigma_max
            )
        frames = camera_frames(args.source) if camera else folder
        _loop(args, frames, None if camera else folder, pub, counts)
        logger.info("follow: %(frames)d frames, %(fixes)d fixes, %(skipped)d skipped", counts)
        return 0
    except (_Stopped, KeyboardInterrupt) as stop:
        signum = stop.signum if isinstance(stop, _Stopped) else signal.SIGINT
        for sig in old:  # a second Ctrl-C while closing must not turn into a traceback
            signal.signal(sig, signal.SIG_IGN)
        if pub is not None:
            pub.close()
        print(
            f"follow: stopped by {signal.Signals(signum).name} after {counts['frames']} frames "
            f"({counts['fixes']} fixes){'; MAVLink connection closed' if pub else ''}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_SIGNAL[signum]
    finally:
        if pub is not None:
            pub.close()  # idempotent
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _loop(args, frames, folder: FrameFolder | None, pub, counts: dict) -> None:
    from d4g_edge.image import load_rgb
    from d4g_edge.localizer import Localizer
    from d4g_edge.tracker import Tracker

    loc = Localizer(args.bundle, threads=args.threads)
    tracker = Tracker.from_bundle(
        loc.bundle,
        loc.calibration,  # read once, by the Localizer
        walk_sigma_m=args.walk_sigma_m,
        temperature=args.temperature,
    )
    top_k = min(args.top_k, len(loc.bundle.tiles))
    for item in frames:
        path = item if isinstance(item, Path) else None
        try:
            rgb = load_rgb(item)
        except ImageError as err:
            if folder is not None and path is not None and folder.retry(path):
                logger.debug("frame %s not readable yet (%s); will retry", show(path), err)
                continue
            counts["frames"] += 1
            counts["skipped"] += 1
            logger.warning("skipping frame %s: %s", show(path) if path else "", show(err))
        else:
            counts["frames"] += 1
            record = _step(args, loc, tracker, pub, path, rgb, top_k, counts)
            if record is not None:
                counts["fixes"] += 1
                _print(record, args.json)
        if args.max_frames and counts["frames"] >= args.max_frames:
            return


def _frame_meta(path: Path | None, name: str) -> FrameMeta:
    """The frame's sidecar values (none for a camera frame); what cannot be used is warned
    about and left out, never fatal."""
    meta = FrameMeta()
    if path is not None:
        try:
            meta = read_sidecar(path)
        except SidecarError as err:
            logger.warning("frame %s: %s", name, show(err))
        if meta.problems:
            dropped = "; ".join(show(p) for p in meta.problems)
            logger.warning("frame %s: sidecar fields ignored: %s", name, dropped)
    return meta


def _step(args, loc, tracker, pub, path, rgb, top_k, counts) -> dict | None:
    name = show(path) if path is not None else str(counts["frames"])
    meta = _frame_meta(path, name)
    known = meta.heading_deg if meta.heading_deg is not None else args.heading
    altitude = meta.altitude_m if meta.altitude_m is not None else args.altitude
    pitch = meta.pitch_deg if meta.pitch_deg is not None else args.pitch
    flight = {"altitude_m": altitude} if loc.view == "drone" else {}
    fov = meta.fov_deg  # a phone frame's field of view: the sidecar's, else its EXIF's
    try:
        if fov is None and path is not None and loc.view != "drone":
            fov = exif_fov(path, rgb.shape)
        obs = loc.observe(rgb, top_k=top_k, heading=known, fov_deg=fov, **flight)
    except (ImageError, SearchError) as err:  # one bad frame must not stop the loop
        counts["skipped"] += 1
        logger.warning("skipping frame %s: %s", name, show(err))
        return None
    ids, heading = obs.ids, obs.heading_deg
    # the tracker takes the frame's single-frame status: a not_in_map frame is no evidence,
    # and only agreeing confident frames lock the track (d4g_edge.tracker)
    fix = tracker.track(obs, odometry=meta.odometry)
    if loc.view == "drone":  # the track follows what the frames show; the drone is behind it
        fix = _behind_camera(fix, drone.Flight(altitude_m=altitude, pitch_deg=pitch), heading)
    if not all(math.isfinite(v) for v in (fix.lat, fix.lon, fix.uncertainty_m)):
        logger.warning("frame %s: the track became non-finite; starting a new track", name)
        tracker.reset()
        if pub is not None:
            pub.send(0.0, 0.0, math.nan, usable=False)
        counts["skipped"] += 1
        return None
    usable = bool(fix.locked)  # a position source says "no fix" until frames agree
    if pub is not None:
        # the frame's calibrated heading error (the track carries no heading of its own)
        sigma = None if known is not None else obs.fix.heading_sigma_deg
        pub.send(
            fix.lat,
            fix.lon,
            fix.uncertainty_m,
            usable=usable,
            heading_deg=heading if known is not None or sigma is not None else None,
            heading_sigma_deg=sigma,
        )
    return {
        "frame": name,
        "lat": fix.lat,
        "lon": fix.lon,
        "uncertainty_m": fix.uncertainty_m,
        "usable": usable,
        "status": fix.status,
        "coverage": fix.coverage,
        "frame_status": obs.fix.status,
        "heading_deg": heading,
        "single_frame_lat": float(loc.bundle.tiles.lat[ids[0]]),
        "single_frame_lon": float(loc.bundle.tiles.lon[ids[0]]),
    }


def _behind_camera(fix, flight: drone.Flight, heading_deg: float):
    """The tracker's fix moved from the point the frames' centres show back to the drone
    (:func:`d4g_edge.drone.camera_to_drone`; unchanged without altitude and pitch)."""
    if not flight.offset_known:
        return fix
    lat, lon = drone.camera_to_drone(fix.lat, fix.lon, flight, heading_deg)
    return dataclasses.replace(fix, lat=float(lat), lon=float(lon))


def _print(record: dict, as_json: bool) -> None:
    if as_json:  # strict JSON: a non-finite number is null, never NaN
        print(dumps(record), flush=True)
    else:
        print(
            f"{record['frame']}: lat {record['lat']:.6f} lon {record['lon']:.6f} "
            f"±{record['uncertainty_m']:.0f} m{'' if record['usable'] else '  (no fix)'}",
            flush=True,
        )
