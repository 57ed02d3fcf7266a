"""A phone camera's look: exposure error, tone curve, a little blur, then JPEG.

The world renders a photo exactly (:func:`d4g_edge.photo.pano_to_pinhole` of a panorama);
:class:`PhoneLook` then makes it look taken by a phone: auto-exposure that misses by up to
half a stop either way, a tone curve (gamma) that differs from camera to camera, a slightly
soft lens or hand shake (a small Gaussian blur), and JPEG at a phone's quality (70-95).

Usage::

    look = PhoneLook.sample(np.random.default_rng(0))
    data = look.encode(look.apply(photo))      # JPEG bytes
    NO_LOOK.encode(photo, quality=92)           # the exact photo, JPEG only
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

GAIN_RANGE = (2.0**-0.5, 2.0**0.5)  # +-half a stop of exposure error (log-uniform)
GAMMA_RANGE = (0.8, 1.25)
BLUR_MAX_PX = 1.2  # Gaussian radius (sigma) in pixels
QUALITY_RANGE = (70, 95)


@dataclass(frozen=True)
class PhoneLook:
    gain: float = 1.0  # exposure multiplier on linear-ish [0, 1] values
    gamma: float = 1.0  # out = gain * in ** gamma (in, out in [0, 1])
    blur_px: float = 0.0
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        if not (self.gain > 0 and self.gamma > 0 and self.blur_px >= 0):
            raise ValueError(f"PhoneLook needs gain, gamma > 0 and blur_px >= 0, got {self}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> PhoneLook:
        """A random phone (values rounded, so that a CSV row reproduces the look exactly)."""
        gain = math.exp(rng.uniform(*np.log(GAIN_RANGE)))
        return cls(
            gain=round(gain, 4),
            gamma=round(float(rng.uniform(*GAMMA_RANGE)), 4),
            blur_px=round(float(rng.uniform(0.0, BLUR_MAX_PX)), 3),
            jpeg_quality=int(rng.integers(QUALITY_RANGE[0], QUALITY_RANGE[1] + 1)),
        )

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """Tone curve and exposure (one lookup table), then blur; uint8 in, uint8 out."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3:
            raise ValueError(f"expected a uint8 H x W x 3 image, got {rgb.dtype} {rgb.shape}")
        out = rgb
        if self.gain != 1.0 or self.gamma != 1.0:
            levels = np.arange(256, dtype=np.float64) / 255.0
            lut = np.clip(np.rint(255.0 * self.gain * levels**self.gamma), 0, 255)
            out = lut.astype(np.uint8)[rgb]
        if self.blur_px > 0.05:
            blurred = Image.fromarray(out).filter(ImageFilter.GaussianBlur(self.blur_px))
            out = np.asarray(blurred)
        return np.ascontiguousarray(out)

    def encode(self, rgb: np.ndarray, quality: int | None = None) -> bytes:
        """JPEG bytes at ``quality`` (default: the look's own)."""
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality or self.jpeg_quality)
        return buffer.getvalue()


NO_LOOK = PhoneLook()  # the exact render: no exposure error, no blur (JPEG only)
