"""Building walls seen from the street: exact box intersection, windows, orientation shading.

The height-field march only says *which* building a ray hits; intersecting the ray with that
building's oriented box gives the exact wall, the position along it and the height on it, so
storeys and window columns are crisp and the wall's orientation shades it. Window rows are
symmetric about each wall's centre, so mirroring the world mirrors the facades exactly.

Usage::

    colour, dist = building_walls(objects, oid, pos, az, tan_el, eye_z, d, terrain, roof_rgb,
                                  gap, pixel_rad)
"""

from __future__ import annotations

import numpy as np

from train.world._gap import DomainGap
from train.world._noise import hash01
from train.world._photometric import AMBIENT, flat_irradiance
from train.world._scene import Objects

_GLASS = np.array([58, 70, 88], np.float32)
_WIN_FRAC = 0.48  # window width / pitch
_WIN_ROWS = (0.32, 0.78)  # window band within a storey (fraction of storey height)


def _box_entry(objects: Objects, oid, pos, az):
    """Entry distance, outward wall normal (east, north), position along the wall, wall half
    length and whether the wall is a gable end (perpendicular to the ridge, u axis)."""
    c, ang, half = objects.centre[oid], objects.angle[oid], objects.half[oid]
    cu, su = np.cos(ang), np.sin(ang)
    dx, dy = pos[0] - c[:, 0], pos[1] - c[:, 1]
    ou, ov = dx * cu + dy * su, -dx * su + dy * cu
    de, dn = np.sin(az), np.cos(az)
    du, dv = de * cu + dn * su, -de * su + dn * cu
    du = np.where(np.abs(du) < 1e-9, 1e-9, du)
    dv = np.where(np.abs(dv) < 1e-9, 1e-9, dv)
    tu1, tu2 = (-half[:, 0] - ou) / du, (half[:, 0] - ou) / du
    tv1, tv2 = (-half[:, 1] - ov) / dv, (half[:, 1] - ov) / dv
    tu_near, tv_near = np.minimum(tu1, tu2), np.minimum(tv1, tv2)
    t_in = np.maximum(tu_near, tv_near)
    t_out = np.minimum(np.maximum(tu1, tu2), np.maximum(tv1, tv2))
    valid = (t_in <= t_out) & (t_in > 0)
    gable = tu_near >= tv_near  # entered through a face at u = +-hu
    nu = np.where(gable, -np.sign(du), 0.0)
    nv = np.where(gable, 0.0, -np.sign(dv))
    normal = np.stack([nu * cu - nv * su, nu * su + nv * cu], axis=1)
    along = np.where(gable, ov + t_in * dv, ou + t_in * du)
    half_len = np.where(gable, half[:, 1], half[:, 0])
    return t_in, valid, normal, along, half_len, gable


def building_walls(
    objects: Objects,
    oid,
    pos,
    az,
    tan_el,
    eye_z: float,
    d_fallback,
    terrain,
    roof_rgb,
    gap: DomainGap,
    pixel_rad: float,
):
    """(colour (m, 3) float32, distance (m,)) for rays that hit a building from the side."""
    t_in, valid, normal, along, half_len, gable = _box_entry(objects, oid, pos, az)
    t = np.where(valid, t_in, d_fallback)
    z = eye_z + t * tan_el - terrain
    wall_h, roof_h = objects.wall_h[oid], objects.roof_h[oid]
    hv = objects.half[oid, 1]
    top = wall_h + np.where(gable, roof_h * np.clip(1.0 - np.abs(along) / hv, 0.0, 1.0), 0.0)
    facade = objects.facade[oid].astype(np.float32)
    floor_h, pitch = objects.floor_h[oid], objects.win_spacing[oid]

    storey = z / floor_h
    fz = storey - np.floor(storey)
    q = along / pitch + 0.5
    fx = np.abs(q - np.floor(q) - 0.5)
    window = (fz > _WIN_ROWS[0]) & (fz < _WIN_ROWS[1]) & (fx < _WIN_FRAC / 2) & (z < wall_h - 0.4)
    window &= np.abs(along) < half_len - 0.7
    # per-window reflections/curtains so facades are not perfectly regular
    var = hash01(oid, np.floor(storey), np.floor(q))
    glass = _GLASS[None, :] * (0.7 + 0.8 * var[:, None]) + 25.0 * np.clip(z / 30.0, 0, 1)[:, None]
    plinth = np.where(z < 0.5, 0.75, 1.0)[:, None]
    wall = facade * plinth
    # far walls: blend towards the average of wall and glass instead of aliasing
    footprint = t * pixel_rad
    blend = np.clip((footprint - 0.25 * pitch) / (0.5 * pitch), 0.0, 1.0)[:, None]
    pattern = np.where(window[:, None], glass, wall)
    mean = wall * (1 - _WIN_FRAC * 0.46) + glass * (_WIN_FRAC * 0.46)
    colour = pattern * (1 - blend) + mean * blend

    sun = gap.sun_vector()
    ndots = np.maximum(normal[:, 0] * sun[0] + normal[:, 1] * sun[1], 0.0)
    shade = (AMBIENT * 0.85 + (1.0 - AMBIENT) * ndots) / flat_irradiance(gap)
    colour = colour * shade[:, None]
    roof = z > top  # over the eave: the underside/edge of the roof
    colour[roof] = roof_rgb[roof] * 0.7
    return colour, t
