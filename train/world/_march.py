"""Height-field ray marching for street-level views, one march per image column.

With zero roll and pitch every image column (panorama or pinhole) looks along one azimuth, so
all rays of a column share a 2-D path over the height field. Marching that path once gives,
per distance step, the elevation angle of the top of the surface there; a ray at elevation
``el`` hits the first step whose *running maximum* of those angles reaches ``el`` (anything
nearer and taller occludes it). One ``searchsorted`` finds that step for every ray at once.

Steps are 0.25 m near the camera and grow geometrically (2.5 %) with distance. Columns stop
early once no remaining cell can rise above what they already see, using a per-world coarse
max-height grid (:class:`MarchAccel`).

Tree crowns float: a second running maximum without them (``k_solid``) tells where a ray that
passes under a crown lands instead (on the ground or a building behind).

Usage::

    accel = MarchAccel.build(scene)
    hit = march_columns(lay, accel, pos, az, el, eye_h=2.0)   # hit.k == len(DIST): sky
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.world._layers import EpochLayers
from train.world._scene import Scene

MAX_RANGE_M = 600.0
DIST = np.concatenate(
    [
        np.arange(0.1, 12.0, 0.25),
        12.0 * 1.025 ** np.arange(1, int(np.log(MAX_RANGE_M / 12.0) / np.log(1.025)) + 2),
    ]
)
_CHUNK = 24
_BELOW = -2.0  # an elevation below any ray (radians), for steps a column never marched
_COL_STRIDE = 4.0  # > pi/2 - _BELOW: separates columns in one flattened sorted array


@dataclass(frozen=True)
class MarchAccel:
    """Coarse max-height blocks of a scene (conservative for every capture epoch)."""

    block_m: float
    centres: np.ndarray  # (B, 2) east, north
    max_h: np.ndarray  # (B,)

    @classmethod
    def build(cls, scene: Scene, block_px: int = 64) -> MarchAccel:
        n = scene.size_px
        top = scene.terrain + np.maximum(scene.base_h, scene.obj_h)
        nb = -(-n // block_px)
        pad = np.full((nb * block_px, nb * block_px), -np.inf, dtype=np.float32)
        pad[:n, :n] = top
        blocks = pad.reshape(nb, block_px, nb, block_px).max(axis=(1, 3))
        idx = (np.arange(nb) + 0.5) * block_px * scene.res_m
        east, north = np.meshgrid(idx, -idx)
        return cls(
            block_px * scene.res_m, np.stack([east.ravel(), north.ravel()], 1), blocks.ravel()
        )

    def height_bound(self, pos, dists: np.ndarray) -> np.ndarray:
        """Max height of any cell at distance >= d from ``pos``, for each d in ``dists``."""
        far = np.hypot(*(self.centres - np.asarray(pos)).T) + self.block_m * 0.7072
        order = np.argsort(-far)
        suffix = np.maximum.accumulate(self.max_h[order])  # max over blocks reaching >= far
        pos_in = np.searchsorted(-far[order], -np.asarray(dists), side="right")
        return np.where(pos_in > 0, suffix[np.maximum(pos_in - 1, 0)], -np.inf)


@dataclass(frozen=True)
class ColumnHits:
    k: np.ndarray  # (H, W) step index hit by each ray, len(DIST) = nothing (sky)
    k_solid: np.ndarray  # (H, W) the same, ignoring tree crowns
    eye_z: float


def _resolve(angles: np.ndarray, el: np.ndarray) -> np.ndarray:
    """First step whose running max elevation reaches each ray's elevation, for all columns
    in one searchsorted (columns are offset by _COL_STRIDE so the keys stay sorted)."""
    w, k_total = angles.shape
    running = np.maximum.accumulate(angles, axis=1)
    off = _COL_STRIDE * np.arange(w)
    keys = (running + off[:, None]).ravel()
    idx = np.searchsorted(keys, (el + off[None, :]).ravel(), side="left").reshape(el.shape)
    return idx - (np.arange(w) * k_total)[None, :]


def march_columns(
    lay: EpochLayers, accel: MarchAccel, pos, az: np.ndarray, el: np.ndarray, eye_h: float
) -> ColumnHits:
    """March every column (azimuth ``az[c]``) and resolve every ray ``el[r, c]`` (radians)."""
    scene = lay.scene
    n, res = scene.size_px, scene.res_m
    ce, cn = float(pos[0]), float(pos[1])
    rc = np.clip(int(-cn / res), 0, n - 1), np.clip(int(ce / res), 0, n - 1)
    eye_z = float(scene.terrain[rc]) + eye_h
    w, k_total = len(az), len(DIST)
    sa, ca = np.sin(az), np.cos(az)
    angles = np.full((w, k_total), _BELOW)
    solid = np.full((w, k_total), _BELOW)
    run = np.full(w, _BELOW)
    need = el.max(axis=0)  # a column is finished once its highest ray is occluded
    hb = accel.height_bound((ce, cn), DIST)
    bound = np.arctan2(hb - eye_z, np.where(hb > eye_z, DIST, MAX_RANGE_M))
    active = np.arange(w)
    terrain = scene.terrain.ravel()
    for k0 in range(0, k_total, _CHUNK):
        k1 = min(k0 + _CHUNK, k_total)
        d = DIST[k0:k1]
        col = np.floor((ce + sa[active, None] * d) / res).astype(np.int64)
        row = np.floor((-cn - ca[active, None] * d) / res).astype(np.int64)
        outside = (col < 0) | (col >= n) | (row < 0) | (row >= n)
        flat = np.clip(row, 0, n - 1) * n + np.clip(col, 0, n - 1)
        h, hs = lay.gather_heights(flat)
        h = np.where(outside, terrain[flat], h)  # beyond the border: bare ground continues
        hs = np.where(outside, terrain[flat], hs)
        ix = (active[:, None], np.arange(k0, k1)[None, :])
        angles[ix] = np.arctan2(h - eye_z, d)
        a = np.arctan2(hs - eye_z, d)
        solid[ix] = a
        # termination looks at the solid pass: it is the lower of the two running maxima
        run[active] = np.maximum(run[active], a.max(axis=1))
        if k1 < k_total:
            r = run[active]
            active = active[(r < bound[k1]) & (r < need[active])]
            if active.size == 0:
                break
    return ColumnHits(k=_resolve(angles, el), k_solid=_resolve(solid, el), eye_z=eye_z)
