"""Phone photos <-> equirectangular panoramas: the projection geometry (numpy + Pillow only).

Conventions (those of every panorama in this project, :mod:`train.world` renders them so):
column ``c`` of a ``W``-wide panorama looks at azimuth ``(c + 0.5) * 360 / W - 180`` degrees,
clockwise from north (north at the centre column, east at ``3W/4``); row ``r`` of an
``H``-high panorama covering the elevations ``vfov_band = (lo, hi)`` looks at elevation
``hi - (r + 0.5) * (hi - lo) / H`` (``(-90, 90)``: a full-sphere VIGOR panorama; CVUSA's
panoramas are the band ``(-32.5, 32.5)``).

A photo is taken by a camera at the panorama's centre whose optical axis points at azimuth
``heading_deg`` and elevation ``pitch_deg`` (positive: tilted up); ``roll_deg`` turns the camera
about its axis, positive clockwise as the photographer sees it (the camera's top leans right,
so the scene turns counter-clockwise in the photo: a level horizon rises to the right).
``fov_deg`` is the HORIZONTAL field of view. Up to :data:`PINHOLE_MAX_FOV_DEG` (120) the
photo is a pinhole (rectilinear) view, as a phone's cameras take (an ultra-wide is ~105 across);
wider, up to 360 degrees, it is cylindrical, as a phone's panorama mode takes (columns evenly
spaced in azimuth; a pinhole view that wide is all stretched edges, and none exists at 180),
unless ``projection`` says otherwise. Photos use the same focal length across and down (square
pixels), so a 4:3 landscape photo at ``fov_deg=90`` covers ``2 atan(0.75) = 73.7`` degrees down.

Usage::

    from d4g_edge.photo import pano_to_pinhole, photo_to_pano, horizontal_fov_from_exif
    photo = pano_to_pinhole(pano, fov_deg=70, heading_deg=120, pitch_deg=5, size=(480, 640))
    canvas, mask = photo_to_pano(photo, fov_deg=70, heading_deg=120, pitch_deg=5)
    fov = horizontal_fov_from_exif("IMG_0001.jpg")    # None without a 35 mm-equivalent tag
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from d4g_edge.config import IMAGENET_MEAN, EncoderConfig
from d4g_edge.errors import D4GEdgeError, ImageError

# Outside a photo's view: the normalisation mean as uint8, so it normalises to ~0 ("nothing").
FILL_RGB: tuple[int, int, int] = tuple(round(m * 255) for m in IMAGENET_MEAN)  # type: ignore[assignment]
PROJECTIONS = ("auto", "pinhole", "cylindrical")
PINHOLE_MAX_FOV_DEG = 120.0  # "auto": pinhole up to here, cylindrical beyond
FULL_SPHERE = (-90.0, 90.0)
CIPA_DIAGONAL_MM = 43.27  # the 36 x 24 mm frame's diagonal: what "35 mm-equivalent" refers to
_EXIF_IFD, _FOCAL_35MM, _ORIENTATION = 0x8769, 0xA405, 0x0112
_FOCAL_35MM_RANGE = (8.0, 2000.0)  # outside: a corrupt tag (8 mm is already a fisheye)


class CameraError(D4GEdgeError, ValueError):
    """A camera model that cannot be used: field of view, pose, band or size out of range."""


def _number(value: Any, what: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CameraError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
        side = "(" if lo_open else "["
        raise CameraError(f"{what} must be in {side}{lo:g}, {hi:g}] degrees, got {value!r}")
    return v


def _band(band: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in band)
    except (TypeError, ValueError):
        raise CameraError(f"vfov_band must be (lowest, highest) elevation, got {band!r}") from None
    if not (-90.0 <= lo < hi <= 90.0):
        raise CameraError(f"vfov_band must satisfy -90 <= low < high <= 90, got {band!r}")
    return lo, hi


def _size(size: Any, what: str) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise CameraError(f"{what} must be (height, width), got {size!r}") from None
    if h < 1 or w < 1 or [h, w] != [float(s) for s in size]:
        raise CameraError(f"{what} must be two positive integers, got {size!r}")
    return h, w


def _rgb(arr: Any, what: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.ndim != 3 or arr.shape[2] != 3:
        shape = getattr(arr, "shape", type(arr).__name__)
        raise ImageError(f"{what} must be an H x W x 3 RGB array, got {shape}")
    if arr.dtype != np.uint8:
        raise ImageError(f"{what} must be uint8, got {arr.dtype}; see d4g_edge.image.load_rgb")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ImageError(f"{what} must be at least 2 x 2 pixels, got {arr.shape[:2]}")
    return arr


def _projection(projection: str, fov: float) -> str:
    if projection not in PROJECTIONS:
        raise CameraError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    if projection == "auto":
        return "pinhole" if fov <= PINHOLE_MAX_FOV_DEG else "cylindrical"
    if projection == "pinhole" and fov >= 180.0:
        raise CameraError(f"a pinhole view needs fov_deg < 180, got {fov:g}; use cylindrical")
    return projection


def _basis(heading: float, pitch: float, roll: float) -> np.ndarray:
    """Rows: the camera's right, up and forward axes in world (east, north, up) coordinates."""
    h, p, r = (math.radians(a) for a in (heading, pitch, roll))
    fwd = np.array([math.sin(h) * math.cos(p), math.cos(h) * math.cos(p), math.sin(p)])
    right0 = np.array([math.cos(h), -math.sin(h), 0.0])
    up0 = np.cross(right0, fwd)
    # roll clockwise (seen from behind): the right axis dips, the up axis leans right
    right = right0 * math.cos(r) - up0 * math.sin(r)
    up = up0 * math.cos(r) + right0 * math.sin(r)
    return np.stack([right, up, fwd])


