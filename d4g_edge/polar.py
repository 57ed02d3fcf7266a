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

import functools

import numpy as np

from d4g_edge.errors import GeoError, ImageError


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
        raise ImageError(f"tile must be a square H x W x C image, got shape {tile.shape}")
    index, weight = _polar_grid(tile.shape[0], int(height), int(width), float(north_column))
    return _bilinear(tile.astype(np.float32), index, weight)


@functools.lru_cache(maxsize=16)
def _polar_grid(size: int, height: int, width: int, north_column: float):
    """Where each output pixel samples a ``size``-pixel tile, computed once per geometry (a
    reference build polar-transforms every tile 25 times): the flat indices of the four
    neighbours (4, H, W) and their bilinear weights (4, H, W, 1), float64 as always."""
    radius = size / 2 * (1 - (np.arange(height) + 0.5) / height)
    azimuth = np.radians((np.arange(width) + 0.5) * 360.0 / width - 360.0 * north_column)
    # continuous pixel coordinates: east = +x, north = -y; pixel (r, c) centred at (c+.5, r+.5)
    x = size / 2 + radius[:, None] * np.sin(azimuth)[None, :] - 0.5
    y = size / 2 - radius[:, None] * np.cos(azimuth)[None, :] - 0.5
    # clamp at the border (the neighbours' pair stays inside)
    col, row = np.clip(x, 0, size - 1), np.clip(y, 0, size - 1)
    c0 = np.minimum(np.floor(col).astype(np.int64), size - 2)
    r0 = np.minimum(np.floor(row).astype(np.int64), size - 2)
    fc, fr = (col - c0)[..., None], (row - r0)[..., None]
    i00 = r0 * size + c0
    index = np.stack([i00, i00 + 1, i00 + size, i00 + size + 1])
    weight = np.stack([(1 - fc) * (1 - fr), fc * (1 - fr), (1 - fc) * fr, fc * fr])
    index.setflags(write=False)  # shared by every call
    weight.setflags(write=False)
    return index, weight


def _bilinear(img: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img``: its pixels at the flat neighbour ``index`` weighted."""
    flat = img.reshape(-1, img.shape[2])
    a, b, c, d = (flat[i] for i in index)
    return (a * weight[0] + b * weight[1] + c * weight[2] + d * weight[3]).astype(np.float32)


def shift_tile(tile: np.ndarray, east_px: float, north_px: float, fill) -> np.ndarray:
    """The tile translated so that the point ``(east_px, north_px)`` from its centre becomes
    the centre; pixels that come from outside the tile are ``fill`` (per channel).

    A polar transform of the result looks around that point instead of the tile centre: this
    is how an off-centre camera (VIGOR, any grid of tiles) is matched. Whole-pixel shifts
    (rounded), because one pixel is well below the position accuracy a tile gives.
    """
    tile = np.asarray(tile)
    if tile.ndim != 3:
        raise ImageError(f"tile must be an H x W x C image, got shape {tile.shape}")
    dx, dy = round(float(east_px)), round(-float(north_px))  # image y points south
    if dx == 0 and dy == 0:
        return tile
    h, w = tile.shape[:2]
    out = np.empty_like(tile)
    out[...] = np.asarray(fill, dtype=tile.dtype)
    # out[y, x] = tile[y + dy, x + dx] where that lies inside the tile
    ys, yd = slice(max(dy, 0), min(h + dy, h)), slice(max(-dy, 0), min(h - dy, h))
    xs, xd = slice(max(dx, 0), min(w + dx, w)), slice(max(-dx, 0), min(w - dx, w))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[yd, xd] = tile[ys, xs]
    return out


def cell_centres(stride: float, step: float) -> np.ndarray:
    """``(n * n, 2)`` polar centres (east, north), in tile sides from the tile centre, that
    cover a tile's own cell of a grid whose neighbouring tiles lie ``stride`` tile sides apart
    (VIGOR: 0.5, abutting web-map tiles: 1.0) with centres at most ``step`` apart.

    A query anywhere in the cell is then within ``step / 2`` (per axis) of one centre; the
    encoder was trained with that much jitter around the true position.
    """
    if not (stride > 0 and step > 0):
        raise GeoError(f"stride and step must be positive, got {stride} and {step}")
    n = max(1, int(np.ceil(stride / step - 1e-9)))
    ticks = ((np.arange(n) + 0.5) / n - 0.5) * stride
    north, east = np.meshgrid(ticks[::-1], ticks, indexing="ij")
    return np.stack([east.ravel(), north.ravel()], axis=1)
