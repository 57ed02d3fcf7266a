"""Terrain relief, water and land cover (grass, crop fields with rows, forest, paving, sand).

Fields are a warped, irregular rectangular grid at a random angle (cheaper than a Voronoi
diagram and closer to real parcels); each field gets a cover type by the style's fractions.

Usage::

    lc = generate_landcover(rng, style, n=2400, res_m=0.5)
    lc.terrain, lc.mat, lc.rgb, lc.land, lc.forest, lc.urban
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.world._noise import fbm
from train.world._scene import CROP, FOREST, GRASS, PAVED, SAND, WATER
from train.world._styles import TownStyle

_CROP_COLOURS = np.array(
    [[150, 165, 75], [110, 145, 60], [185, 165, 95], [135, 115, 75], [95, 130, 55], [170, 175, 90]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class LandCover:
    terrain: np.ndarray  # float32 (N, N) metres
    mat: np.ndarray  # uint8 material
    rgb: np.ndarray  # float32 (N, N, 3) summer colour, 0..255
    land: np.ndarray  # bool, False on water
    urban: np.ndarray  # float32 in [0, 1]: how built-up an area is (building density)
    field: np.ndarray  # uint16 parcel id


def _coords(n: int, res_m: float) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(n, dtype=np.float32) + 0.5) * res_m
    return c[None, :], -c[:, None]  # east (1, N), north (N, 1)


def _breaks(rng, lo: float, hi: float, span: float) -> np.ndarray:
    out, x = [], -span
    while x < span:
        x += rng.uniform(lo, hi)
        out.append(x)
    return np.asarray(out)


def _water(rng, style: TownStyle, east, north, n: int, size: float, px: float):
    """(land, shore, ramp): where the land is, metres from the water's edge (approx.), and the
    shore ramp (land rises away from water, water is flat at 0 m)."""
    land = np.ones((n, n), dtype=bool)
    ramp = np.ones((n, n), dtype=np.float32)
    shore = np.full((n, n), np.inf, dtype=np.float32)
    if style.water == "coast":
        a = rng.uniform(0, 2 * np.pi)
        nx, ny = np.cos(a), np.sin(a)
        d0 = size * rng.uniform(0.22, 0.32)
        signed = (east - size / 2) * nx + (north + size / 2) * ny + d0
        signed = signed + 30.0 * fbm(rng, (n, n), 160 * px, 3)
        land = signed > 0
        shore = np.abs(signed)
        ramp = np.clip(signed / 120.0, 0.0, 1.0)
    elif style.water == "lake":
        f = fbm(rng, (n, n), 260 * px, 3)
        thr = -0.42
        land = f > thr
        shore = np.abs(f - thr) * 300.0
        ramp = np.clip((f - thr) / 0.25, 0.0, 1.0)
    return land, shore, ramp


def _fields(rng, style: TownStyle, east, north, n: int, size: float, px: float):
    """(cell, n_cells, urban, mat): each pixel's field, the field count, how built-up each
    pixel is and its material. Fields are irregular rectangles at a random angle, boundaries
    warped; each gets a cover type by the style's fractions."""
    phi = rng.uniform(0, np.pi)
    warp = 8.0 * fbm(rng, (n, n), 60 * px, 2)
    fu = (east * np.cos(phi) + north * np.sin(phi)) + warp
    fv = (-east * np.sin(phi) + north * np.cos(phi)) - warp
    bu, bv = _breaks(rng, 50, 150, size), _breaks(rng, 40, 120, size)
    cell = np.searchsorted(bu, fu) * (len(bv) + 1) + np.searchsorted(bv, fv)
    n_cells = (len(bu) + 1) * (len(bv) + 1)
    urban = np.clip(0.5 + 0.9 * fbm(rng, (n, n), 350 * px, 2), 0.0, 1.0)
    cell_urban = np.bincount(cell.ravel(), urban.ravel(), n_cells) / np.maximum(
        np.bincount(cell.ravel(), minlength=n_cells), 1
    )
    r = rng.uniform(size=n_cells)
    # less built-up cells are more likely to be forest/crop
    rural_w = 1.5 - cell_urban
    p_forest = style.forest_frac * rural_w
    p_crop = style.crop_frac * rural_w
    p_paved = style.paved_frac * (0.5 + cell_urban)
    ctype = np.full(n_cells, GRASS, dtype=np.uint8)
    ctype[r < p_forest + p_crop + p_paved] = PAVED
    ctype[r < p_forest + p_crop] = CROP
    ctype[r < p_forest] = FOREST
    return cell, n_cells, urban, ctype[cell]


