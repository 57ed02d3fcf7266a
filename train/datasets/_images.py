"""Bit-depth-aware conversion of a decoded Pillow image to 8-bit RGB.

``Image.convert("RGB")`` clips high-bit-depth pixels instead of scaling them: a 16-bit PNG
(mode ``I;16``, values up to 65535) becomes all-255 white and a float TIFF (mode ``F``,
values in [0, 1]) all-0/1 black, and training or evaluation then runs on blank images
without a word. 16-bit images are scaled by their bit depth (65535 -> 255); modes whose
range the file does not state (32-bit integer ``I``, float ``F``) are refused with a
typed error that names the file.

Usage::

    with Image.open(path) as img:
        rgb = to_rgb8(img, path)       # PIL.Image in mode "RGB"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ._errors import DatasetFormatError

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_NO_STATED_RANGE = ("I", "F")


def to_rgb8(img: Image.Image, path: str | Path) -> Image.Image:
    """``img`` as an 8-bit RGB image, scaling 16-bit modes; refuses 32-bit int and float."""
    if img.mode in _SIXTEEN_BIT:
        wide = np.asarray(img, dtype=np.uint32)
        # 65535 / 257 == 255 exactly, so full scale maps to full scale and 257 * v -> v.
        gray = ((wide + 128) // 257).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if img.mode in _NO_STATED_RANGE:
        kind = "32-bit integer" if img.mode == "I" else "floating-point"
        raise DatasetFormatError(
            path,
            f"{kind} image (Pillow mode {img.mode!r}) has no defined 0..max range, so it "
            "cannot be converted to 8-bit RGB without guessing",
            hint="save it as an 8- or 16-bit PNG/JPEG",
        )
    return img.convert("RGB")