def _focal(width: int, fov: float, proj: str) -> float:
    """Pixels per unit of the image plane (pinhole) or per radian (cylindrical)."""
    half = math.radians(fov) / 2.0
    return width / 2.0 / (math.tan(half) if proj == "pinhole" else half)


def _bilinear(img: np.ndarray, rows: np.ndarray, cols: np.ndarray, wrap: bool) -> np.ndarray:
    """Sample ``img`` at float pixel-centre coordinates (rows clamped; columns wrapped or
    clamped); float32 (..., 3)."""
    h, w = img.shape[:2]
    rows = np.clip(rows, 0.0, h - 1.0)
    cols = np.mod(cols, w) if wrap else np.clip(cols, 0.0, w - 1.0)
    r0 = np.minimum(np.floor(rows).astype(np.intp), h - 2)
    c0 = np.minimum(np.floor(cols).astype(np.intp), w - 1 if wrap else w - 2)
    fr = (rows - r0).astype(np.float32)[..., None]
    fc = (cols - c0).astype(np.float32)[..., None]
    c1 = (c0 + 1) % w  # np.mod may round a tiny negative up to w: c0 = w - 1, fc = 1
    r1 = r0 + 1
    src = img.reshape(h * w, -1).astype(np.float32)
    r0, r1 = r0 * w, r1 * w  # flat indices: one np.take per corner is the fast gather

    def at(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.take(src, r + c, axis=0)

    top = at(r0, c0)
    top += (at(r0, c1) - top) * fc
    bottom = at(r1, c0)
    bottom += (at(r1, c1) - bottom) * fc
    top += (bottom - top) * fr
    return top


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _pose(fov_deg, heading_deg, pitch_deg, roll_deg, projection):
    """A camera's checked (fov, heading, pitch, roll, projection), as both directions take it."""
    fov = _number(fov_deg, "fov_deg", 0.0, 360.0, lo_open=True)
    pitch = _number(pitch_deg, "pitch_deg", -90.0, 90.0)
    roll = _number(roll_deg, "roll_deg", -180.0, 180.0)
    heading = _number(heading_deg, "heading_deg", -1e6, 1e6)
    return fov, heading, pitch, roll, _projection(projection, fov)


def pano_to_pinhole(
    pano: np.ndarray,
    *,
    fov_deg: float,
    heading_deg: float,
    pitch_deg: float = 0.0,
    roll_deg: float = 0.0,
    size: tuple[int, int] = (480, 640),
    vfov_band: tuple[float, float] = FULL_SPHERE,
    projection: str = "auto",
) -> np.ndarray:
    """The photo (uint8 ``size``) a camera at the panorama's centre takes (module docstring);
    bilinear; pixels whose ray leaves ``vfov_band`` are :data:`FILL_RGB`."""
    pano = _rgb(pano, "panorama")
    fov, heading, pitch, roll, proj = _pose(fov_deg, heading_deg, pitch_deg, roll_deg, projection)
    (lo, hi), (h, w) = _band(vfov_band), _size(size, "size")
    f = _focal(w, fov, proj)
    x = (np.arange(w, dtype=np.float64) + 0.5 - w / 2.0) / f
    y = (h / 2.0 - np.arange(h, dtype=np.float64) - 0.5) / f
    if proj == "pinhole":
        cam = (x[None, :], y[:, None], np.ones((1, 1)))
    else:  # columns evenly spaced in angle on a cylinder round the up axis
        cam = (np.sin(x)[None, :], y[:, None], np.cos(x)[None, :])
    right, up, fwd = _basis(heading, pitch, roll)
    d = [cam[0] * right[i] + cam[1] * up[i] + cam[2] * fwd[i] for i in range(3)]
    az = np.degrees(np.arctan2(d[0], d[1]))
    el = np.degrees(np.arctan2(d[2], np.hypot(d[0], d[1])))
    ph, pw = pano.shape[:2]
    cols = (az + 180.0) / 360.0 * pw - 0.5
    rows = (hi - el) / (hi - lo) * ph - 0.5
    out = _to_uint8(_bilinear(pano, rows, cols, wrap=True))
    outside = (el > hi) | (el < lo)
    if outside.any():
        out[outside] = FILL_RGB
    return out


def photo_to_pano(
    photo: np.ndarray,
    *,
    fov_deg: float,
    heading_deg: float,
    pitch_deg: float = 0.0,
    roll_deg: float = 0.0,
    out_size: tuple[int, int] = (256, 512),
    vfov_band: tuple[float, float] = FULL_SPHERE,
    projection: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`pano_to_pinhole`: the photo placed into an equirectangular canvas
    of ``out_size`` covering ``vfov_band``; returns (uint8 canvas, :data:`FILL_RGB` where the
    photo does not reach, bool mask of the pixels it does)."""
    photo = _rgb(photo, "photo")
    fov, heading, pitch, roll, proj = _pose(fov_deg, heading_deg, pitch_deg, roll_deg, projection)
    (lo, hi), (oh, ow) = _band(vfov_band), _size(out_size, "out_size")
    h, w = photo.shape[:2]
    f = _focal(w, fov, proj)
    az = np.radians((np.arange(ow, dtype=np.float64) + 0.5) * 360.0 / ow - 180.0)[None, :]
    el = np.radians(hi - (np.arange(oh, dtype=np.float64) + 0.5) * (hi - lo) / oh)[:, None]
    d = (np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.broadcast_to(np.sin(el), (oh, 1)))
    basis = _basis(heading, pitch, roll)
    xc, yc, zc = (sum(d[i] * basis[k][i] for i in range(3)) for k in range(3))
    if proj == "pinhole":
        ahead = zc > 1e-9
        safe = np.where(ahead, zc, 1.0)
        u, v = xc / safe, yc / safe
    else:
        ring = np.hypot(xc, zc)
        ahead = ring > 1e-9
        u, v = np.arctan2(xc, zc), yc / np.where(ahead, ring, 1.0)
    cols = u * f + w / 2.0 - 0.5
    rows = h / 2.0 - v * f - 0.5
    # only where the photo's pixel centres surround the point: bilinear is then interpolation
    mask = ahead & (cols >= 0) & (cols <= w - 1) & (rows >= 0) & (rows <= h - 1)
    canvas = np.empty((oh, ow, 3), np.uint8)
    canvas[...] = FILL_RGB
    canvas[mask] = _to_uint8(_bilinear(photo, rows[mask], cols[mask], wrap=False))
    return canvas, mask


def canvas_for(
    cfg: EncoderConfig,
    view: str | None = None,
    *,
    scale: float = 1.0,
    pano_band: tuple[float, float] = FULL_SPHERE,
) -> tuple[tuple[int, int], tuple[float, float]]:
    """``(out_size, vfov_band)`` of the canvas :func:`photo_to_pano` should fill for ``cfg``'s
    ground input: a panorama covering ``pano_band`` (the band the encoder's panoramas covered:
    the full sphere for VIGOR-trained encoders) whose ``crop_rows`` resize to the encoder's
    input at ``scale`` times its resolution (>= 1 keeps the resize a downsampling)."""
    spec = cfg.input(view)
    if spec.polar is not None:
        raise CameraError("a photo canvas is a ground panorama; this view is polar (aerial)")
    s = _number(scale, "scale", 0.0, 64.0, lo_open=True)
    top, bottom = spec.crop_rows or (0.0, 1.0)
    h, w = spec.size
    return (max(2, round(h * s / (bottom - top))), max(4, round(w * s))), _band(pano_band)


def _tag(exif: Image.Exif, tag: int) -> Any:
    value = exif.get(tag)
    if value is None:
        try:  # 0xA405 lives in the Exif sub-IFD
            value = exif.get_ifd(_EXIF_IFD).get(tag)
        except Exception:  # a broken sub-IFD pointer reads as "no tag"
            value = None
    return value


def horizontal_fov_from_exif(image: Image.Image | str | os.PathLike | bytes) -> float | None:
    """Horizontal field of view (degrees) of the image as displayed (EXIF orientation
    applied) from its 35 mm-equivalent focal length (EXIF FocalLengthIn35mmFilm), or None.

    CIPA DC-008 defines the 35 mm equivalent on the diagonal (43.27 mm): the diagonal field
    of view is ``2 atan(43.27 / 2f)``, split over the image's own aspect ratio.
    """
    if isinstance(image, bytes | bytearray):
        import io

        image = io.BytesIO(bytes(image))
    if isinstance(image, str | os.PathLike | Path) or hasattr(image, "read"):
        try:
            with Image.open(image) as img:
                return horizontal_fov_from_exif(img)
        except (OSError, ValueError, SyntaxError) as err:
            raise ImageError(f"cannot read an image's EXIF from {image!r}: {err}") from None
    if not isinstance(image, Image.Image):
        raise ImageError(f"expected a PIL image, a path or bytes, got {type(image).__name__}")
    try:
        exif = image.getexif()
        focal = _tag(exif, _FOCAL_35MM)
        orientation = exif.get(_ORIENTATION, 1)
        focal = float(focal[0] if isinstance(focal, tuple | list) else focal)
    except (TypeError, ValueError, ZeroDivisionError, IndexError, AttributeError):
        return None
    if not math.isfinite(focal) or not _FOCAL_35MM_RANGE[0] <= focal <= _FOCAL_35MM_RANGE[1]:
        return None
    w, h = image.size
    if orientation in (5, 6, 7, 8):  # stored sideways: displayed width is the stored height
        w, h = h, w
    tan_half_diag = CIPA_DIAGONAL_MM / (2.0 * focal)
    return math.degrees(2.0 * math.atan(tan_half_diag * w / math.hypot(w, h)))
