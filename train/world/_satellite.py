"""Orthographic, north-up satellite tile with hill/roof shading and cast shadows.

Work happens on the raster window under the tile (cheaper than per tile pixel when the GSD
is finer than the raster): top colour for the epoch, season, Lambert shading from the height
gradient, shadows; then one bilinear resample onto the tile's pixel centres.

Usage::

    tile = render_satellite(scene, (600.0, -600.0), 256, 0.3, gap, rng, max_rise_m=20.0)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from train.world._gap import DomainGap
from train.world._layers import EpochLayers, window
from train.world._noise import fbm
from train.world._oblique import margins, oblique_hits, view_steps, wall_colours
from train.world._photometric import AMBIENT, SHADOW_TINT, apply_season, finish, flat_irradiance
from train.world._scene import Scene
from train.world._shadow import lit_mask

_WALL_STEP_M = 1.0  # a jump larger than this between neighbouring cells is a wall, not a slope


def tile_raster_coords(center_en, size_px: int, gsd_m: float, res_m: float):
    """Continuous raster coordinates (row, col; cell centres at integers) of tile pixel centres.

    Pixel (r, c) centre: east = ce + (c + 0.5 - W/2) * gsd, north = cn - (r + 0.5 - H/2) * gsd.
    """
    k = np.arange(size_px, dtype=np.float64) + 0.5 - size_px / 2.0
    east = center_en[0] + k * gsd_m
    north = center_en[1] - k * gsd_m
    return -north / res_m - 0.5, east / res_m - 0.5  # (rows,), (cols,)


def _slope(h: np.ndarray, axis: int, res: float) -> np.ndarray:
    """Surface slope along ``axis`` ignoring walls: one-sided differences that do not cross a
    height jump, so roofs and the ground next to buildings are shaded as what they are."""
    fwd = np.diff(h, axis=axis, append=np.take(h, [-1], axis=axis))
    bwd = np.diff(h, axis=axis, prepend=np.take(h, [0], axis=axis))
    ok_f, ok_b = np.abs(fwd) <= _WALL_STEP_M, np.abs(bwd) <= _WALL_STEP_M
    total = np.where(ok_f, fwd, 0.0) + np.where(ok_b, bwd, 0.0)
    return total / np.maximum(ok_f.astype(np.float32) + ok_b, 1.0) / res


def _bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Separable bilinear sampling of HWC ``img`` on the grid ys x xs (window coordinates)."""
    y0 = np.clip(np.floor(ys).astype(np.int64), 0, img.shape[0] - 2)
    x0 = np.clip(np.floor(xs).astype(np.int64), 0, img.shape[1] - 2)
    fy = np.clip(ys - y0, 0.0, 1.0).astype(np.float32)[:, None, None]
    fx = np.clip(xs - x0, 0.0, 1.0).astype(np.float32)[None, :, None]
    rows = img[y0] * (1.0 - fy) + img[y0 + 1] * fy
    return rows[:, x0] * (1.0 - fx) + rows[:, x0 + 1] * fx


def render_satellite(
    scene: Scene,
    center_en,
    size_px: int,
    gsd_m: float,
    gap: DomainGap,
    rng: np.random.Generator,
    max_rise_m: float,
) -> np.ndarray:
    res = scene.res_m
    ys, xs = tile_raster_coords(center_en, size_px, gsd_m, res)
    r0, r1 = int(np.floor(ys.min())) - 2, int(np.floor(ys.max())) + 4
    c0, c1 = int(np.floor(xs.min())) - 2, int(np.floor(xs.max())) + 4
    lay = EpochLayers(scene, gap)
    steps = view_steps(gap, res, max_rise_m)
    m0, m1, m2, m3 = margins(steps)
    er0, er1, ec0, ec1 = r0 - m0, r1 + m1, c0 - m2, c1 + m3  # window plus the lean
    h = lay.top_height(er0, er1, ec0, ec1)
    rgb, veg = lay.top_colour(er0, er1, ec0, ec1)
    rgb = apply_season(rgb, veg, gap)

    ge, gn = _slope(h, 1, res), -_slope(h, 0, res)  # rows grow southwards
    sun = gap.sun_vector()
    ndots = (-ge * sun[0] - gn * sun[1] + sun[2]) / np.sqrt(1.0 + ge * ge + gn * gn)
    lit = lit_mask(lay, er0, er1, ec0, ec1, gap, res, max_rise_m)
    irradiance = AMBIENT + (1.0 - AMBIENT) * np.maximum(ndots, 0.0) * lit
    shade = (irradiance / flat_irradiance(gap)).astype(np.float32)
    tint = 1.0 + (SHADOW_TINT - 1.0) * (1.0 - lit)[..., None]
    img = rgb * (shade[..., None] * tint)
    if steps is not None:
        terrain = window(scene.terrain, r0, r1, c0, c1)
        hits = oblique_hits(h, terrain, (m0, m2), steps)
        img = img[hits.iy, hits.ix]
        if hits.side.any():
            iy, ix = hits.iy[hits.side], hits.ix[hits.side]
            oid = window(scene.obj_id, er0, er1, ec0, ec1)[iy, ix]
            oid = np.where(lay.alive[oid], oid, 0)
            z_rel = hits.z[hits.side] - window(scene.terrain, er0, er1, ec0, ec1)[iy, ix]
            img[hits.side] = wall_colours(scene.objects, oid, rgb[iy, ix], z_rel, steps.toward, gap)

    ratio = gsd_m / res
    if ratio > 1.3:  # anti-alias before decimating the raster
        s = 0.45 * ratio
        img = ndimage.gaussian_filter(img, (s, s, 0), mode="nearest")
    img = _bilinear(img, ys - r0, xs - c0)
    if gap.cloud_cover > 0.0:
        img = img * _cloud_shadow(rng, size_px, gsd_m, gap)[..., None]
    return finish(img, gap, rng)


def _cloud_shadow(rng: np.random.Generator, size_px: int, gsd_m: float, gap: DomainGap):
    """Soft-edged cloud shadows covering about ``gap.cloud_cover`` of the tile: the direct sun
    is blocked there, only sky light remains."""
    f = fbm(rng, (size_px, size_px), 60.0 / gsd_m, 3)
    thr = np.quantile(f, 1.0 - gap.cloud_cover)
    cover = np.clip((f - thr) / 0.15 + 0.5, 0.0, 1.0)
    return 1.0 - (1.0 - AMBIENT / flat_irradiance(gap)) * cover
