"""Trees: street rows, yard trees, forests and parks, rasterised as domed crowns.

Crowns are rasterised with one vectorised scatter per (quantised) radius: every crown cell
proposes ``height * 2**24 + tree index`` and ``np.maximum.at`` keeps the tallest, so
overlapping crowns resolve correctly without a Python loop over trees.

Usage::

    tree_h, tree_idx, colours = rasterize_trees(xy, radius, height, colour, n=2400, res_m=0.5)
"""

from __future__ import annotations

import numpy as np

from train.world._roads import RoadRaster
from train.world._scene import FOREST, GRASS
from train.world._styles import TownStyle

_GREENS = np.array(
    [[52, 86, 38], [68, 102, 44], [44, 72, 34], [82, 108, 48], [58, 92, 52], [75, 95, 40]],
    dtype=np.float32,
)


def tree_positions(rng, style: TownStyle, rr: RoadRaster, mat, urban, lots, res_m):
    """(K, 2) east/north tree positions from all sources (before collision filtering)."""
    pts = []
    if style.street_tree_spacing_m > 0 and len(rr.pts):
        step = max(int(style.street_tree_spacing_m / 0.25), 1)
        idx = np.arange(rng.integers(0, step), len(rr.pts), step)
        for side in (1.0, -1.0):
            a, w = rr.dirs[idx], rr.width[idx]
            off = side * (w / 2.0 + style.sidewalk_m + 1.3)
            p = rr.pts[idx] + np.stack([-np.sin(a), np.cos(a)], axis=1) * off[:, None]
            pts.append(p[rng.uniform(size=len(p)) > 0.25])
    for lot in lots:
        k = rng.poisson(style.yard_trees_per_lot)
        if k:
            along = np.array([-lot.normal[1], lot.normal[0]])
            t = rng.uniform(-lot.front / 2.0, lot.front / 2.0, k)
            d = rng.uniform(lot.half_depth + 3.0, lot.half_depth + 9.0, k) * rng.choice(
                [-1.0, 1.0], k
            )
            pts.append(np.array([lot.cx, lot.cy]) + np.outer(t, along) + np.outer(d, lot.normal))
    n = mat.shape[0]
    for m, density in ((FOREST, 1.0 / 22.0), (GRASS, 1.0 / 900.0)):
        cells = np.flatnonzero((mat == m).ravel())
        if m == GRASS:  # parks and meadows: sparse trees, only where not built up
            cells = cells[urban.ravel()[cells] < 0.45]
        count = int(len(cells) * res_m**2 * density)
        if count:
            pick = rng.choice(cells, count)
            e = (pick % n + rng.uniform(0, 1, count)) * res_m
            nn = -(pick // n + rng.uniform(0, 1, count)) * res_m
            pts.append(np.stack([e, nn], axis=1))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def crown_half_height(radius: np.ndarray, height: np.ndarray) -> np.ndarray:
    return np.minimum(radius * 1.1, height * 0.4)


def rasterize_trees(xy, radius, height, n: int, res_m: float):
    """Crown top raster (float32) and the index of the tree owning each cell (-1: none)."""
    key = np.full(n * n, -1, dtype=np.int64)
    rpx = np.maximum(np.round(radius / res_m).astype(np.int64), 1)
    crown = crown_half_height(radius, height)
    for rp in np.unique(rpx):
        sel = np.flatnonzero(rpx == rp)
        cxp, cyp = xy[sel, 0] / res_m, -xy[sel, 1] / res_m
        c0, r0 = np.floor(cxp).astype(np.int64), np.floor(cyp).astype(np.int64)
        for dy in range(-rp - 1, rp + 2):
            for dx in range(-rp - 1, rp + 2):
                cc, rr = c0 + dx, r0 + dy
                d = np.hypot(cc + 0.5 - cxp, rr + 0.5 - cyp) * res_m / radius[sel]
                ok = (d < 1.0) & (cc >= 0) & (cc < n) & (rr >= 0) & (rr < n)
                if not ok.any():
                    continue
                t = sel[ok]
                h = height[t] - crown[t] * (1.0 - np.sqrt(1.0 - d[ok] ** 2))
                np.maximum.at(key, rr[ok] * n + cc[ok], (h * 1000).astype(np.int64) << 24 | t)
    owner = np.where(key >= 0, key & ((1 << 24) - 1), -1).reshape(n, n).astype(np.int32)
    tree_h = np.where(key >= 0, (key >> 24) / 1000.0, 0.0).astype(np.float32).reshape(n, n)
    return tree_h, owner


def tree_colours(rng, count: int) -> np.ndarray:
    return _GREENS[rng.integers(0, len(_GREENS), count)] * rng.uniform(0.85, 1.15, (count, 1))