def _colours(rng, east, north, cell, n_cells: int, mat, n: int, px: float):
    """(rgb, fine): summer colours per material (crop fields with rows) and the fine noise
    that also shades the sand and the water."""
    fine = fbm(rng, (n, n), 6 * px, 3)
    grain = rng.normal(0.0, 1.0, size=(n, n)).astype(np.float32)
    # mostly a brightness change per field, with a little hue so neighbours differ
    tint = rng.uniform(0.85, 1.12, size=(n_cells, 1)) * rng.uniform(0.96, 1.04, size=(n_cells, 3))
    tint = tint.astype(np.float32)
    rgb = np.empty((n, n, 3), dtype=np.float32)
    base = {
        GRASS: (88, 122, 58),
        FOREST: (58, 74, 42),
        PAVED: (142, 140, 134),
    }
    for m, col in base.items():
        sel = mat == m
        rgb[sel] = np.asarray(col, np.float32) * tint[cell[sel]]
    sel = mat == CROP
    if sel.any():
        cc = cell[sel]
        colour = _CROP_COLOURS[rng.integers(0, len(_CROP_COLOURS), n_cells)][cc]
        theta = rng.uniform(0, np.pi, n_cells)[cc]
        period = rng.uniform(1.5, 3.5, n_cells)[cc]
        amp = rng.uniform(0.1, 0.3, n_cells)[cc]
        e, nn = np.broadcast_to(east, (n, n))[sel], np.broadcast_to(north, (n, n))[sel]
        rows = np.sin(2 * np.pi * (e * np.cos(theta) + nn * np.sin(theta)) / period)
        rgb[sel] = colour * (1.0 + amp * rows)[:, None]
    rgb *= (1.0 + 0.12 * fine + 0.04 * grain)[..., None]
    return rgb, fine


def generate_landcover(
    rng: np.random.Generator, style: TownStyle, n: int, res_m: float
) -> LandCover:
    size = n * res_m
    east, north = _coords(n, res_m)
    px = 1.0 / res_m
    # the draws from rng keep their order: water, relief, fields, colours
    land, shore, ramp = _water(rng, style, east, north, n, size, px)
    relief = fbm(rng, (n, n), 300 * px, 4)
    terrain = (0.4 + style.relief_m * (relief + 1.0) / 2.0 * ramp).astype(np.float32)
    terrain[~land] = 0.0
    cell, n_cells, urban, mat = _fields(rng, style, east, north, n, size, px)
    rgb, fine = _colours(rng, east, north, cell, n_cells, mat, n, px)

    beach = land & (shore < (35.0 if style.water == "coast" else 5.0))
    mat[beach] = SAND
    rgb[beach] = np.array([208, 193, 152], np.float32) * (1.0 + 0.05 * fine[beach, None])
    mat[~land] = WATER
    depth = np.clip(shore[~land] / 150.0, 0.0, 1.0)[:, None]
    water = np.array([62, 105, 120], np.float32) * (1 - depth) + np.array([28, 58, 85]) * depth
    rgb[~land] = water * (1.0 + 0.05 * fine[~land, None])
    return LandCover(
        terrain=terrain,
        mat=mat,
        rgb=rgb,
        land=land,
        urban=urban.astype(np.float32),
        field=(cell % 65536).astype(np.uint16),
    )
