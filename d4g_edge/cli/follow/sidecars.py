"""``IMAGE.json`` sidecars of ``follow``'s frames, validated field by field.

A sidecar (written *before* its image) may hold ``odometry`` (``[metres >= 0, heading_deg]``
moved since the previous frame), ``heading_deg`` (where the frame's top / the panorama's
centre points), ``altitude_m`` above ground and ``pitch_deg`` from nadir (drone bundles,
:mod:`d4g_edge.drone`) and ``fov_deg``, the camera's horizontal field of view (a phone photo
for a ground bundle, :mod:`d4g_edge.ground_query`). A bad field (wrong type, NaN, inf, out of
range) is dropped and reported; a bad file (not JSON, not an object, a directory, over
64 KiB) is refused whole.

Usage::

    meta = read_sidecar(Path("frames/f001.jpg"))     # reads frames/f001.jpg.json
    meta.odometry, meta.heading_deg, meta.problems
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from d4g_edge.cli.follow.errors import SidecarError
from d4g_edge.cli.output import printable as show
from d4g_edge.errors import SearchError

SIDECAR_MAX_BYTES = 64 * 1024
MAX_ODOMETRY_M = 100_000.0  # a frame-to-frame move beyond this is a units error


@dataclass(frozen=True)
class FrameMeta:
    """A frame's validated sidecar values (None: absent or dropped) and the dropped fields."""

    odometry: tuple[float, float] | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    pitch_deg: float | None = None
    fov_deg: float | None = None
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


def flight_value(value, key: str) -> float:
    """``altitude_m`` / ``pitch_deg``: the ranges a :class:`d4g_edge.drone.Flight` checks (one
    definition of what is physically meaningful, shared with the API and the flags)."""
    from d4g_edge.drone import Flight

    x = _finite(value, key)
    try:
        Flight(**{key: x})
    except SearchError as err:
        raise SidecarError(str(err)) from None
    return x


def fov_value(value) -> float:
    """``fov_deg``: (0, 360] degrees, as :func:`d4g_edge.ground_query.check_fov` checks."""
    from d4g_edge.ground_query import check_fov

    try:
        return check_fov(_finite(value, "fov_deg"))
    except SearchError as err:
        raise SidecarError(str(err)) from None


_FIELDS = {
    "odometry": _odometry,
    "heading_deg": lambda v: _finite(v, "heading_deg") % 360.0,
    "altitude_m": lambda v: flight_value(v, "altitude_m"),
    "pitch_deg": lambda v: flight_value(v, "pitch_deg"),
    "fov_deg": fov_value,
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
