"""Drone camera frames on the device: heading, altitude and pitch from the autopilot.

A drone student (University-1652 layout) embeds a camera frame seen from 30-300 m, from
straight down to ~45 degrees oblique, at any heading; its satellite partner embeds north-up
tiles. Three things an autopilot knows help, and each is optional:

* **heading** (where the top of the frame points, degrees clockwise from north): the frame is
  turned north-up by the nearest quarter turn before encoding (a quarter turn keeps every
  pixel; the students were trained on frames at every heading, so the residual is what they
  already cope with). Unknown: the four quarter turns are encoded in one batch and the best
  kept, as the panorama's heading search does with rolls.
* **altitude** above ground (m) with the camera's horizontal field of view: the frame's
  ground footprint is ``2 h tan(fov / 2)``; when it is wider than a tile of the bundle, the
  centre of the frame that covers one tile is kept, so a frame from 250 m is matched at the
  scale of a tile rather than of the whole town block it shows.
* **pitch** from nadir (degrees): the frame's centre looks at a point ``h tan(pitch)`` ahead
  of the drone along its heading; the index finds that point, and the drone is that far
  behind it. Without pitch (or altitude) the answer is the point the frame's centre shows,
  which is the drone's own position for a nadir camera.

The three travel together as a :class:`Flight`.

Usage::

    fix = localizer.localize(frame, heading=72.0, altitude_m=120.0, pitch_deg=30.0)
    flight = Flight(altitude_m=120.0, pitch_deg=30.0)     # checked when made
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d4g_edge.errors import SearchError
from d4g_edge.geo import offset_latlon

DEFAULT_FOV_DEG = 60.0  # the world's drone camera and a common gimbal camera's horizontal FOV
QUARTER_TURNS = (0, 1, 2, 3)


@dataclass(frozen=True)
class Flight:
    """What the autopilot says about one frame; every field optional (None: unknown).

    ``altitude_m`` above ground, ``pitch_deg`` of the camera from nadir (0 = straight down),
    ``fov_deg`` the camera's horizontal field of view (None: :data:`DEFAULT_FOV_DEG` for a
    drone frame). Checked when made (:func:`check_flight`): a :class:`SearchError` names the
    value that is not physically meaningful.
    """

    altitude_m: float | None = None
    pitch_deg: float | None = None
    fov_deg: float | None = None

    def __post_init__(self) -> None:
        check_flight(self.altitude_m, self.pitch_deg, self.fov_deg)

    @property
    def camera_fov_deg(self) -> float:
        """The field of view to use: the given one, else :data:`DEFAULT_FOV_DEG`."""
        return DEFAULT_FOV_DEG if self.fov_deg is None else float(self.fov_deg)

    @property
    def offset_known(self) -> bool:
        """Altitude and pitch both known: the drone's offset from what the frame shows is."""
        return self.altitude_m is not None and self.pitch_deg is not None


def check_flight(
    altitude_m: float | None, pitch_deg: float | None, fov_deg: float | None = None
) -> None:
    """Raise :class:`SearchError` unless the given values are physically meaningful."""
    for name, value in (("altitude_m", altitude_m), ("pitch_deg", pitch_deg), ("fov_deg", fov_deg)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            if not isinstance(value, np.number):  # numpy scalars are numbers too
                raise SearchError(f"{name} must be a number or None, got {value!r}")
    if altitude_m is not None and not (np.isfinite(altitude_m) and 0 < altitude_m <= 5000):
        raise SearchError(f"altitude_m must be in (0, 5000] m above ground, got {altitude_m!r}")
    if pitch_deg is not None and not (np.isfinite(pitch_deg) and 0 <= pitch_deg < 80):
        raise SearchError(
            f"pitch_deg is the camera's angle from nadir (0 = straight down) and must be in "
            f"[0, 80), got {pitch_deg!r}"
        )
    if fov_deg is not None and not (np.isfinite(fov_deg) and 1 <= fov_deg <= 170):
        raise SearchError(f"fov_deg must be in [1, 170] degrees, got {fov_deg!r}")


def footprint_m(altitude_m: float, fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Ground width (m) a nadir frame from ``altitude_m`` shows across its field of view."""
    return 2.0 * altitude_m * float(np.tan(np.radians(fov_deg) / 2.0))


def crop_to_footprint(
    rgb: np.ndarray, altitude_m: float, tile_m: float, fov_deg: float = DEFAULT_FOV_DEG
) -> np.ndarray:
    """The centre of ``rgb`` that shows ``tile_m`` metres of ground (the frame itself when it
    shows less): a square of side ``min(H, W) * tile_m / footprint``."""
    wide = footprint_m(altitude_m, fov_deg) * min(rgb.shape[:2]) / rgb.shape[1]
    if not tile_m > 0 or wide <= tile_m:
        return rgb
    side = max(8, round(min(rgb.shape[:2]) * tile_m / wide))
    top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
    return np.ascontiguousarray(rgb[top : top + side, left : left + side])


def north_up_turns(heading_deg: float) -> int:
    """Counter-clockwise quarter turns that bring a frame whose top points at ``heading_deg``
    nearest to north-up (``np.rot90(x, k, axes=(2, 3))`` for NCHW arrays). A frame looking
    east is the north-up one turned a quarter counter-clockwise (east comes to the top), so
    it takes three more (one clockwise) to undo."""
    return -round((float(heading_deg) % 360.0) / 90.0) % 4


def turned(x: np.ndarray, k: int) -> np.ndarray:
    """NCHW ``x`` turned by ``k`` counter-clockwise quarter turns."""
    return np.ascontiguousarray(np.rot90(x, k, axes=(2, 3)))


def heading_of_turn(k: int) -> float:
    """The heading a frame had if ``k`` counter-clockwise quarter turns made it north-up."""
    return (-90.0 * k) % 360.0


def camera_offset_m(altitude_m: float, pitch_deg: float, heading_deg: float) -> np.ndarray:
    """(east, north) metres from the drone to the ground point its frame's centre shows."""
    ahead = altitude_m * float(np.tan(np.radians(pitch_deg)))
    h = np.radians(heading_deg)
    return np.array([ahead * np.sin(h), ahead * np.cos(h)])


def camera_to_drone(lat, lon, flight: Flight | None, heading_deg: float):
    """The drone's ``(lat, lon)`` from the ground point its frame's centre shows (scalars or
    arrays of points): moved back by :func:`camera_offset_m` against ``heading_deg``.

    The index finds where the camera looks; with a pitched camera the drone is behind that
    point. Returned unchanged (as given) unless ``flight`` knows both altitude and pitch.
    """
    if flight is None or not flight.offset_known:
        return lat, lon
    east, north = -camera_offset_m(flight.altitude_m, flight.pitch_deg, heading_deg)
    return offset_latlon(lat, lon, east, north)
