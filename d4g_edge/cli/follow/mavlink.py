"""The MAVLink publisher of ``d4g-edge follow``: ``GPS_INPUT`` per frame, ``HEARTBEAT`` at 1 Hz.

The ``--mavlink`` URL is checked before any frame is read
(:mod:`~d4g_edge.cli.follow.mavlink_url`), and a refused connection or a failed bind is one
``error:`` line. The publisher speaks MAVLink 2 on its own connection (pymavlink
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

Usage::

    with MavlinkPublisher("udpout:127.0.0.1:14550", good_m=25, poor_m=100) as pub:
        pub.send(lat, lon, radius_m, usable=fix.locked)
"""

from __future__ import annotations

import math
import threading
import time

from d4g_edge.cli.follow.errors import FollowError, MavlinkError
from d4g_edge.cli.follow.mavlink_url import MavlinkTarget, parse_mavlink_url
from d4g_edge.log import logger

GPS_EPOCH = 315_964_800  # 1980-01-06 in Unix seconds
GPS_LEAP_S = 18  # GPS - UTC since 2017
R95_PER_SIGMA = math.sqrt(-2.0 * math.log(0.05))  # 2.4477: 95 % radius of a 2-D Gaussian
EKF_MAX_SIGMA_M = 100.0  # EKF3 clamps horiz_accuracy to this (AP_NavEKF3_PosVelFusion.cpp)
MAX_RADIUS_M = EKF_MAX_SIGMA_M * R95_PER_SIGMA  # 244.77 m: the largest 95 % radius we can send
MAX_YAW_SIGMA_DEG = 10.0  # ArduPilot's assumed GPS yaw accuracy when none is given
RANGE_ERROR_M = 5.0  # nominal GNSS range error: hdop = horizontal RMS / this


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
        check_quality(good_m, poor_m)
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


def check_quality(good_m: float, poor_m: float) -> None:
    if not (0 < good_m <= poor_m <= MAX_RADIUS_M):
        raise FollowError(
            f"--good-m and --poor-m must satisfy 0 < good <= poor <= {MAX_RADIUS_M:.2f} m (EKF3 "
            f"caps horiz_accuracy at {EKF_MAX_SIGMA_M:g} m = a 95 % radius of "
            f"{MAX_RADIUS_M:.2f} m), got good {good_m}, poor {poor_m}"
        )
