"""Any image a user has -> 8-bit RGB ``H x W x 3`` (Pillow + numpy), or a typed error.

Accepted: a path, ``bytes``, a PIL image, or an ``H x W x 3`` ``uint8`` array. Converted where
that is safe: EXIF orientation is applied; grayscale, palette, CMYK and 1-bit images become
RGB; 16-bit images are scaled to 8 bits; an alpha channel is dropped when fully opaque and
otherwise composited on black (transparent pixels carry no scene, black is what the models
saw for "nothing"), with a warning. Refused with :class:`~d4g_edge.errors.ImageError`:
missing, unreadable, truncated or non-image files, closed PIL images, decompression bombs
(more pixels than ``max_pixels``, Pillow's limit by default), float images, arrays of the wrong
shape or dtype, NaN/inf values.

Usage::

    from d4g_edge.image import load_rgb
    rgb = load_rgb("pano.jpg")            # uint8 (H, W, 3)
    rgb = load_rgb(open("pano.jpg", "rb").read())
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from d4g_edge.errors import ImageError
from d4g_edge.log import logger

ImageInput = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def load_rgb(image: ImageInput, *, max_pixels: int | None = None) -> np.ndarray:
    """``image`` as a C-contiguous uint8 ``(H, W, 3)`` RGB array (see module docstring)."""
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, Image.Image):
        return _from_pil(image, "the PIL image", max_pixels)
    if isinstance(image, bytes | bytearray | memoryview):
        return _open(io.BytesIO(bytes(image)), f"{len(image)} bytes of image data", max_pixels)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise ImageError(f"image file {path} does not exist (or is not a file)")
        return _open(path, str(path), max_pixels)
    raise ImageError(
        f"expected a path, bytes, a PIL image or an H x W x 3 uint8 array, got "
        f"{type(image).__name__}"
    )


def _limit(max_pixels: int | None) -> int:
    return int(max_pixels or Image.MAX_IMAGE_PIXELS or 89_478_485)


def _open(fp: Any, what: str, max_pixels: int | None) -> np.ndarray:
    limit = _limit(max_pixels)
    try:
        with warnings.catch_warnings():
            # Pillow only *warns* between its limit and twice it; we refuse at the limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp)
            _check_pixels(img, what, limit)
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(
            f"{what}: refused as a possible decompression bomb ({err}); raise max_pixels if "
            "the image is genuine"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{what} is not an image Pillow can read (JPEG, PNG, TIFF, ...)") from None
    except (OSError, SyntaxError, ValueError) as err:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated").
        raise ImageError(f"{what} is truncated or corrupt: {err}") from None
    return _from_pil(img, what, limit)


def _check_pixels(img: Image.Image, what: str, limit: int) -> None:
    w, h = img.size
    if w * h > limit:
        raise ImageError(
            f"{what} has {w} x {h} = {w * h} pixels, more than the limit {limit}: refused as a "
            "possible decompression bomb; pass max_pixels to allow larger images"
        )
    if w < 1 or h < 1:
        raise ImageError(f"{what} is empty ({w} x {h} pixels)")


def _from_pil(img: Image.Image, what: str, max_pixels: int | None) -> np.ndarray:
    _check_pixels(img, what, _limit(max_pixels))
    _load(img, what)
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception as err:  # broken EXIF must not hide a readable image
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", what, err)
    mode = img.mode
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    if mode in _SIXTEEN_BIT or mode == "I":
        gray = np.asarray(img).astype(np.int64)
        if gray.min(initial=0) < 0 or gray.max(initial=0) > 65535:
            raise ImageError(f"{what}: 32-bit integer pixels outside 0..65535 are not supported")
        gray8 = (gray // 257).astype(np.uint8)  # 65535 -> 255, 0 -> 0
        logger.info("%s: 16-bit grayscale scaled to 8-bit RGB", what)
        return np.ascontiguousarray(np.repeat(gray8[..., None], 3, axis=2))
    if mode == "F":
        raise ImageError(f"{what}: floating-point images are not supported; save as 8-bit RGB")
    try:
        if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
            mode == "P" and "transparency" in img.info
        ):
            # Pillow has no La -> RGBA conversion; La -> LA un-premultiplies first
            return _drop_alpha((img.convert("LA") if mode == "La" else img).convert("RGBA"), what)
        if mode in ("L", "1"):
            logger.warning("%s: grayscale image replicated to RGB; the models saw colour", what)
        elif mode == "CMYK":
            logger.warning("%s: CMYK converted to RGB without a colour profile", what)
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    except (ValueError, OSError) as err:
        raise ImageError(f"{what}: cannot convert mode {mode!r} to RGB ({err})") from None


def _load(img: Image.Image, what: str) -> None:
    """Read a lazily opened PIL image now, so that a closed, truncated or corrupt one is one
    typed error here rather than a bare ValueError/OSError from a later numpy conversion."""
    closed = (
        f"{what} is closed (Image.close() was called, or its `with Image.open(...)` block has "
        "ended before its pixels were read); pass it before closing it, or pass the file's path"
    )
    if getattr(img, "tile", None) and getattr(img, "fp", False) is None:
        # a lazily opened file whose `with` block ended: Pillow would fail an internal assert
        raise ImageError(closed)
    try:
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(
            f"{what}: refused as a possible decompression bomb ({err}); raise max_pixels if "
            "the image is genuine"
        ) from None
    except ValueError as err:
        if "closed" in str(err):  # Pillow: "Operation on closed image"
            raise ImageError(closed) from None
        raise ImageError(f"{what} cannot be read: {err}") from None
    except (OSError, SyntaxError) as err:
        raise ImageError(f"{what} is truncated or corrupt: {err}") from None


def _drop_alpha(rgba: Image.Image, what: str) -> np.ndarray:
    arr = np.asarray(rgba, dtype=np.uint8)
    alpha = arr[..., 3:4]
    if alpha.min() < 255:
        logger.warning("%s: transparent pixels composited on black", what)
        rgb = (arr[..., :3].astype(np.uint16) * alpha // 255).astype(np.uint8)
        return np.ascontiguousarray(rgb)
    return np.ascontiguousarray(arr[..., :3])


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "fc" and arr.size and not np.isfinite(arr).all():
        raise ImageError(
            f"image array has {int(np.size(arr) - np.isfinite(arr).sum())} NaN/inf values; "
            "pass finite uint8 RGB"
        )
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(
            f"image array must have shape (H, W, 3) RGB, got {arr.shape}; for grayscale use "
            "np.repeat(a[..., None], 3, axis=2), for RGBA a[..., :3]"
        )
    if arr.dtype != np.uint8:
        raise ImageError(
            f"image array must be uint8 (0..255), got {arr.dtype}; for floats in [0, 1] pass "
            "(np.clip(a, 0, 1) * 255).round().astype(np.uint8)"
        )
    return np.ascontiguousarray(arr)
