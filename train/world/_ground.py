"""Street-level views (equirectangular panorama, pinhole) from the marched height field.

Surfaces hit from above take the top colour (ground, water, roofs), bilinearly sampled at the
exact ray/ground intersection so the near field is not blocky. Surfaces hit from the side are
walls: a building wall is intersected analytically with its box (exact position along the
wall, storeys and window rows, orientation shading); cars get body/glass/wheel bands; a ray
that meets a tree crown above its underside sees foliage, one below it passes under the
crown (to the trunk, or whatever lies behind). Distance haze and a sky gradient finish it.

Usage::

    img = render_view(scene, accel, pos, az, el, eye_h, gap, rng, pixel_rad, max_rise_m)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.world._gap import DomainGap
from train.world._layers import EpochLayers
from train.world._march import DIST, MarchAccel, march_columns
from train.world._photometric import AMBIENT, SHADOW_TINT, apply_season, finish, flat_irradiance
from train.world._scene import BUILDING, CAR, Scene
from train.world._shadow import lit_mask
from train.world._walls import building_walls

_SHADOW_RADIUS_M = 45.0
_ZENITH = np.array([72, 122, 196], np.float32)
_HORIZON = np.array([190, 208, 226], np.float32)
_HAZE = _HORIZON * 0.95
_TRUNK = np.array([88, 72, 58], np.float32)


@dataclass(frozen=True)
class _View:
    lay: EpochLayers
    pos: tuple[float, float]
    eye_z: float
    gap: DomainGap
    pixel_rad: float
    lit: np.ndarray  # sunlit mask of the window around the camera
    lit_origin: tuple[int, int]


def _sky(az: np.ndarray, el: np.ndarray, gap: DomainGap) -> np.ndarray:
    t = np.clip(el / (np.pi / 2), 0.0, 1.0) ** 0.6
    sky = _HORIZON * (1.0 - t[..., None]) + _ZENITH * t[..., None]
    sun = gap.sun_vector()
    cos_ang = np.cos(el) * (np.sin(az) * sun[0] + np.cos(az) * sun[1]) + np.sin(el) * sun[2]
    glow = 70.0 * np.exp((cos_ang - 1.0) * 10.0) + 120.0 * (cos_ang > 0.9996)
    return sky + glow[..., None]


def render_view(
    scene: Scene,
    accel: MarchAccel,
    pos,
    az: np.ndarray,
    el: np.ndarray,
    eye_h: float,
    gap: DomainGap,
    rng: np.random.Generator,
    pixel_rad: float,
    max_rise_m: float,
) -> np.ndarray:
    """Colour of rays ``(az[c], el[r, c])`` (radians) seen from ``pos`` at ``eye_h``; uint8 HWC."""
    lay = EpochLayers(scene, gap)
    hits = march_columns(lay, accel, pos, az, el, eye_h)
    res = scene.res_m
    r0 = int(-pos[1] / res - _SHADOW_RADIUS_M / res)
    c0 = int(pos[0] / res - _SHADOW_RADIUS_M / res)
    span = int(2 * _SHADOW_RADIUS_M / res)
    lit = lit_mask(lay, r0, r0 + span, c0, c0 + span, gap, res, max_rise_m)
    view = _View(lay, (float(pos[0]), float(pos[1])), hits.eye_z, gap, pixel_rad, lit, (r0, c0))

    azf = np.broadcast_to(az[None, :], el.shape)
    img = np.empty((*el.shape, 3), np.float32)
    miss = hits.k >= len(DIST)
    img[miss & (el < 0)] = _HAZE  # beyond the march range: ground lost in the haze
    sky = miss & (el >= 0)
    img[sky] = _sky(azf[sky], el[sky], gap)
    rr, cc = np.nonzero(hits.k < len(DIST))
    colour, dist, under = _surface(view, azf[rr, cc], el[rr, cc], hits.k[rr, cc], True)
    if under.any():  # rays passing under a crown: trunk, or what the solid pass found
        ru, cu = rr[under], cc[under]
        ks = hits.k_solid[ru, cu]
        sub = np.broadcast_to(_HAZE, (len(ru), 3)).copy()
        up = el[ru, cu] >= 0
        sub[up] = _sky(azf[ru, cu][up], el[ru, cu][up], gap)
        sub_d = np.zeros(len(ru))  # sky seen under a crown: no haze
        ok = ks < len(DIST)
        if ok.any():
            sub[ok], sub_d[ok], _ = _surface(view, azf[ru, cu][ok], el[ru, cu][ok], ks[ok], False)
        tid = _crown_tree(view, azf[ru, cu], hits.k[ru, cu])
        sub, sub_d = _trunks(view, tid, azf[ru, cu], el[ru, cu], sub, sub_d)
        colour[under], dist[under] = sub, sub_d
    fog = np.exp(-dist / np.maximum(np.cos(el[rr, cc]), 0.05) / gap.visibility_m)[:, None]
    img[rr, cc] = colour * fog + _HAZE * (1.0 - fog)
    return finish(img, gap, rng)


def _cells(view: _View, az: np.ndarray, d: np.ndarray):
    scene = view.lay.scene
    n, res = scene.size_px, scene.res_m
    east, north = view.pos[0] + np.sin(az) * d, view.pos[1] + np.cos(az) * d
    col = np.clip(np.floor(east / res).astype(np.int64), 0, n - 1)
    row = np.clip(np.floor(-north / res).astype(np.int64), 0, n - 1)
    return row, col, east, north


def _lit_at(view: _View, east, north) -> np.ndarray:
    """Bilinear sunlit fraction at points; 1 outside the shadow window around the camera."""
    res = view.lay.scene.res_m
    y = -north / res - 0.5 - view.lit_origin[0]
    x = east / res - 0.5 - view.lit_origin[1]
    span = view.lit.shape[0]
    out = np.ones(len(east), np.float32)
    ok = (y >= 0) & (y < span - 1) & (x >= 0) & (x < span - 1)
    y0, x0 = y[ok].astype(np.int64), x[ok].astype(np.int64)
    fy, fx = (y[ok] - y0).astype(np.float32), (x[ok] - x0).astype(np.float32)
    m = view.lit
    top = m[y0, x0] * (1 - fx) + m[y0, x0 + 1] * fx
    bot = m[y0 + 1, x0] * (1 - fx) + m[y0 + 1, x0 + 1] * fx
    out[ok] = top * (1 - fy) + bot * fy
    return out


def _crown_tree(view: _View, az, k) -> np.ndarray:
    row, col, _, _ = _cells(view, az, DIST[k])
    return view.lay.scene.tree_id[row, col]


def _ground_colour(view: _View, east, north) -> np.ndarray:
    """Bilinear base colour at exact ground points."""
    s = view.lay.scene
    n, res = s.size_px, s.res_m
    x, y = east / res - 0.5, -north / res - 0.5
    x0 = np.clip(np.floor(x).astype(np.int64), 0, n - 2)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, n - 2)
    fx, fy = np.clip(x - x0, 0, 1)[:, None], np.clip(y - y0, 0, 1)[:, None]
    rgb = s.base_rgb
    top = rgb[y0, x0] * (1 - fx) + rgb[y0, x0 + 1] * fx
    bot = rgb[y0 + 1, x0] * (1 - fx) + rgb[y0 + 1, x0 + 1] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def _surface(view: _View, az, el, k, with_trees: bool):
    """Colour, distance and a "passes under a crown" mask for rays hitting step ``k``."""
    lay, eye_z, gap = view.lay, view.eye_z, view.gap
    scene = lay.scene
    d = DIST[k]
    d_prev = np.where(k > 0, DIST[np.maximum(k - 1, 0)], 0.0)
    row, col, _, _ = _cells(view, az, d)
    flat = row * scene.size_px + col
    g = lay.gather(flat)
    top = g["top"] if with_trees else g["solid"]
    tan_el = np.tan(el)
    side = eye_z + d_prev * tan_el < top - 1e-3  # the ray was already below the top
    rgb, veg = lay.gather_colour(flat, g["oid"], crowns=with_trees)
    dist = d.copy()

    # tops: exact ground intersection, flat lighting, cast shadows near the camera
    on_crown = scene.tree_id.ravel()[flat] >= 0
    flat_top = ~side & (g["oid"] == 0) & (el < 0) & ~(on_crown & with_trees)
    if flat_top.any():
        t = np.clip((top[flat_top] - eye_z) / tan_el[flat_top], d_prev[flat_top], d[flat_top])
        e = view.pos[0] + np.sin(az[flat_top]) * t
        nn = view.pos[1] + np.cos(az[flat_top]) * t
        gain = lay.material_gain[scene.base_mat.ravel()[flat[flat_top]]]
        rgb[flat_top] = _ground_colour(view, e, nn) * gain
        dist[flat_top] = t
    if not with_trees:  # ground under a crown is in its shade
        rgb[on_crown & (g["oid"] == 0)] *= 0.55
    rgb = apply_season(rgb, veg, gap)
    res = scene.res_m
    lit = _lit_at(view, (col + 0.5) * res, -(row + 0.5) * res)
    if flat_top.any():  # exact ground points: soft shadow edges
        lit[flat_top] = _lit_at(view, e, nn)
    sun_el = np.radians(gap.sun_elevation_deg)
    shade = (AMBIENT + (1.0 - AMBIENT) * np.sin(sun_el) * lit) / flat_irradiance(gap)
    out = rgb * (shade[:, None] * (1.0 + (SHADOW_TINT - 1.0) * (1.0 - lit)[:, None]))

    kind = scene.objects.kind[g["oid"]]
    bld = side & (kind == BUILDING)
    if bld.any():
        out[bld], dist[bld] = building_walls(
            scene.objects,
            g["oid"][bld],
            view.pos,
            az[bld],
            tan_el[bld],
            eye_z,
            d[bld],
            g["terrain"][bld],
            rgb[bld],
            gap,
            view.pixel_rad,
        )
    z_rel = eye_z + d * tan_el - g["terrain"]
    car = side & (kind == CAR)
    if car.any():
        body = scene.objects.facade[g["oid"][car]].astype(np.float32) * 0.72
        zc = z_rel[car]
        body[(zc > 0.9) & (zc < 1.4)] = (35, 40, 48)
        body[zc < 0.35] = (28, 28, 30)
        out[car] = body
    under = np.zeros(len(k), dtype=bool)
    if with_trees:
        crown = np.flatnonzero(side & (g["oid"] == 0) & (g["top"] > g["solid"] + 0.3))
        if crown.size:
            tid = scene.tree_id.ravel()[flat[crown]]
            t, normal = _crown_hit(view, tid, g["terrain"][crown], az[crown], el[crown])
            hit = np.isfinite(t)
            under[crown[~hit]] = True
            ndots = np.maximum(normal[hit] @ gap.sun_vector(), 0.0)
            leaf = (AMBIENT + (1.0 - AMBIENT) * ndots) / flat_irradiance(gap)
            out[crown[hit]] = rgb[crown[hit]] * leaf[:, None]
            dist[crown[hit]] = t[hit] * np.cos(el[crown[hit]])
    return out, dist, under


def _crown_hit(view: _View, tid, terrain, az, el):
    """Ray/ellipsoid intersection with crowns: 3-D distance (inf on a miss), unit normals."""
    trees = view.lay.scene.trees
    scale = np.stack([trees.radius[tid], trees.radius[tid], trees.crown[tid]], axis=1)
    centre = np.stack(
        [
            trees.centre[tid, 0],
            trees.centre[tid, 1],
            terrain + trees.height[tid] - trees.crown[tid],
        ],
        axis=1,
    )
    eye = np.array([view.pos[0], view.pos[1], view.eye_z])
    direction = np.stack([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)], axis=1)
    o, v = (eye - centre) / scale, direction / scale
    a, b, c = (v * v).sum(1), 2.0 * (o * v).sum(1), (o * o).sum(1) - 1.0
    disc = b * b - 4.0 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    t = (-b - root) / (2.0 * a)
    t = np.where(c < 0, 0.0, t)  # the eye inside a crown: foliage right in front
    t = np.where((disc >= 0) & ((-b + root) > 0), t, np.inf)
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * v
    normal = p / scale
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    return t, normal


def _trunks(view: _View, tid, az, el, colour, dist):
    """Overlay the trunk of the crown a ray passed under, where the ray meets it first."""
    trees = view.lay.scene.trees
    ok = tid >= 0
    if not ok.any():
        return colour, dist
    c = trees.centre[tid[ok]]
    de, dn = np.sin(az[ok]), np.cos(az[ok])
    rel_e, rel_n = c[:, 0] - view.pos[0], c[:, 1] - view.pos[1]
    t = rel_e * de + rel_n * dn  # closest approach along the ray
    lateral = np.abs(rel_e * dn - rel_n * de)
    radius = np.maximum(0.12 + 0.04 * trees.radius[tid[ok]], 0.5 * t * view.pixel_rad)
    hit = (lateral < radius) & (t > 0) & (t < dist[ok])
    idx = np.flatnonzero(ok)[hit]
    shade = 0.6 + 0.4 * (lateral[hit] / radius[hit])  # rounder look: darker towards the edge
    colour[idx] = _TRUNK * (1.25 - 0.5 * shade)[:, None]
    dist[idx] = t[hit]
    return colour, dist
