"""Colour-level parts of the domain gap shared by both renderers: season, lighting, sensor.

Usage::

    rgb = apply_season(rgb, field, gap)   # field: land-cover field id + 1 on vegetation
    img = finish(rgb, gap, rng)   # exposure, white balance, saturation, blur, noise -> uint8
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from train.world._gap import DomainGap
from train.world._noise import hash01

# vegetation gains at season 0 (summer), 0.5 (dry late summer) and 1 (late autumn)
_SEASON_KEYS = np.array([[1.0, 1.0, 1.0], [1.28, 1.08, 0.72], [1.2, 0.86, 0.62]], np.float32)
AMBIENT = 0.42  # share of sky light: keeps shadows and walls facing away readable


def apply_season(rgb: np.ndarray, field: np.ndarray, gap: DomainGap) -> np.ndarray:
    """Shift vegetation from summer green towards dry yellow / autumn brown.

    ``field`` is 0 off vegetation and the land-cover field id + 1 on it; with
    ``gap.field_variation`` every field gets its own season offset and brightness.
    """
    veg = field > 0
    if not veg.any() or (gap.season <= 0.0 and gap.field_variation <= 0.0):
        return rgb
    f = field[veg]
    season = np.full(len(f), gap.season, np.float32)
    bright = np.ones(len(f), np.float32)
    if gap.field_variation > 0.0:
        seed = np.full_like(f, gap.variation_seed)
        season += 0.5 * gap.field_variation * (2.0 * hash01(f, seed) - 1.0)
        bright += 0.25 * gap.field_variation * (2.0 * hash01(f, seed + 1) - 1.0)
        season = np.clip(season, 0.0, 1.0)
    t = season * 2.0
    i = np.minimum(t.astype(np.int64), 1)
    w = (t - i)[:, None]
    gains = _SEASON_KEYS[i] * (1.0 - w) + _SEASON_KEYS[i + 1] * w
    out = rgb.copy()
    v = out[veg]
    grey = v.mean(axis=-1, keepdims=True)
    v = grey + (v - grey) * (1.0 - 0.35 * season)[:, None]  # autumn vegetation is less saturated
    out[veg] = v * gains * bright[:, None]
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
        img = img + np.float32(gap.noise_sigma) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
