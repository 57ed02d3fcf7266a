"""A ground picture -> the encoder inputs of :class:`d4g_edge.Localizer`: a panorama and its
heading search, or a phone photo placed into the panorama canvas (issue 23).

Heading. The ground models expect a panorama with north at its centre column. A panorama
whose centre column looks at azimuth ``h`` (degrees clockwise from north) is rolled north-up
before encoding. An unknown heading is searched: ``N`` circular rolls (:func:`heading_grid`:
0, 360/N, ... degrees) are encoded in one batch, the best roll's answer is kept, and its
heading is refined below the ``360 / N`` step by a parabola through the best roll's score
and its two neighbours' (:func:`refine_heading`). ``N`` is :data:`DEFAULT_HEADINGS` for
panoramas and :data:`PHOTO_HEADINGS` for photos; ``python -m benchmarks.bench_photo``
measured the choice (docs: within 25 m, heading error and cost per N).

Photos. ``fov_deg`` is a photo's horizontal field of view, (0, 360] degrees. The photo is
placed into an equirectangular canvas of the encoder's input (:func:`d4g_edge.photo.
photo_to_pano` on :func:`~d4g_edge.photo.canvas_for`: a pinhole up to 120 degrees, cylindrical
beyond; level camera; :data:`~d4g_edge.photo.FILL_RGB` where the photo does not reach) at the
known heading, or at heading 0 and then rolled as a panorama is. ``fov_deg=360`` is a
panorama. ``fov_deg=None`` reads the field of view from the EXIF 35 mm-equivalent focal
length (:func:`exif_fov`) of an image given as a file, bytes or PIL image that is narrower
than :data:`PANORAMA_ASPECT` (2:1: an equirectangular panorama is 2:1, and a 360-degree
camera may write a focal length too); otherwise the image is a panorama. A photo wider than
:data:`PHOTO_OVERSAMPLE` columns per canvas column over its field of view is first shrunk
with a box filter (bilinear placement alone would alias a 4000-pixel photo into 64 canvas
columns; the photo students were trained at that resolution). The degenerate-image check
(:func:`d4g_edge.trust.image_problem`) runs on the photo itself, not on its canvas.

Usage::

    from d4g_edge.ground_query import ground_inputs, heading_grid, refine_heading
    x, headings, fov = ground_inputs(rgb, cfg, heading=None, fov=70.0, headings=24)
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from d4g_edge import photo
from d4g_edge.config import EncoderConfig
from d4g_edge.errors import SearchError
from d4g_edge.preprocess import preprocess

# rolls searched when the heading is unknown (benchmarks.bench_photo measured the choice on
# the 1,200 VIGOR test panoramas at random headings: 8 -> 36 rolls took the within-25 m rate
# with the heading searched from 19 % to 33 % for 3x the cost, and 72 rolls only to 34 %)
DEFAULT_HEADINGS = 36  # panoramas: 10-degree steps
PHOTO_HEADINGS = 36  # photos (fov_deg < 360)
REFINE_HEADING = True  # parabolic sub-step refinement of the best roll's heading
PANORAMA_ASPECT = 2.0  # an image this much wider than high is a panorama: its EXIF is not read
PHOTO_OVERSAMPLE = 2.0  # a photo keeps this many columns per canvas column (as in training)


def heading_grid(n: int) -> np.ndarray:
    """The ``n`` headings an unknown heading is searched over: 0, 360/n, ... degrees."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise SearchError(f"headings must be an integer >= 1, got {n!r}")
    return np.arange(n) * 360.0 / n


def refine_heading(scores: np.ndarray, best: int | None = None) -> float:
    """The sub-step offset, in steps in [-0.5, 0.5], of the peak of a parabola through the
    score of the best of ``n`` evenly spaced headings (circular) and its two neighbours'; 0
    when there are fewer than 3 headings or the three are flat or not a peak."""
    s = np.asarray(scores, np.float64)
    n = len(s)
    best = int(np.argmax(s)) if best is None else int(best)
    if n < 3:
        return 0.0
    left, mid, right = s[(best - 1) % n], s[best], s[(best + 1) % n]
    curve = left - 2.0 * mid + right
    if not curve < 0:  # not a peak (flat, or the best is not above both): nothing to fit
        return 0.0
    return float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5))


def roll_shift(heading_deg: float, width: int) -> int:
    """Columns to roll an input whose centre column looks at ``heading_deg`` north-up."""
    return round(heading_deg / 360.0 * width) % width


