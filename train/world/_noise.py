"""Smooth random fields (value noise, fBm) used for terrain, land cover and textures.

Separable bilinear upsampling of a coarse random grid, with a smoothstep on the fraction so
the cells do not show as a grid. Fast enough for multi-megapixel rasters (tens of ms).

Usage::

    f = fbm(rng, (600, 600), scale_px=120, octaves=4)   # float32, roughly in [-1, 1]
"""

from __future__ import annotations

import numpy as np


def _axis_weights(n: int, scale_px: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    x = (np.arange(n, dtype=np.float64) + 0.5) / scale_px + offset
    i0 = np.floor(x).astype(np.int64)
    f = x - i0
    return i0, (f * f * (3.0 - 2.0 * f)).astype(np.float32)  # smoothstep


def _upsample(a: np.ndarray, shape: tuple[int, int], step: int) -> np.ndarray:
    """Bilinear upsampling by an integer factor, cropped to ``shape``."""
    y = (np.arange(shape[0]) + 0.5) / step - 0.5
    x = (np.arange(shape[1]) + 0.5) / step - 0.5
    y0 = np.clip(np.floor(y).astype(np.int64), 0, a.shape[0] - 2)
    x0 = np.clip(np.floor(x).astype(np.int64), 0, a.shape[1] - 2)
    fy = np.clip(y - y0, 0, 1).astype(np.float32)[:, None]
    fx = np.clip(x - x0, 0, 1).astype(np.float32)
    rows = a[y0] * (1.0 - fy) + a[y0 + 1] * fy
    return rows[:, x0] * (1.0 - fx) + rows[:, x0 + 1] * fx


def value_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """One octave: a random grid with spacing ``scale_px`` interpolated to ``shape``."""
    scale_px = max(float(scale_px), 1.0)
    ry, fy = _axis_weights(shape[0], scale_px, rng.uniform(0, 1))
    rx, fx = _axis_weights(shape[1], scale_px, rng.uniform(0, 1))
    grid = rng.uniform(-1.0, 1.0, size=(ry[-1] + 2, rx[-1] + 2)).astype(np.float32)
    rows = grid[ry] * (1.0 - fy)[:, None] + grid[ry + 1] * fy[:, None]
    return rows[:, rx] * (1.0 - fx) + rows[:, rx + 1] * fx


def fbm(
    rng: np.random.Generator,
    shape: tuple[int, int],
    scale_px: float,
    octaves: int = 4,
    gain: float = 0.5,
) -> np.ndarray:
    """Fractal sum of octaves (each half the scale, ``gain`` the amplitude); float32.

    Smooth fields are built on a coarser grid and upsampled once: a 300 m terrain field does
    not need 0.5 m samples per octave, and this keeps multi-megapixel worlds fast.
    """
    step = int(max(1.0, scale_px / 2 ** (octaves - 1) / 4.0))
    if step > 1:
        small = (-(-shape[0] // step) + 1, -(-shape[1] // step) + 1)
        coarse = fbm(rng, small, scale_px / step, octaves, gain)
        return _upsample(coarse, shape, step)
    out = np.zeros(shape, dtype=np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * value_noise(rng, shape, scale_px / (2**o))
        total += amp
        amp *= gain
    return out / total


def hash01(*ints: np.ndarray) -> np.ndarray:
    """A uniform [0, 1] float32 per element, a deterministic hash of integer arrays."""
    h = np.zeros_like(ints[0], dtype=np.uint64)
    for i, v in enumerate(ints):
        h ^= (v.astype(np.int64).astype(np.uint64) + np.uint64(0x9E3779B9 + i)) * np.uint64(
            0x85EBCA6B
        )
        h = (h ^ (h >> np.uint64(13))) * np.uint64(0xC2B2AE35)
    return ((h >> np.uint64(40)) & np.uint64(0xFFFF)).astype(np.float32) / 65535.0
