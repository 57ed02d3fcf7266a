"""Street-level views (equirectangular panorama, pinhole) from the marched height field.

Surfaces hit from above take the top colour (ground, water, roofs); surfaces hit from the side
are walls: a building wall is intersected analytically with its box (exact position along
the wall, storey and window rows, orientation for shading), cars get body/glass/wheel bands,
tree crowns darken towards their underside. Distance haze and a sky gradient finish it.

Usage::

    img = render_view(scene, accel, pos, az, el, eye_h, gap, rng, pixel_rad=2*np.pi/512)
"""

from __future__ import annotations

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
    lay = EpochLayers(scene, gap.time_gap)
    hits = march_columns(lay, accel, pos, az, el, eye_h)
    azf = np.broadcast_to(az[None, :], el.shape)
    img = _sky(azf, el, gap)
    haze = _HORIZON * 0.95
    far_ground = (hits.k >= len(DIST)) & (el < 0)
    img[far_ground] = haze
    rr, cc = np.nonzero(hits.k < len(DIST))
    if rr.size:
        img[rr, cc] = _shade_hits(
            lay,
            pos,
            azf[rr, cc],
            el[rr, cc],
            hits.k[rr, cc],
            hits.eye_z,
            gap,
            pixel_rad,
            haze,
            max_rise_m,
        )
    return finish(img, gap, rng)


def _shade_hits(lay, pos, az, el, k, eye_z, gap, pixel_rad, haze, max_rise_m):
    scene = lay.scene
    n, res = scene.size_px, scene.res_m
    d = DIST[k]
    d_prev = np.where(k > 0, DIST[np.maximum(k - 1, 0)], 0.0)
    sa, ca = np.sin(az), np.cos(az)
    col = np.clip(np.floor((pos[0] + sa * d) / res).astype(np.int64), 0, n - 1)
    row = np.clip(np.floor((-pos[1] - ca * d) / res).astype(np.int64), 0, n - 1)
    flat = row * n + col
    g = lay.gather(flat)
    tan_el = np.tan(el)
    side = eye_z + d_prev * tan_el < g["top"] - 1e-3  # the ray was already below the top
    rgb, veg = lay.gather_colour(flat, g["oid"])
    rgb = apply_season(rgb, veg, gap.season)
    dist = d.copy()

    # tops: flat lighting and cast shadows near the camera
    r0, c0 = int(-pos[1] / res - _SHADOW_RADIUS_M / res), int(pos[0] / res - _SHADOW_RADIUS_M / res)
    span = int(2 * _SHADOW_RADIUS_M / res)
    lit_w = lit_mask(lay.top_height, r0, r0 + span, c0, c0 + span, gap, res, max_rise_m)
    wr, wc = row - r0, col - c0
    inside = (wr >= 0) & (wr < span) & (wc >= 0) & (wc < span)
    lit = np.ones(len(k), np.float32)
    lit[inside] = lit_w[wr[inside], wc[inside]]
    top_shade = (
        AMBIENT + (1.0 - AMBIENT) * np.sin(np.radians(gap.sun_elevation_deg)) * lit
    ) / flat_irradiance(gap)
    tint = 1.0 + (SHADOW_TINT - 1.0) * (1.0 - lit)[:, None]
    out = rgb * (top_shade[:, None] * tint)

    kind = scene.objects.kind[g["oid"]]
    rel = g["top"] - g["terrain"]
    bld = side & (kind == BUILDING)
    if bld.any():
        colour, t = building_walls(
            scene.objects,
            g["oid"][bld],
            pos,
            az[bld],
            tan_el[bld],
            eye_z,
            d[bld],
            g["terrain"][bld],
            rgb[bld],
            gap,
            pixel_rad,
        )
        out[bld], dist[bld] = colour, t
    car = side & (kind == CAR)
    if car.any():
        z = eye_z + d[car] * tan_el[car] - g["terrain"][car]
        body = scene.objects.facade[g["oid"][car]].astype(np.float32) * 0.72
        body[(z > 0.9) & (z < 1.4)] = (35, 40, 48)
        body[z < 0.35] = (28, 28, 30)
        out[car] = body
    tree = side & (g["oid"] == 0) & (rel > 0.3)
    if tree.any():
        z = eye_z + d[tree] * tan_el[tree] - g["terrain"][tree]
        f = 0.45 + 0.45 * np.clip(z / np.maximum(rel[tree], 0.1), 0.0, 1.0)
        out[tree] = rgb[tree] * f[:, None]
    fog = np.exp(-dist / np.maximum(np.cos(el), 0.05) / gap.visibility_m)[:, None]
    return out * fog + haze * (1.0 - fog)
