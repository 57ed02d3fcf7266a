"""The CVGL polar transform of a satellite tile (numpy only; used on device and in training).

A north-up square tile is resampled so that its centre (the camera) becomes the bottom row
and its inscribed circle the top row, with azimuth along the columns under this project's
panorama convention (north at ``x = W/2``, azimuth clockwise). The tile then lines up with a
ground panorama column by column (Shi et al., SAFA), and a 90-degree rotation of the tile
becomes a circular roll of the columns, like the panorama's.

Usage::

    from d4g_edge.polar import polar_transform
    polar = polar_transform(tile, height=64, width=256)   # (64, 256, 3) float32
"""

from __future__ import annotations

import numpy as np


def polar_transform(
    tile: np.ndarray, height: int, width: int, *, north_column: float = 0.5
) -> np.ndarray:
    """Resample a north-up square tile into a ``height x width`` panorama-like image.

    Row ``i`` looks at radius ``S/2 * (1 - (i + 0.5) / height)`` pixels from the centre (row 0
    at the tile border, i.e. the horizon); column ``j`` at azimuth ``(j + 0.5) * 360 / width``
    degrees minus ``360 * north_column`` clockwise from north (``north_column = 0.5``: north at
    ``x = W/2``, this project's panoramas). Bilinear, float32, channels kept.
    """
    tile = np.asarray(tile)
    if tile.ndim != 3 or tile.shape[0] != tile.shape[1]:
        raise ValueError(f"tile must be a square H x W x C image, got shape {tile.shape}")
    size = tile.shape[0]
    radius = size / 2 * (1 - (np.arange(height) + 0.5) / height)
    azimuth = np.radians((np.arange(width) + 0.5) * 360.0 / width - 360.0 * north_column)
    # continuous pixel coordinates: east = +x, north = -y; pixel (r, c) centred at (c+.5, r+.5)
    x = size / 2 + radius[:, None] * np.sin(azimuth)[None, :]
    y = size / 2 - radius[:, None] * np.cos(azimuth)[None, :]
    return _bilinear(tile.astype(np.float32), x - 0.5, y - 0.5)


def _bilinear(img: np.ndarray, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Sample ``img`` at fractional (row, col) indices, clamping at the border."""
    h, w = img.shape[:2]
    col = np.clip(col, 0, w - 1)
    row = np.clip(row, 0, h - 1)
    c0 = np.minimum(np.floor(col).astype(np.int64), w - 2)
    r0 = np.minimum(np.floor(row).astype(np.int64), h - 2)
    fc = (col - c0)[..., None]
    fr = (row - r0)[..., None]
    top = img[r0, c0] * (1 - fc) + img[r0, c0 + 1] * fc
    bottom = img[r0 + 1, c0] * (1 - fc) + img[r0 + 1, c0 + 1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)