def circular_error(a, b) -> np.ndarray:
    """|a - b| on the circle, degrees in [0, 180]."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) % 360.0
    return np.minimum(d, 360.0 - d)


def exif_fov(image, shape: tuple[int, ...] | None = None) -> float | None:
    """The horizontal field of view (degrees) in a photo's EXIF
    (:func:`d4g_edge.photo.horizontal_fov_from_exif`), or None: for arrays (no EXIF), for
    images at least :data:`PANORAMA_ASPECT` times wider than high (a panorama), and for
    images without a usable 35 mm-equivalent focal length. ``shape``: the decoded image's,
    when known (else the file's size is read)."""
    if isinstance(image, bytearray | memoryview):
        image = bytes(image)
    if not isinstance(image, str | os.PathLike | bytes | Image.Image):
        return None
    # a panorama's shape is known before its file is opened again for EXIF: every panorama
    # given as a path (the common query) skips that second open
    if shape is not None and _panorama_shaped(shape):
        return None
    fov = photo.horizontal_fov_from_exif(image)
    if fov is None:
        return None
    if shape is None:
        if isinstance(image, Image.Image):
            shape = image.size
        else:
            with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as img:
                shape = img.size
    return None if _panorama_shaped(shape) else fov


def _panorama_shaped(shape) -> bool:
    # the aspect ratio, whichever side is up (EXIF orientation swaps them)
    return max(shape[:2]) >= PANORAMA_ASPECT * min(shape[:2])


def check_fov(value) -> float | None:
    """A ground query's horizontal field of view: None (unknown), else (0, 360] degrees."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise SearchError(f"fov_deg must be a number of degrees or None, got {value!r}")
    v = float(value)
    if not (np.isfinite(v) and 0.0 < v <= 360.0):
        raise SearchError(
            f"fov_deg is the photo's horizontal field of view and must be in (0, 360] degrees "
            f"(360: a panorama), got {value!r}"
        )
    return v


def shrink_photo(rgb: np.ndarray, fov: float, canvas_width: int) -> np.ndarray:
    """``rgb`` box-filtered down to :data:`PHOTO_OVERSAMPLE` columns per canvas column over
    its field of view, when it has more."""
    width = max(8, round(PHOTO_OVERSAMPLE * canvas_width * fov / 360.0))
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    size = (width, max(2, round(h * width / w)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))


def place_photo(rgb: np.ndarray, fov: float, heading: float, cfg: EncoderConfig) -> np.ndarray:
    """(1, 3, H, W) encoder input of a photo placed into ``cfg``'s canvas at ``heading``
    (the canvas covers the full sphere, as the VIGOR-trained encoders' panoramas did)."""
    size, band = photo.canvas_for(cfg)
    rgb = shrink_photo(rgb, fov, size[1])
    canvas, _ = photo.photo_to_pano(
        rgb, fov_deg=fov, heading_deg=heading, out_size=size, vfov_band=band
    )
    return preprocess(canvas, cfg)


def ground_inputs(
    rgb: np.ndarray,
    cfg: EncoderConfig,
    *,
    heading: float | None,
    fov: float | None,
    headings: int,
    photo_headings: int | None = None,
    grid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(R, 3, H, W) inputs of a ground picture, the heading of each, and the field of view
    it was read as (360: a panorama). ``heading`` known: one input, north-up; None: the rolls
    of :func:`heading_grid` (``headings`` for a panorama, ``photo_headings`` for a photo) or
    of ``grid`` (a benchmark's union of several grids). ``fov``: checked by
    :func:`check_fov`; None is a panorama (the caller reads EXIF first)."""
    fov = check_fov(fov)
    if fov is None or fov >= 360.0:
        x, fov, n = preprocess(rgb, cfg), 360.0, headings
    elif heading is not None:  # placed where it looks: no roll, no rounding to columns
        return place_photo(rgb, fov, heading, cfg), np.array([heading % 360.0]), fov
    else:
        x, n = place_photo(rgb, fov, 0.0, cfg), photo_headings or headings
    if heading is not None:
        hs = np.array([float(heading) % 360.0])
    else:
        hs = heading_grid(n) if grid is None else np.asarray(grid, np.float64)
    shifts = [roll_shift(h, x.shape[3]) for h in hs]
    rolls = [np.roll(x, k, axis=3) if k else x for k in shifts]  # no copy for north-up
    return (rolls[0] if len(rolls) == 1 else np.concatenate(rolls)), hs, fov  # one: no copy
