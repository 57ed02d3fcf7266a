"""``d4g-edge follow``: a drone companion loop — frames in, tracked fixes out (and MAVLink).

Frames come from a folder watched for new images, or from a camera through OpenCV
(``camera:0``) when it is installed. Each frame is localized
(:class:`~d4g_edge.localizer.Localizer`, top-k retrieval), fused by the
:class:`~d4g_edge.tracker.Tracker`, printed, and with ``--mavlink URL`` sent to an autopilot
as ``GPS_INPUT`` (pymavlink + pyserial, optional extra ``d4g-edge[mavlink]``).

**The frame folder.** Files ``*.jpg|*.jpeg|*.png`` (not hidden) are taken in name order, each
once, when their size *and* mtime have not changed for ``--settle`` seconds. Writers should
still write to a temporary name (``.f001.jpg`` or ``f001.jpg.tmp``) and rename: a rename is
atomic, so a frame is then never seen half-written (what hloc and ArduPilot companion tools
expect). A frame that fails to decode anyway (a writer that paused longer than the settle
time) is retried ``--retries`` times, each after a longer wait, then skipped. A frame that
cannot be used (broken link, not a file, vanished, undecodable) is skipped with one warning
line naming it and why; the loop goes on. If the folder disappears (a card unmounted, a flight
folder rotated) the loop warns once and waits for it to come back, still sending heartbeats;
``--idle-timeout`` ends the wait like any other idle period.

**Sidecars.** ``IMAGE.json`` (write it *before* the image) may hold ``odometry``
(``[metres >= 0, heading_deg]`` moved since the previous frame), ``heading_deg`` (where the
frame's top / the panorama's centre points), ``altitude_m`` above ground and ``pitch_deg``
from nadir (drone bundles, :mod:`d4g_edge.drone`); they override the flags for that frame.
:func:`read_sidecar` validates them all: a bad field (wrong type, NaN, inf, out of range) is
dropped, a bad file (not JSON, not an object, a directory, over 64 KiB) is ignored, each with
one warning line, and the frame is still localized from the flags. No NaN reaches the tracker.

**MAVLink** (``--mavlink``): ``udpout:HOST:PORT`` (send to a ground station / router),
``udpin:[HOST]:PORT`` and ``udp:`` (listen; replies go to whoever sent to us), ``tcp:HOST:PORT``,
``tcpin:[HOST]:PORT``, or a serial device ``/dev/ttyACM0[,BAUD]`` (``COM3[,BAUD]`` on
Windows; default 115200 baud). The URL is checked before any frame is read (scheme, host
resolvable, port 1..65535, serial device present), and a refused connection or a failed bind
is one ``error:`` line. The publisher speaks MAVLink 2 on its own connection (pymavlink
chooses the protocol from ``$MAVLINK20`` at import; we do not touch that process-wide
setting), sends a ``HEARTBEAT`` (``MAV_TYPE_ONBOARD_CONTROLLER``, ``MAV_AUTOPILOT_INVALID``)
at 1 Hz from a daemon thread also while no frame comes, and one ``GPS_INPUT`` per frame
through :meth:`MavlinkPublisher.send`, which publishes a position only when told the fix is
usable (the tracker's lock):

* not usable (or a non-finite / non-positive radius, or lat/lon out of range):
  ``fix_type`` 1 = ``GPS_FIX_TYPE_NO_FIX``, lat/lon 0, 0 satellites, ``hdop`` 99.99,
  horizontal accuracy flagged as ignored, yaw 0. ArduPilot stores ``fix_type`` as its GPS
  status (`AP_GPS_MAV.cpp`_) and EKF3 reads a GPS only at status >= 3D
  (``readGpsData``: "Waiting for 3D fix", `AP_NavEKF3_Measurements.cpp`_), so this is a
  receiver that is connected but has no fix, as a GNSS receiver reports it.
* usable: ``fix_type`` 3 (3D) when the 95 % radius is below ``--good-m``, 2 (2D) below
  ``--poor-m`` (EKF3 ignores 2D fixes; it is for displays and logs), else no fix; satellites
  10 / 6 / 0 (EKF3 inflates the noise below 6 satellites, ``gpsNoiseScaler``).
* ``horiz_accuracy``: EKF3 uses it as the 1-sigma noise of *each* horizontal axis,
  ``R_OBS[3] = R_OBS[4] = sq(constrain(gpsPosAccuracy, EK3_POSNE_M_NSE, 100))``
  (`AP_NavEKF3_PosVelFusion.cpp`_). Our radius holds the truth with probability 0.95; for a
  circular 2-D Gaussian with per-axis sigma, P(r <= R) = 1 - exp(-R^2 / 2 sigma^2), so
  ``R95 = sqrt(-2 ln 0.05) sigma = 2.4477 sigma`` and we send ``radius_m / 2.4477``. EKF3
  clamps the value to 100 m, so ``--good-m`` / ``--poor-m`` may not exceed 244.77 m (a
  larger radius sent as 100 m would make the EKF over-confident). ``hdop`` is the 2-D RMS
  error over a 5 m range error, ``sqrt(2) sigma / 5`` (for displays and arming checks).
* yaw: sent only when the heading is known (a sidecar or ``--heading``; note that an
  autopilot's own heading sent back is not new information, so leave ``EK3_SRC1_YAW`` on the
  compass then) or estimated with a 1-sigma error at most ``--yaw-sigma-max`` (default and
  maximum 10 degrees: ArduPilot assumes 10 degrees for a GPS yaw without an accuracy,
  `AP_GPS.cpp`_ ``gps_yaw_deg``); else 0, which ``GPS_INPUT`` defines as "not available".
* altitude, vertical accuracy and velocities are flagged as ignored: set ``GPS1_TYPE`` = 14
  (MAV), ``EK3_SRC1_POSXY`` = 3 (GPS), ``EK3_SRC1_VELXY`` = 0 and ``EK3_SRC1_VELZ`` = 0 (the
  message has no velocity; the GPS driver would report zero) and ``EK3_SRC1_POSZ`` = 1 (baro).

.. _AP_GPS_MAV.cpp: https://github.com/ArduPilot/ardupilot/blob/master/libraries/AP_GPS/AP_GPS_MAV.cpp
.. _AP_NavEKF3_Measurements.cpp: https://github.com/ArduPilot/ardupilot/blob/master/libraries/AP_NavEKF3/AP_NavEKF3_Measurements.cpp
.. _AP_NavEKF3_PosVelFusion.cpp: https://github.com/ArduPilot/ardupilot/blob/master/libraries/AP_NavEKF3/AP_NavEKF3_PosVelFusion.cpp
.. _AP_GPS.cpp: https://github.com/ArduPilot/ardupilot/blob/master/libraries/AP_GPS/AP_GPS.cpp

**Stopping.** ``--max-frames``, ``--idle-timeout``, SIGINT (exit 130) or SIGTERM (exit 143):
each ends the loop with a message, closes the MAVLink connection and exits.

Usage::

    d4g-edge follow frames/ --bundle town --mavlink udpout:127.0.0.1:14550
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from d4g_edge.errors import D4GEdgeError, ImageError, SearchError
from d4g_edge.log import logger

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
GPS_EPOCH = 315_964_800  # 1980-01-06 in Unix seconds
GPS_LEAP_S = 18  # GPS - UTC since 2017
R95_PER_SIGMA = math.sqrt(-2.0 * math.log(0.05))  # 2.4477: 95 % radius of a 2-D Gaussian
EKF_MAX_SIGMA_M = 100.0  # EKF3 clamps horiz_accuracy to this (AP_NavEKF3_PosVelFusion.cpp)
MAX_RADIUS_M = EKF_MAX_SIGMA_M * R95_PER_SIGMA  # 244.77 m: the largest 95 % radius we can send
MAX_YAW_SIGMA_DEG = 10.0  # ArduPilot's assumed GPS yaw accuracy when none is given
RANGE_ERROR_M = 5.0  # nominal GNSS range error: hdop = horizontal RMS / this
SIDECAR_MAX_BYTES = 64 * 1024
MAX_ODOMETRY_M = 100_000.0  # a frame-to-frame move beyond this is a units error
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells


class FollowError(D4GEdgeError):
    """``follow`` cannot run as asked (a missing frame folder, bad flags, a bad camera)."""


class SidecarError(FollowError, ValueError):
    """An ``IMAGE.json`` sidecar, or one of its fields, that cannot be used."""


class MavlinkError(FollowError):
    """A ``--mavlink`` URL that is malformed, cannot be resolved, or cannot be opened."""


def show(text: object) -> str:
    """``str(text)`` printable on a UTF-8 terminal: the undecodable bytes of a file name
    (surrogates in Python's str) escaped, so a log line cannot fail to print."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


# ---- sidecars -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameMeta:
    """A frame's validated sidecar values (None: absent or dropped) and the dropped fields."""

    odometry: tuple[float, float] | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    pitch_deg: float | None = None
    problems: tuple[SidecarError, ...] = ()


def _finite(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SidecarError(f"{what} must be a number, got {json.dumps(value)[:40]}")
    try:
        x = float(value)
    except OverflowError:  # an integer literal too large for a float
        x = math.inf
    if not math.isfinite(x):
        raise SidecarError(f"{what} must be finite, got {value!r:.40}")
    return x


def _odometry(value) -> tuple[float, float]:
    shape = "[metres, heading_deg]"
    if not isinstance(value, list) or len(value) != 2:
        raise SidecarError(f"odometry must be {shape}, got {json.dumps(value)[:40]}")
    metres = _finite(value[0], "odometry metres")
    if not 0 <= metres <= MAX_ODOMETRY_M:
        raise SidecarError(
            f"odometry metres must be in [0, {MAX_ODOMETRY_M:.0f}] (the distance moved since "
            f"the previous frame), got {metres}"
        )
    return metres, _finite(value[1], "odometry heading_deg") % 360.0


def _flight_value(value, key: str) -> float:
    """``altitude_m`` / ``pitch_deg``: the ranges a :class:`d4g_edge.drone.Flight` checks (one
    definition of what is physically meaningful, shared with the API and the flags)."""
    from d4g_edge.drone import Flight

    x = _finite(value, key)
    try:
        Flight(**{key: x})
    except SearchError as err:
        raise SidecarError(str(err)) from None
    return x


_FIELDS = {
    "odometry": _odometry,
    "heading_deg": lambda v: _finite(v, "heading_deg") % 360.0,
    "altitude_m": lambda v: _flight_value(v, "altitude_m"),
    "pitch_deg": lambda v: _flight_value(v, "pitch_deg"),
}


def read_sidecar(image: Path) -> FrameMeta:
    """The validated sidecar of ``image`` (``IMAGE.json``); an empty one when there is none.

    Raises :class:`SidecarError` when the file exists but cannot be used as a whole; a bad
    field is dropped and reported in ``FrameMeta.problems`` (the other fields are kept).
    """
    path = image.with_name(image.name + ".json")
    try:
        st = path.stat()
    except FileNotFoundError:
        if os.path.lexists(path):
            raise SidecarError(f"sidecar {show(path)} is a broken link; ignored") from None
        return FrameMeta()
    except OSError as err:
        raise SidecarError(f"sidecar {show(path)} cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise SidecarError(f"sidecar {show(path)} is not a regular file; ignored")
    if st.st_size > SIDECAR_MAX_BYTES:
        raise SidecarError(
            f"sidecar {show(path)} has {st.st_size} bytes, more than {SIDECAR_MAX_BYTES}; a "
            "sidecar holds a few numbers; ignored"
        )
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise SidecarError(f"sidecar {show(path)} is not UTF-8 JSON ({err}); ignored") from None
    if not isinstance(meta, dict):
        raise SidecarError(
            f'sidecar {show(path)} must be a JSON object like {{"odometry": [8.0, 90.0]}}, '
            f"got a {type(meta).__name__}; ignored"
        )
    values, problems = {}, []
    for key, check in _FIELDS.items():
        if meta.get(key) is None:
            continue
        try:
            values[key] = check(meta[key])
        except SidecarError as err:
            problems.append(err)
    return FrameMeta(**values, problems=tuple(problems))


# ---- frame sources --------------------------------------------------------------------------


@dataclass
class _Entry:
    sig: tuple[int, int] = (-1, -1)  # (size, mtime_ns) last seen
    since: float = 0.0  # when sig was first seen
    taken: bool = False
    attempts: int = 0
    not_before: float = 0.0
    warned: bool = False


@dataclass
class FrameFolder:
    """New image files of ``folder`` in name order, each once, once fully written.

    A file is taken when its size and mtime have not changed for ``settle_s``; a frame that
    then fails to decode is handed back with :meth:`retry`. Iteration ends after
    ``idle_timeout_s`` without a new frame and with no file still being written or retried.
    """

    folder: Path
    interval_s: float = 0.2
    settle_s: float = 0.5
    idle_timeout_s: float | None = None
    retries: int = 3
    entries: dict[str, _Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.folder.is_dir():
            what = "is not a folder" if self.folder.exists() else "does not exist"
            raise FollowError(
                f"frame folder {show(self.folder)} {what}; give the folder the camera writes "
                "frames into, or camera:N"
            )

    def retry(self, path: Path) -> bool:
        """Hand back a frame that failed to decode: True if it will be taken again."""
        e = self.entries.get(path.name)
        if e is None or e.attempts >= self.retries or not os.path.isfile(path):
            return False  # out of attempts, or vanished: the caller skips it
        e.attempts += 1
        e.taken = False
        now = time.monotonic()
        e.since = now  # it must settle again ...
        e.not_before = now + max(self.settle_s, self.interval_s, 0.25) * e.attempts  # ... and wait
        return True

    def _names(self, gone: bool) -> list[str] | None:
        try:
            names = sorted(os.listdir(self.folder))
        except OSError as err:
            if not gone:
                logger.warning(
                    "frame folder %s cannot be listed (%s); waiting for it to come back%s",
                    show(self.folder),
                    err.strerror or err,
                    "" if self.idle_timeout_s is None else f" for {self.idle_timeout_s:g} s",
                )
            return None
        if gone:
            logger.warning("frame folder %s is back; its files are new frames", show(self.folder))
            self.entries.clear()
        return names

    def _skip(self, name: str, e: _Entry, why: str) -> None:
        e.taken = True
        if not e.warned:
            logger.warning("skipping frame %s: %s", show(self.folder / name), why)
            e.warned = True

    def __iter__(self) -> Iterator[Path]:
        gone, last = False, time.monotonic()
        while True:
            names = self._names(gone)
            gone = names is None
            now, ready, busy = time.monotonic(), [], False
            for name in names or ():
                if name.startswith(".") or os.path.splitext(name)[1].lower() not in FRAME_SUFFIXES:
                    continue
                e = self.entries.setdefault(name, _Entry(since=now))
                if e.taken:
                    continue
                try:
                    st = os.stat(self.folder / name)
                except FileNotFoundError:
                    link = os.path.islink(self.folder / name)
                    self._skip(name, e, "a broken link" if link else "vanished before it was read")
                    continue
                except OSError as err:
                    self._skip(name, e, f"cannot be read ({err.strerror})")
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self._skip(name, e, "not a regular file")
                    continue
                sig = (st.st_size, st.st_mtime_ns)
                if sig != e.sig:  # new or still being written
                    e.sig, e.since, busy, last = sig, now, True, now
                elif st.st_size == 0:  # an empty file waits for content, but is no activity
                    if not e.warned and now - e.since >= self.settle_s:
                        logger.warning(
                            "frame %s is empty; waiting for content", show(self.folder / name)
                        )
                        e.warned = True
                elif now - e.since >= self.settle_s and now >= e.not_before:
                    ready.append(name)
                else:
                    busy = True
            for name in ready:
                self.entries[name].taken = True
                last = time.monotonic()
                yield self.folder / name
            idle = time.monotonic() - last
            if self.idle_timeout_s is not None and not ready and not busy:
                if idle >= self.idle_timeout_s:
                    logger.info("no new frame for %.1f s: stopping", idle)
                    return
            time.sleep(self.interval_s)


def camera_frames(spec: str) -> Iterator[np.ndarray]:
    try:
        import cv2
    except ImportError:
        raise FollowError(f"{spec} needs OpenCV: pip install opencv-python-headless") from None
    cap = cv2.VideoCapture(_camera_index(spec))
    if not cap.isOpened():
        raise FollowError(f"cannot open {spec}: no such camera, or it is in use")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield np.ascontiguousarray(bgr[..., ::-1])
    finally:
        cap.release()


def _camera_index(spec: str) -> int:
    index = spec.split(":", 1)[1]
    if not re.fullmatch(r"\d{0,3}", index):
        raise FollowError(f"camera source must be camera:N with N = 0, 1, ..., got {spec!r}")
    return int(index or 0)


# ---- MAVLink --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MavlinkTarget:
    """A checked ``--mavlink`` URL: what pymavlink opens, and how."""

    url: str  # as given
    device: str  # what pymavlink's mavlink_connection gets
    kind: str  # udpout | udpin | tcp | tcpin | serial
    baud: int = 115200


_URL_FORMS = (
    "udpout:HOST:PORT, udpin:[HOST]:PORT, udp:[HOST]:PORT, tcp:HOST:PORT, tcpin:[HOST]:PORT, "
    "or a serial device /dev/ttyACM0[,BAUD] (COM3[,BAUD] on Windows)"
)
_NET = {"udpout": "udpout", "udpin": "udpin", "udp": "udpin", "tcp": "tcp", "tcpin": "tcpin"}


def parse_mavlink_url(url: str) -> MavlinkTarget:
    """Check ``url`` without opening it: scheme, host (resolved), port, serial device."""
    if not isinstance(url, str) or not url.strip():
        raise MavlinkError(f"--mavlink is empty; expected {_URL_FORMS}")
    if url != url.strip():
        raise MavlinkError(f"--mavlink {url!r} has leading or trailing spaces; remove them")
    scheme, _, rest = url.partition(":")
    if scheme in _NET:
        return _net_target(url, _NET[scheme], rest)
    return _serial_target(url)


def _net_target(url: str, kind: str, rest: str) -> MavlinkTarget:
    host, sep, port_text = rest.rpartition(":")
    if not sep or ":" in host:
        raise MavlinkError(
            f"--mavlink {url!r}: expected {kind}:HOST:PORT (IPv4 address or name; pymavlink "
            "has no IPv6), e.g. udpout:127.0.0.1:14550"
        )
    if not re.fullmatch(r"\d{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise MavlinkError(f"--mavlink {url!r}: the port must be 1..65535, got {port_text!r}")
    port = int(port_text)
    listening = kind in ("udpin", "tcpin")
    if not host and not listening:
        raise MavlinkError(f"--mavlink {url!r}: {kind} needs the host to send to, e.g. 127.0.0.1")
    try:
        socket.getaddrinfo(host or "0.0.0.0", port, socket.AF_INET)
    except (OSError, UnicodeError) as err:
        raise MavlinkError(
            f"--mavlink {url!r}: host {host!r} cannot be resolved to an IPv4 address "
            f"({getattr(err, 'strerror', None) or err}); check the address or name"
        ) from None
    return MavlinkTarget(url, f"{kind}:{host or '0.0.0.0'}:{port}", kind)


def _serial_target(url: str) -> MavlinkTarget:
    device, sep, baud_text = url.partition(",")
    windows_port = re.fullmatch(r"COM\d{1,3}", device, re.IGNORECASE)
    if not (device.startswith("/dev/") or windows_port):
        raise MavlinkError(f"--mavlink {url!r} is not a MAVLink URL; expected {_URL_FORMS}")
    if sep and not (re.fullmatch(r"\d{3,7}", baud_text) and int(baud_text) > 0):
        raise MavlinkError(
            f"--mavlink {url!r}: the baud rate after ',' must be a positive integer like 57600 "
            f"or 115200, got {baud_text!r}"
        )
    if windows_port and os.name != "nt":
        raise MavlinkError(
            f"--mavlink {url!r}: COM ports exist on Windows; here a serial device is a path "
            "like /dev/ttyACM0 or /dev/ttyUSB0"
        )
    if not windows_port:
        try:
            mode = os.stat(device).st_mode
        except OSError as err:
            raise MavlinkError(
                f"--mavlink {url!r}: serial device {device} {err.strerror.lower()}; is the "
                "autopilot plugged in? (ls /dev/ttyACM* /dev/ttyUSB* /dev/serial/by-id)"
            ) from None
        if not stat.S_ISCHR(mode):
            raise MavlinkError(f"--mavlink {url!r}: {device} is not a serial (character) device")
    try:
        import serial  # noqa: F401  # pymavlink opens serial ports with pyserial
    except ImportError:
        raise MavlinkError(
            f"--mavlink {url!r} needs pyserial: pip install 'd4g-edge[mavlink]'"
        ) from None
    return MavlinkTarget(url, device, "serial", int(baud_text) if sep else 115200)


class MavlinkPublisher:
    """``GPS_INPUT`` (one per :meth:`send`) and a 1 Hz ``HEARTBEAT`` over MAVLink 2."""

    def __init__(
        self,
        target: MavlinkTarget | str,
        good_m: float = 25.0,
        poor_m: float = 100.0,
        *,
        system: int = 1,
        max_yaw_sigma_deg: float = MAX_YAW_SIGMA_DEG,
        heartbeat_s: float = 1.0,
    ):
        if isinstance(target, str):
            target = parse_mavlink_url(target)
        _check_quality(good_m, poor_m)
        if not 0 < max_yaw_sigma_deg <= MAX_YAW_SIGMA_DEG:
            raise MavlinkError(
                f"max_yaw_sigma_deg must be in (0, {MAX_YAW_SIGMA_DEG:g}], got {max_yaw_sigma_deg}"
            )
        try:
            from pymavlink import mavutil
            from pymavlink.dialects.v20 import ardupilotmega as mavlink2
        except ImportError:
            raise MavlinkError(
                "--mavlink needs pymavlink: pip install 'd4g-edge[mavlink]'"
            ) from None
        self.m = mavlink2
        self.target = target
        self.good_m, self.poor_m, self.max_yaw_sigma_deg = good_m, poor_m, max_yaw_sigma_deg
        component = mavlink2.MAV_COMP_ID_ONBOARD_COMPUTER
        try:
            # retries=0: one attempt, no "sleeping" lines printed on stdout by pymavlink
            conn = mavutil.mavlink_connection(
                target.device,
                baud=target.baud,
                source_system=system,
                source_component=component,
                retries=0,
            )
        except (OSError, ValueError) as err:  # serial.SerialException is an OSError
            raise MavlinkError(
                f"--mavlink {target.url!r} cannot be opened: {err}; is the autopilot or router "
                "listening there (tcp), the port free (udpin/tcpin), the device yours (serial)?"
            ) from None
        # MAVLink 2 on this connection only: pymavlink picks the process-wide dialect from
        # $MAVLINK20 at import time, and swaps in a v2 parser the same way when it hears v2.
        conn.mav = mavlink2.MAVLink(conn, srcSystem=system, srcComponent=component)
        conn.WIRE_PROTOCOL_VERSION = "2.0"
        conn.first_byte = False
        self.conn = conn
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._heartbeat_s = heartbeat_s
        self._thread = threading.Thread(target=self._beat, name="mavlink-heartbeat", daemon=True)
        self._thread.start()

    # -- the one sending method --

    def send(
        self,
        lat: float,
        lon: float,
        radius_m: float,
        *,
        usable: bool,
        heading_deg: float | None = None,
        heading_sigma_deg: float | None = None,
    ) -> int:
        """Send one ``GPS_INPUT``; returns the ``fix_type`` sent.

        ``radius_m`` holds the truth with probability 0.95. Nothing but a no-fix message is
        sent unless ``usable`` is true and lat, lon and the radius are finite and in range.
        ``heading_deg`` without ``heading_sigma_deg`` is a known heading (sidecar, flag); with
        it, an estimate, sent as yaw only when the sigma is at most ``max_yaw_sigma_deg``.
        """
        m = self.m
        fix_type, sats = m.GPS_FIX_TYPE_NO_FIX, 0
        if usable:
            why = _unusable(lat, lon, radius_m)
            if why:
                self._warn_once(why, f"MAVLink: publishing no fix: {why}")
            else:
                fix_type, sats = self.quality(radius_m)
        fixed = fix_type >= m.GPS_FIX_TYPE_2D_FIX
        sigma = float(radius_m) / R95_PER_SIGMA if fixed else 0.0
        ignore = (
            m.GPS_INPUT_IGNORE_FLAG_ALT
            | m.GPS_INPUT_IGNORE_FLAG_VDOP
            | m.GPS_INPUT_IGNORE_FLAG_VEL_HORIZ
            | m.GPS_INPUT_IGNORE_FLAG_VEL_VERT
            | m.GPS_INPUT_IGNORE_FLAG_SPEED_ACCURACY
            | m.GPS_INPUT_IGNORE_FLAG_VERTICAL_ACCURACY
        )
        if not fixed:
            ignore |= m.GPS_INPUT_IGNORE_FLAG_HORIZONTAL_ACCURACY
        yaw = self._yaw(heading_deg, heading_sigma_deg) if fixed else 0
        now = time.time()
        week, week_s = divmod(now - GPS_EPOCH + GPS_LEAP_S, 7 * 86400)
        hdop = min(math.sqrt(2.0) * sigma / RANGE_ERROR_M, 99.0) if fixed else 99.99
        self._send(
            "gps_input_send",
            int(now * 1e6),
            0,
            ignore,
            int(week_s * 1000),
            int(week),
            fix_type,
            round(lat * 1e7) if fixed else 0,
            round(lon * 1e7) if fixed else 0,
            0.0,
            float(hdop),
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            float(sigma),
            0.0,
            sats,
            yaw,
        )
        return fix_type

    def quality(self, radius_m: float) -> tuple[int, int]:
        """(fix_type, satellites_visible) for a usable fix's 95 % radius."""
        if radius_m <= self.good_m:
            return self.m.GPS_FIX_TYPE_3D_FIX, 10
        if radius_m <= self.poor_m:
            return self.m.GPS_FIX_TYPE_2D_FIX, 6
        return self.m.GPS_FIX_TYPE_NO_FIX, 0

    def _yaw(self, heading_deg: float | None, sigma_deg: float | None) -> int:
        if heading_deg is None or not math.isfinite(heading_deg):
            return 0
        if sigma_deg is not None and not (0 <= sigma_deg <= self.max_yaw_sigma_deg):
            return 0  # an estimate worse than ArduPilot would assume (or NaN): not available
        return round(heading_deg * 100) % 36000 or 36000  # 0 means "not available"; north 36000

    # -- plumbing --

    def _send(self, method: str, *fields) -> None:
        try:
            with self._lock:
                getattr(self.conn.mav, method)(*fields)
        except (OSError, ValueError) as err:  # a cable pulled, a peer gone: keep going
            self._warn_once(f"send {type(err).__name__}", f"MAVLink send failed: {err}")

    def _beat(self) -> None:
        m, next_beat = self.m, 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                self._send(
                    "heartbeat_send",
                    m.MAV_TYPE_ONBOARD_CONTROLLER,
                    m.MAV_AUTOPILOT_INVALID,
                    0,
                    0,
                    m.MAV_STATE_ACTIVE,
                )
                next_beat = now + self._heartbeat_s
            self._drain()
            self._stop.wait(min(0.1, self._heartbeat_s))

    def _drain(self) -> None:
        """Read what the other side sends: udpin/tcpin learn their peers this way, and a
        router's or autopilot's stream must not fill our socket buffer."""
        try:
            with self._lock:
                for _ in range(100):
                    if self.conn.recv_msg() is None:
                        break
        except Exception as err:  # pymavlink raises assorted errors on a dead link
            self._warn_once(f"recv {type(err).__name__}", f"MAVLink receive failed: {err}")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("%s", message)

    def close(self) -> None:
        """Stop the heartbeat and close the connection (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        with self._lock:
            try:
                self.conn.close()
            except OSError:
                pass

    def __enter__(self) -> MavlinkPublisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _unusable(lat, lon, radius_m) -> str | None:
    try:
        lat, lon, radius_m = float(lat), float(lon), float(radius_m)
    except (TypeError, ValueError):
        return f"lat/lon/radius are not numbers ({lat!r}, {lon!r}, {radius_m!r})"
    if not (math.isfinite(radius_m) and radius_m > 0):
        return f"the radius is {radius_m} m, not a positive finite number"
    if not (abs(lat) <= 90 and abs(lon) <= 180):
        return f"lat/lon ({lat}, {lon}) are out of range"
    return None


def _check_quality(good_m: float, poor_m: float) -> None:
    if not (0 < good_m <= poor_m <= MAX_RADIUS_M):
        raise FollowError(
            f"--good-m and --poor-m must satisfy 0 < good <= poor <= {MAX_RADIUS_M:.2f} m (EKF3 "
            f"caps horiz_accuracy at {EKF_MAX_SIGMA_M:g} m = a 95 % radius of "
            f"{MAX_RADIUS_M:.2f} m), got good {good_m}, poor {poor_m}"
        )


# ---- command line ---------------------------------------------------------------------------


def _number(kind=float, lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse type: a finite ``kind`` within the bounds (exit 2 at parse time)."""
    left = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
    right = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
    noun = "an integer" if kind is int else "a finite number"
    want = f"{noun} {left}{' and ' * bool(left and right)}{right}"

    def parse(text: str):
        try:
            x = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want.strip()}, got {text!r}") from None
        ok = math.isfinite(x)
        ok = ok and (lo is None or (x > lo if lo_open else x >= lo))
        ok = ok and (hi is None or (x < hi if hi_open else x <= hi))
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {want.strip()}, got {text!r}")
        return x

    return parse


def _flight_flag(key: str):
    def parse(text: str) -> float:
        try:
            return _flight_value(_number()(text), key)
        except SidecarError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


_FOLLOW_EPILOG = """\
frame folder: files *.jpg|*.jpeg|*.png are taken in name order once their size and mtime have
been stable for --settle s; write each frame to a temporary name (.f001.jpg or f001.jpg.tmp)
and rename it, and write its sidecar IMAGE.json (odometry [metres, heading_deg], heading_deg,
altitude_m, pitch_deg) before the image. A frame that still fails to decode is retried
--retries times, then skipped with a warning; bad sidecar fields are dropped with a warning.
If the folder disappears, follow waits for it (heartbeats go on) until --idle-timeout.

MAVLink: MAVLink 2, HEARTBEAT at 1 Hz, one GPS_INPUT per frame: a position only while the
tracker is locked (fix_type 3 when the 95 % radius <= --good-m, 2 <= --poor-m), else no fix
(fix_type 1, 0 satellites); horiz_accuracy = the 95 % radius / 2.4477 (EKF3's 1-sigma).

exit status: 0 done (--max-frames or --idle-timeout), 2 a user error (one 'error:' line),
130 SIGINT (Ctrl-C), 143 SIGTERM; the MAVLink connection is closed first.
"""


def add_follow_parser(sub, bundle_help: str) -> None:
    p = sub.add_parser(
        "follow",
        help="track a stream of frames; publish fixes over MAVLink",
        description="Localize and track frames from a watched folder or a camera, and publish "
        "the fix to an autopilot as MAVLink GPS_INPUT.",
        epilog=_FOLLOW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pos = _number(float, 0, lo_open=True)
    p.add_argument("source", help="folder watched for new frames, or camera:N (OpenCV)")
    p.add_argument("--bundle", type=Path, default=None, help=bundle_help)
    p.add_argument(
        "--mavlink",
        default=None,
        help="where to send GPS_INPUT: udpout:HOST:PORT, udpin:[HOST]:PORT, tcp:HOST:PORT, "
        "tcpin:[HOST]:PORT or /dev/ttyACM0[,BAUD] (checked before any frame is read)",
    )
    p.add_argument(
        "--top-k", type=_number(int, 1), default=100, help="tiles scored per frame (default 100)"
    )
    p.add_argument(
        "--heading", type=_number(), default=None, help="known heading (deg), else searched"
    )
    p.add_argument(
        "--altitude",
        type=_flight_flag("altitude_m"),
        default=None,
        help="drone: metres above ground, (0, 5000]",
    )
    p.add_argument(
        "--pitch",
        type=_flight_flag("pitch_deg"),
        default=None,
        help="drone: camera degrees from nadir, [0, 80)",
    )
    p.add_argument("--walk-sigma-m", type=pos, default=10.0, help="motion blur without odometry")
    p.add_argument("--temperature", type=pos, default=0.02, help="score -> likelihood scale")
    quality = _number(float, 0, MAX_RADIUS_M, lo_open=True)
    p.add_argument(
        "--good-m",
        type=quality,
        default=25.0,
        help="3D fix while the 95 %% radius is below this (m, default 25)",
    )
    p.add_argument(
        "--poor-m",
        type=quality,
        default=100.0,
        help="2D fix below this, else no fix (m, default 100)",
    )
    p.add_argument(
        "--yaw-sigma-max",
        type=_number(float, 0, MAX_YAW_SIGMA_DEG, lo_open=True),
        default=MAX_YAW_SIGMA_DEG,
        help="send an estimated heading as yaw only below this 1-sigma error (deg, <= 10)",
    )
    p.add_argument("--interval", type=pos, default=0.2, help="folder poll interval (s)")
    p.add_argument(
        "--settle",
        type=_number(float, 0),
        default=0.5,
        help="take a file once its size and mtime are unchanged this long (s, default 0.5)",
    )
    p.add_argument(
        "--retries",
        type=_number(int, 0, 100),
        default=3,
        help="times a frame that fails to decode is tried again (default 3)",
    )
    p.add_argument(
        "--max-frames",
        type=_number(int, 1),
        default=None,
        help="stop after N frames, fixed or skipped (>= 1)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_number(float, 0),
        default=None,
        help="stop after S s without a new frame (default: run until stopped)",
    )
    p.add_argument("--threads", type=_number(int, 1, 1024), default=None, help="encoder threads")
    p.add_argument("--json", action="store_true", help="print one JSON line per fix")


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


def run_follow(args) -> int:
    _check_quality(args.good_m, args.poor_m)
    camera = args.source.startswith("camera:")
    if camera:
        _camera_index(args.source)
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


def _step(args, loc, tracker, pub, path, rgb, top_k, counts) -> dict | None:
    name = show(path) if path is not None else str(counts["frames"])
    meta = FrameMeta()
    if path is not None:
        try:
            meta = read_sidecar(path)
        except SidecarError as err:
            logger.warning("frame %s: %s", name, show(err))
        if meta.problems:
            dropped = "; ".join(show(p) for p in meta.problems)
            logger.warning("frame %s: sidecar fields ignored: %s", name, dropped)
    known = meta.heading_deg if meta.heading_deg is not None else args.heading
    altitude = meta.altitude_m if meta.altitude_m is not None else args.altitude
    pitch = meta.pitch_deg if meta.pitch_deg is not None else args.pitch
    flight = {"altitude_m": altitude} if loc.view == "drone" else {}
    try:
        obs = loc.observe(rgb, top_k=top_k, heading=known, **flight)
    except (ImageError, SearchError) as err:  # one bad frame must not stop the loop
        counts["skipped"] += 1
        logger.warning("skipping frame %s: %s", name, show(err))
        return None
    ids, heading = obs.ids, obs.heading_deg
    # the tracker takes the frame's single-frame status: a not_in_map frame is no evidence,
    # and only agreeing confident frames lock the track (d4g_edge.tracker)
    fix = tracker.track(obs, odometry=meta.odometry)
    if loc.view == "drone" and altitude is not None and pitch is not None:
        fix = behind_camera(fix, altitude, pitch, heading)
    if not all(math.isfinite(v) for v in (fix.lat, fix.lon, fix.uncertainty_m)):
        logger.warning("frame %s: the track became non-finite; starting a new track", name)
        tracker.reset()
        if pub is not None:
            pub.send(0.0, 0.0, math.nan, usable=False)
        counts["skipped"] += 1
        return None
    usable = bool(fix.locked)  # a position source says "no fix" until frames agree
    if pub is not None:
        sigma = None if known is not None else getattr(fix, "heading_sigma_deg", None)
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


def _print(record: dict, as_json: bool) -> None:
    if as_json:  # strict JSON: a non-finite number is null, never NaN
        clean = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in record.items()
        }
        print(json.dumps(clean, allow_nan=False), flush=True)
    else:
        print(
            f"{record['frame']}: lat {record['lat']:.6f} lon {record['lon']:.6f} "
            f"±{record['uncertainty_m']:.0f} m{'' if record['usable'] else '  (no fix)'}",
            flush=True,
        )


def behind_camera(fix, altitude_m: float, pitch_deg: float, heading_deg: float):
    """The tracker's fix of the point a drone frame's centre shows, moved back to the drone."""
    import dataclasses

    from d4g_edge.drone import camera_offset_m
    from d4g_edge.geo import offset_latlon

    east, north = -camera_offset_m(altitude_m, pitch_deg, heading_deg)
    lat, lon = offset_latlon(fix.lat, fix.lon, east, north)
    return dataclasses.replace(fix, lat=float(lat), lon=float(lon))
