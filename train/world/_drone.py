"""Drone views: a pinhole camera tens to hundreds of metres up, looking down at any pitch.

Every pixel's ray is marched over the capture epoch's height field, only along the stretch
between the highest and the lowest surface of the town (all rays at once, a fixed number of
steps, each at most about a raster cell long). The first sample at or below the surface is the
hit: a roof or the ground when the ray came down onto it from above (shaded and shadowed as
in the satellite renderer: same epoch, season, materials, Lambert slope shading and per-point
cast shadows towards the sun), a wall when the ray entered the cell well below its top
(facade colour with window bands, shaded by the wall's orientation to the sun). Then the
drone's capture: aerial haze by ray length, 2 x 2 supersampling against aliasing when a pixel
covers several raster cells, motion blur, and the sensor (``finish``).

Camera frame: forward is ``pitch`` from nadir towards ``heading`` (clockwise from north); the
image's top points towards the heading, so pitch 0 and heading 0 is a north-up image like a
satellite tile, and heading 90 is that image turned by ``np.rot90(img, 1)``.

Usage::

    img = render_drone(scene, (600.0, -600.0), 120.0, 30.0, 45.0, 60.0, 128, 128, gap, rng,
                       bounds=(scene.terrain.min(), scene.max_height))
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from train.world._gap import DomainGap
from train.world._ground import _HAZE, _sky
from train.world._layers import EpochLayers
from train.world._oblique import wall_colours
from train.world._photometric import AMBIENT, SHADOW_TINT, apply_season, finish, flat_irradiance
from train.world._shadow import _MAX_SHADOW_M, _steps

MAX_RANGE_M = 1500.0  # horizontal reach of a ray; beyond it the ground is lost in the haze
_BLOCK = 6  # coarse march step, cells; the coarse pass reads the max over +-_BLOCK cells
_COARSE = 12  # coarse steps per round before the rays still in flight are re-gathered
_WALL_STEP_M = 1.0  # as the satellite's slope shading: larger jumps are walls, not slopes


def camera_rays(
    pitch_deg: float, heading_deg: float, fov_deg: float, height: int, width: int
) -> np.ndarray:
    """(height * width, 3) unit ray directions (east, north, up), row-major pixel order.

    ``fov_deg`` is the horizontal field of view; pixels are square.
    """
    p, h = np.radians(pitch_deg), np.radians(heading_deg)
    fwd = np.array([np.sin(p) * np.sin(h), np.sin(p) * np.cos(h), -np.cos(p)])
    up = np.array([np.cos(p) * np.sin(h), np.cos(p) * np.cos(h), np.sin(p)])
    right = np.cross(fwd, up)  # east for a north-up nadir camera
    f = (width / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
    x = (np.arange(width) + 0.5 - width / 2.0) / f
    y = (height / 2.0 - np.arange(height) - 0.5) / f
    d = fwd + x[None, :, None] * right + y[:, None, None] * up
    d = d.reshape(-1, 3)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def render_drone(
    scene,
    pos_en,
    altitude_m: float,
    pitch_deg: float,
    heading_deg: float,
    fov_deg: float,
    height: int,
    width: int,
    gap: DomainGap,
    rng: np.random.Generator,
    bounds: tuple[float, float],
) -> np.ndarray:
    """(height, width, 3) uint8; ``bounds`` = (lowest terrain, highest surface) of the scene."""
    res = scene.res_m
    r = min(max(int(-pos_en[1] / res), 0), scene.size_px - 1)
    c = min(max(int(pos_en[0] / res), 0), scene.size_px - 1)
    cam = np.array([float(pos_en[0]), float(pos_en[1]), float(scene.terrain[r, c]) + altitude_m])
    nadir_gsd = 2.0 * altitude_m * np.tan(np.radians(fov_deg) / 2.0) / width
    ss = 2 if nadir_gsd > 2.5 * res else 1  # a pixel spans several cells: average 2 x 2 rays
    dirs = camera_rays(pitch_deg, heading_deg, fov_deg, height * ss, width * ss)
    lay = EpochLayers(scene, gap)
    colour, length = _trace(lay, cam, dirs, gap, bounds)
    fog = np.exp(-length / gap.visibility_m)[:, None]
    img = (colour * fog + _HAZE * (1.0 - fog)).astype(np.float32)
    img = img.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
    if gap.motion_blur_px >= 0.5:
        img = _motion_blur(img, gap.motion_blur_px, gap.motion_blur_deg)
    return finish(img, gap, rng)


def _motion_blur(img: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """Average along a line of ``length_px`` pixels through each pixel (a moving camera)."""
    n = int(np.ceil(length_px)) * 2 + 1
    k = np.zeros((n, n), np.float32)
    t = np.linspace(-length_px / 2.0, length_px / 2.0, 4 * n)
    a = np.radians(angle_deg)
    xs = np.round(n // 2 + t * np.cos(a)).astype(np.int64)
    ys = np.round(n // 2 - t * np.sin(a)).astype(np.int64)
    np.add.at(k, (ys, xs), 1.0)
    k /= k.sum()
    return np.stack([ndimage.convolve(img[..., i], k, mode="nearest") for i in range(3)], -1)


def _trace(lay: EpochLayers, cam: np.ndarray, dirs: np.ndarray, gap: DomainGap, bounds):
    """(N, 3) float colour before haze and (N,) ray length to the hit (inf: no hit)."""
    scene = lay.scene
    res, n_px = scene.res_m, scene.size_px
    zlo, zhi = bounds
    down = -dirs[:, 2]
    hs = np.hypot(dirs[:, 0], dirs[:, 1])
    ok = down > 1e-4
    safe_down = np.where(ok, down, 1.0)
    t0 = np.maximum((cam[2] - zhi - 0.01) / safe_down, 0.0)
    t1 = (cam[2] - zlo + 1.0) / safe_down  # 1 m below the lowest ground: > a fine step
    t1 = np.minimum(t1, MAX_RANGE_M / np.maximum(hs, 1e-9))
    ok &= t1 > t0
    colour = np.empty((len(dirs), 3), np.float32)
    length = np.full(len(dirs), np.inf)
    colour[:] = _HAZE
    up = dirs[:, 2] >= 0
    if up.any():
        az = np.arctan2(dirs[up, 0], dirs[up, 1])
        colour[up] = _sky(az, np.arcsin(np.clip(dirs[up, 2], -1.0, 1.0)), gap)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return colour, length
    # window of the raster that any sample can reach, clipped to the world
    ends = cam[None, :2] + dirs[idx, None, :2] * np.stack([t0[idx], t1[idx]], 1)[..., None]
    e_min, e_max = ends[..., 0].min(), ends[..., 0].max()
    n_min, n_max = ends[..., 1].min(), ends[..., 1].max()
    r0 = int(np.clip(np.floor(-n_max / res) - 1, 0, n_px))
    r1 = int(np.clip(np.floor(-n_min / res) + 2, 0, n_px))
    c0 = int(np.clip(np.floor(e_min / res) - 1, 0, n_px))
    c1 = int(np.clip(np.floor(e_max / res) + 2, 0, n_px))
    if r1 <= r0 or c1 <= c0:
        return colour, length
    top = lay.top_height(r0, r1, c0, c1).astype(np.float32)
    win = _Window(top, r0, c0, res)
    hit_t, cell, side = _march(win, cam, dirs[idx], t0[idx], t1[idx], down[idx], hs[idx], res)
    found = np.flatnonzero(np.isfinite(hit_t))
    if found.size == 0:
        return colour, length
    sel = idx[found]
    d = dirs[sel]
    pts = cam[None, :] + d * hit_t[found, None]
    cells = (cell[0][found], cell[1][found])
    colour[sel] = _surface(lay, top, (r0, c0), cells, pts, side[found], d, gap, zhi)
    length[sel] = hit_t[found]
    return colour, length


class _Window:
    """Top heights of a raster window (and their max over (2 * _BLOCK + 1)^2 neighbourhoods),
    padded with one ring of -inf so that samples outside the window (and the world) miss."""

    def __init__(self, top: np.ndarray, r0: int, c0: int, res: float) -> None:
        top_max = ndimage.maximum_filter(top, size=2 * _BLOCK + 1, mode="nearest")
        self.shape = top.shape
        self.top = np.pad(top, 1, constant_values=-np.inf).ravel()
        self.top_max = np.pad(top_max, 1, constant_values=-np.inf).ravel()
        self.r0, self.c0, self.inv_res = r0, c0, np.float32(1.0 / res)

    def index(self, x: np.ndarray, y: np.ndarray):
        """Flat index into the padded window, and the raster (row, col), of points (x, y)."""
        h, w = self.shape
        rr = np.floor(-y * self.inv_res).astype(np.int64) - self.r0
        cc = np.floor(x * self.inv_res).astype(np.int64) - self.c0
        flat = np.clip(rr + 1, 0, h + 1) * (w + 2) + np.clip(cc + 1, 0, w + 1)
        return flat, rr + self.r0, cc + self.c0


def _march(win: _Window, cam, dirs, t_start, t_end, down, hs, res):
    """First surface hit of every ray between ``t_start`` and ``t_end``: (t or inf, (row,
    col) of the cell hit, wall?). Coarse steps of <= _BLOCK cells (and <= 4 m down) over the
    neighbourhood-max heights skip the stretches where no hit is possible; fine steps of
    <= 0.7 cell (and <= 0.5 m down) resolve the hit inside the first segment that may hold one.
    """
    n = len(dirs)
    cam, dirs = cam.astype(np.float32), dirs.astype(np.float32)
    t_start, t_end = t_start.astype(np.float32), t_end.astype(np.float32)
    down, hs = down.astype(np.float32), hs.astype(np.float32)
    hit_t = np.full(n, np.inf)
    row = np.zeros(n, np.int64)
    col = np.zeros(n, np.int64)
    side = np.zeros(n, bool)
    dt_c = np.minimum(_BLOCK * res / np.maximum(hs, 1e-9), 4.0 / down)
    dt_f = np.minimum(0.7 * res / np.maximum(hs, 1e-9), 0.5 / down)
    n_fine = int(np.ceil(np.max(dt_c / dt_f))) + 1
    t = t_start.copy()
    act = np.arange(n)
    j = np.arange(_COARSE, dtype=np.float32)
    while act.size:
        # coarse: segment [t + j dt, t + (j+1) dt] may hold a hit where the neighbourhood max
        # at its start reaches the ray's height at its end
        tj = t[act, None] + dt_c[act, None] * j[None, :]
        x = cam[0] + dirs[act, 0, None] * tj
        y = cam[1] + dirs[act, 1, None] * tj
        z_end = cam[2] + dirs[act, 2, None] * (tj + dt_c[act, None])
        hmax = win.top_max[win.index(x, y)[0]]
        maybe = (hmax >= z_end) & (tj < t_end[act, None])
        has = maybe.any(axis=1)
        first = maybe.argmax(axis=1)
        # rays with no candidate segment move on by the whole coarse stretch
        t[act[~has]] += dt_c[act[~has]] * _COARSE
        seg = act[has]
        ts = t[seg] + dt_c[seg] * first[has]
        # fine: from one fine step before the segment (known free) to its end
        k = np.arange(n_fine + 1, dtype=np.float32)
        tf = ts[:, None] + dt_f[seg, None] * (k[None, :] - 1)
        x = cam[0] + dirs[seg, 0, None] * tf
        y = cam[1] + dirs[seg, 1, None] * tf
        z = cam[2] + dirs[seg, 2, None] * tf
        flat, rr, cc = win.index(x, y)
        h = win.top[flat]
        hit = (z <= h) & (tf <= t_end[seg, None])
        hit[:, 0] = False
        got = hit.any(axis=1)
        kk = hit.argmax(axis=1)
        g, kg = np.flatnonzero(got), kk[got]
        rays = seg[g]
        hk, zk, tk, tp = h[g, kg], z[g, kg], tf[g, kg], tf[g, kg - 1]
        wall = hk - zk > down[rays] * (tk - tp) + 0.3
        # a top hit: where the ray crosses the surface height within the last fine step
        hit_t[rays] = np.where(wall, tk, np.clip((cam[2] - hk) / down[rays], tp, tk))
        row[rays], col[rays], side[rays] = rr[g, kg], cc[g, kg], wall
        # no hit in this segment (the max was elsewhere in the neighbourhood): continue after it
        miss = seg[~got]
        t[miss] = tf[~got, -1]
        done = np.isfinite(hit_t) | (t >= t_end)
        act = act[~done[act]]
    return hit_t, (row, col), side


def _surface(lay: EpochLayers, top, origin, cell, pts, side, dirs, gap: DomainGap, zhi):
    """Colour of the surface each ray hit: a lit/shaded top, or a wall."""
    scene = lay.scene
    n_px = scene.size_px
    row, col = cell
    flat = row * n_px + col
    g = lay.gather(flat)
    rgb, veg = lay.gather_colour(flat, g["oid"])
    rgb = apply_season(rgb, veg, gap)
    out = np.empty_like(rgb)
    tops = ~side
    if tops.any():
        out[tops] = _lit_top(lay, top, origin, row[tops], col[tops], pts[tops], rgb[tops], gap, zhi)
    if side.any():
        toward = -dirs[side, :2]
        toward /= np.maximum(np.linalg.norm(toward, axis=1, keepdims=True), 1e-9)
        z_rel = pts[side, 2] - g["terrain"][side]
        out[side] = wall_colours(scene.objects, g["oid"][side], rgb[side], z_rel, toward, gap)
    return out


def _lit_top(lay: EpochLayers, top, origin, row, col, pts, rgb, gap: DomainGap, zhi) -> np.ndarray:
    """Satellite-style shading of top surfaces: slope (Lambert), cast shadow, sky-blue tint."""
    scene = lay.scene
    res = scene.res_m
    wr, wc = row - origin[0], col - origin[1]
    hh, ww = top.shape

    def at(dr, dc):
        return top[np.clip(wr + dr, 0, hh - 1), np.clip(wc + dc, 0, ww - 1)]

    def slope(fwd, bwd):
        ok_f, ok_b = np.abs(fwd) <= _WALL_STEP_M, np.abs(bwd) <= _WALL_STEP_M
        total = np.where(ok_f, fwd, 0.0) + np.where(ok_b, bwd, 0.0)
        return total / np.maximum(ok_f.astype(np.float32) + ok_b, 1.0) / res

    h0 = at(0, 0)
    ge = slope(at(0, 1) - h0, h0 - at(0, -1))
    gn = -slope(at(1, 0) - h0, h0 - at(-1, 0))  # rows grow southwards
    sun = gap.sun_vector()
    ndots = (-ge * sun[0] - gn * sun[1] + sun[2]) / np.sqrt(1.0 + ge * ge + gn * gn)
    lit = _lit_points(lay, pts[:, 0], pts[:, 1], h0, gap, zhi)
    irradiance = AMBIENT + (1.0 - AMBIENT) * np.maximum(ndots, 0.0) * lit
    shade = (irradiance / flat_irradiance(gap)).astype(np.float32)
    tint = 1.0 + (SHADOW_TINT - 1.0) * (1.0 - lit)[:, None]
    return rgb * (shade[:, None] * tint)


def _lit_points(lay: EpochLayers, east, north, z, gap: DomainGap, zhi: float) -> np.ndarray:
    """1 where the sun reaches the surface point, 0 in shadow (the satellite's rule, per point:
    the sun ray passes through some cell's occupied interval; crowns only below their top and
    above their underside)."""
    scene = lay.scene
    res, n_px = scene.res_m, scene.size_px
    tan_el = np.tan(np.radians(gap.sun_elevation_deg))
    length_px = int(min(max(zhi - z.min(), 0.0) / tan_el, _MAX_SHADOW_M) / res) + 1
    az = np.radians(gap.sun_azimuth_deg)
    se, sn = np.sin(az), np.cos(az)
    shadow = np.zeros(len(east), bool)
    alive = lay.alive
    for s in _steps(length_px):
        d = s * res
        e, n = east + se * d, north + sn * d
        r = np.clip(np.floor(-n / res).astype(np.int64), 0, n_px - 1)
        c = np.clip(np.floor(e / res).astype(np.int64), 0, n_px - 1)
        flat = r * n_px + c
        ray = z + d * tan_el
        top, solid = lay.gather_heights(flat)
        blocked = top > ray
        if blocked.any():
            cand = np.flatnonzero(blocked & (solid <= ray))  # only a crown can rise above here
            if cand.size:
                tid = scene.tree_id.ravel()[flat[cand]]
                crown = (tid >= 0) & ~alive[scene.obj_id.ravel()[flat[cand]]]
                low = np.full(cand.size, np.inf)
                if crown.any():
                    ce, cn = (c[cand][crown] + 0.5) * res, -(r[cand][crown] + 0.5) * res
                    under = scene.trees.underside(tid[crown], ce, cn)
                    low[crown] = scene.terrain.ravel()[flat[cand][crown]] + under
                blocked[cand] = low < ray[cand]
            shadow |= blocked
    return (~shadow).astype(np.float32)
