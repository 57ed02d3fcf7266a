"""Colour-level parts of the domain gap shared by both renderers: season, lighting, sensor.

Usage::

    rgb = apply_season(rgb, veg_mask, gap.season)
    img = finish(rgb, gap, rng)   # exposure, white balance, saturation, blur, noise -> uint8
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from train.world._gap import DomainGap

# vegetation gains at season 0 (summer), 0.5 (dry late summer) and 1 (late autumn)
_SEASON_KEYS = np.array([[1.0, 1.0, 1.0], [1.28, 1.08, 0.72], [1.2, 0.86, 0.62]], np.float32)
AMBIENT = 0.42  # share of sky light: keeps shadows and walls facing away readable


def apply_season(rgb: np.ndarray, veg: np.ndarray, season: float) -> np.ndarray:
    """Shift vegetation (``veg`` mask) from summer green towards dry yellow / autumn brown."""
    if season <= 0.0 or not veg.any():
        return rgb
    t = season * 2.0
    i = min(int(t), 1)
    gains = _SEASON_KEYS[i] * (1.0 - (t - i)) + _SEASON_KEYS[i + 1] * (t - i)
    out = rgb.copy()
    v = out[veg]
    grey = v.mean(axis=-1, keepdims=True)
    v = grey + (v - grey) * (1.0 - 0.35 * season)  # autumn vegetation is less saturated
    out[veg] = v * gains
    return out


def flat_irradiance(gap: DomainGap) -> float:
    """Irradiance of flat, sunlit ground; the auto-exposure of both cameras normalises it."""
    return AMBIENT + (1.0 - AMBIENT) * float(np.sin(np.radians(gap.sun_elevation_deg)))


SHADOW_TINT = np.array([0.88, 0.95, 1.12], np.float32)  # shadows are lit by the blue sky


def finish(img: np.ndarray, gap: DomainGap, rng: np.random.Generator) -> np.ndarray:
    """Camera response: exposure, white balance, saturation, blur, noise; float HWC -> uint8."""
    img = img * (gap.exposure * np.asarray(gap.colour_shift, np.float32))
    if gap.saturation != 1.0:
        grey = img.mean(axis=-1, keepdims=True)
        img = grey + (img - grey) * gap.saturation
    if gap.blur_sigma > 0.05:
        img = ndimage.gaussian_filter(img, (gap.blur_sigma, gap.blur_sigma, 0), mode="nearest")
    if gap.noise_sigma > 0.0:
        img = img + rng.normal(0.0, gap.noise_sigma, img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
