"""``d4g-edge follow``: a drone companion loop — frames in, tracked fixes out (and MAVLink).

Frames come from a folder watched for new images (processed in name order once their size
is stable, so a half-written file is never read), or from a camera through OpenCV
(``camera:0``) when it is installed. An ``IMAGE.json`` sidecar may carry odometry since the
previous frame, ``{"odometry": [metres, heading_deg]}``, and for drone frames (a bundle of a
drone student) the autopilot's ``heading_deg``, ``altitude_m`` above ground and camera
``pitch_deg`` from nadir (:mod:`d4g_edge.drone`); the tracker follows the point the frames'
centres show and the fix is moved back to the drone when pitch and altitude are known.
Each frame is localized (:class:`~d4g_edge.localizer.Localizer`, top-k retrieval), fused by the
:class:`~d4g_edge.tracker.Tracker`, printed, and with ``--mavlink URL`` sent to an autopilot
as ``GPS_INPUT`` (pymavlink, optional extra ``d4g-edge[mavlink]``). Fix quality maps to the
message: ``horiz_accuracy`` = the tracker's uncertainty (m), ``hdop`` = uncertainty / 5 m
(HDOP x a 5 m range error), ``fix_type`` 3 below ``--good-m``, 2 below ``--poor-m``, else 1
(no fix: autopilots ignore it); ``satellites_visible`` 10 / 6 / 0 alike, because ArduPilot
gates on it; altitude, vertical and velocity fields are flagged as ignored.

Usage::

    d4g-edge follow frames/ --bundle town --mavlink udpout:127.0.0.1:14550
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from d4g_edge._log import logger
from d4g_edge.errors import D4GEdgeError, ImageError, SearchError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
GPS_EPOCH = 315_964_800  # 1980-01-06 in Unix seconds
GPS_LEAP_S = 18  # GPS - UTC since 2017


def watch_folder(
    folder: Path, interval_s: float = 0.2, idle_timeout_s: float | None = None
) -> Iterator[Path]:
    """New image files of ``folder`` in name order, each once, when fully written."""
    if not folder.is_dir():
        raise D4GEdgeError(f"frame folder {folder} does not exist")
    seen: set[Path] = set()
    sizes: dict[Path, int] = {}
    last_new = time.monotonic()
    while True:
        fresh = []
        for p in sorted(folder.iterdir()):
            if p in seen or p.suffix.lower() not in FRAME_SUFFIXES or p.name.startswith("."):
                continue
            size = p.stat().st_size
            if sizes.get(p) == size and size > 0:  # unchanged since the last poll
                fresh.append(p)
            sizes[p] = size
        for p in fresh:
            seen.add(p)
            last_new = time.monotonic()
            yield p
        if idle_timeout_s is not None and time.monotonic() - last_new > idle_timeout_s:
            return
        time.sleep(interval_s)


def camera_frames(spec: str) -> Iterator[np.ndarray]:
    try:
        import cv2
    except ImportError:
        raise D4GEdgeError(f"{spec} needs OpenCV: pip install opencv-python-headless") from None
    cap = cv2.VideoCapture(int(spec.split(":", 1)[1] or 0))
    if not cap.isOpened():
        raise D4GEdgeError(f"cannot open {spec}")
    while True:
        ok, bgr = cap.read()
        if not ok:
            return
        yield np.ascontiguousarray(bgr[..., ::-1])


class MavlinkPublisher:
    """Sends ``GPS_INPUT`` to ``url`` (pymavlink connection string)."""

    def __init__(self, url: str, good_m: float = 25.0, poor_m: float = 100.0, system: int = 1):
        try:
            from pymavlink import mavutil
        except ImportError:
            raise D4GEdgeError(
                "--mavlink needs pymavlink: pip install 'd4g-edge[mavlink]'"
            ) from None
        self.m = mavutil.mavlink
        self.conn = mavutil.mavlink_connection(
            url, source_system=system, source_component=self.m.MAV_COMP_ID_ONBOARD_COMPUTER
        )
        self.good_m, self.poor_m = good_m, poor_m

    def quality(self, uncertainty_m: float) -> tuple[int, int]:
        """(fix_type, satellites_visible) for an uncertainty."""
        if uncertainty_m <= self.good_m:
            return self.m.GPS_FIX_TYPE_3D_FIX, 10
        if uncertainty_m <= self.poor_m:
            return self.m.GPS_FIX_TYPE_2D_FIX, 6
        return self.m.GPS_FIX_TYPE_NO_FIX, 0

    def send(self, lat: float, lon: float, uncertainty_m: float, heading_deg: float | None):
        m, now = self.m, time.time()
        gps_s = now - GPS_EPOCH + GPS_LEAP_S
        week, week_s = divmod(gps_s, 7 * 86400)
        ignore = (
            m.GPS_INPUT_IGNORE_FLAG_ALT
            | m.GPS_INPUT_IGNORE_FLAG_VDOP
            | m.GPS_INPUT_IGNORE_FLAG_VEL_HORIZ
            | m.GPS_INPUT_IGNORE_FLAG_VEL_VERT
            | m.GPS_INPUT_IGNORE_FLAG_SPEED_ACCURACY
            | m.GPS_INPUT_IGNORE_FLAG_VERTICAL_ACCURACY
        )
        fix_type, sats = self.quality(uncertainty_m)
        yaw = 0 if heading_deg is None else round(heading_deg * 100) % 36000 or 36000
        self.conn.mav.gps_input_send(
            int(now * 1e6),
            0,
            ignore,
            int(week_s * 1000),
            int(week),
            fix_type,
            round(lat * 1e7),
            round(lon * 1e7),
            0.0,
            float(np.clip(uncertainty_m / 5.0, 0.5, 99.0)),
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            float(uncertainty_m),
            0.0,
            sats,
            yaw,
        )


def add_follow_parser(sub, bundle_help: str) -> None:
    p = sub.add_parser("follow", help="track a stream of frames; publish fixes over MAVLink")
    p.add_argument("source", help="folder watched for new frames, or camera:N (OpenCV)")
    p.add_argument("--bundle", type=Path, default=None, help=bundle_help)
    p.add_argument("--mavlink", default=None, help="e.g. udpout:127.0.0.1:14550 (GPS_INPUT)")
    p.add_argument("--top-k", type=int, default=100, help="tiles scored per frame (default 100)")
    p.add_argument("--heading", type=float, default=None, help="known heading (deg), else search")
    p.add_argument("--altitude", type=float, default=None, help="drone: metres above ground")
    p.add_argument("--pitch", type=float, default=None, help="drone: camera degrees from nadir")
    p.add_argument("--walk-sigma-m", type=float, default=10.0, help="motion blur without odometry")
    p.add_argument("--temperature", type=float, default=0.02, help="score -> likelihood scale")
    p.add_argument("--good-m", type=float, default=25.0, help="3D fix below this uncertainty")
    p.add_argument("--poor-m", type=float, default=100.0, help="2D fix below this, else no fix")
    p.add_argument("--interval", type=float, default=0.2, help="folder poll interval (s)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--idle-timeout", type=float, default=None, help="stop after S s idle")
    p.add_argument("--threads", type=int, default=None, help="encoder threads")
    p.add_argument("--json", action="store_true", help="print one JSON line per fix")


def _sidecar(path: Path | None) -> dict:
    sidecar = path.with_name(path.name + ".json") if path is not None else None
    if sidecar is None or not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ImageError(f"{sidecar}: not a JSON object ({err})") from None
    if not isinstance(meta, dict):
        raise ImageError(f"{sidecar}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _odometry(meta: dict):
    odo = meta.get("odometry")
    return None if odo is None else (float(odo[0]), float(odo[1]))


def _flight(meta: dict, args) -> tuple[float | None, float | None, float | None]:
    """(heading, altitude, pitch) of a frame: its sidecar's values, else the flags'."""

    def pick(key, default):
        return float(meta[key]) if meta.get(key) is not None else default

    return (
        pick("heading_deg", args.heading),
        pick("altitude_m", args.altitude),
        pick("pitch_deg", args.pitch),
    )


def run_follow(args) -> int:
    from d4g_edge.localizer import Localizer
    from d4g_edge.tracker import Tracker

    loc = Localizer(args.bundle, threads=args.threads)
    tracker = Tracker.from_bundle(
        loc.bundle, walk_sigma_m=args.walk_sigma_m, temperature=args.temperature
    )
    pub = MavlinkPublisher(args.mavlink, args.good_m, args.poor_m) if args.mavlink else None
    if args.source.startswith("camera:"):
        frames = ((None, f) for f in camera_frames(args.source))
    else:
        frames = ((p, p) for p in watch_folder(Path(args.source), args.interval, args.idle_timeout))
    for n, (path, image) in enumerate(frames, 1):
        try:
            meta = _sidecar(path)  # read once: the autopilot's values and the odometry
            heading, altitude, pitch = _flight(meta, args)
            flight = {"altitude_m": altitude} if loc.view == "drone" else {}
            ids, scores, heading = loc.retrieve(image, top_k=args.top_k, heading=heading, **flight)
            odometry = _odometry(meta)
        except (ImageError, SearchError) as err:  # one bad frame must not stop the loop
            logger.warning("skipping frame: %s", err)
            continue
        fix = tracker.step(ids, scores, odometry=odometry)
        if loc.view == "drone" and altitude is not None and pitch is not None:
            fix = behind_camera(fix, altitude, pitch, heading)
        if pub is not None:
            pub.send(fix.lat, fix.lon, fix.uncertainty_m, heading)
        record = {
            "frame": str(path) if path else n,
            "lat": fix.lat,
            "lon": fix.lon,
            "uncertainty_m": fix.uncertainty_m,
            "heading_deg": heading,
            "single_frame_lat": float(loc.bundle.tiles.lat[ids[0]]),
            "single_frame_lon": float(loc.bundle.tiles.lon[ids[0]]),
        }
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            print(
                f"{record['frame']}: lat {fix.lat:.6f} lon {fix.lon:.6f} "
                f"±{fix.uncertainty_m:.0f} m",
                flush=True,
            )
        if args.max_frames and n >= args.max_frames:
            break
    return 0


def behind_camera(fix, altitude_m: float, pitch_deg: float, heading_deg: float):
    """The tracker's fix of the point a drone frame's centre shows, moved back to the drone."""
    import dataclasses

    from d4g_edge.drone import camera_offset_m
    from d4g_edge.geo import offset_latlon

    east, north = -camera_offset_m(altitude_m, pitch_deg, heading_deg)
    lat, lon = offset_latlon(fix.lat, fix.lon, east, north)
    return dataclasses.replace(fix, lat=float(lat), lon=float(lon))
