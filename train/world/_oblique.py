"""Off-nadir satellite views: which surface each cell of an orthorectified tile shows.

Real satellite imagery is taken up to ~30 degrees off nadir and orthorectified to the terrain
only, so tall things lean away from the satellite: roofs are displaced from their footprints
and the walls facing the satellite show. For every ground cell, the ray towards the
satellite is marched over the height field (one whole-window comparison per step, as for
shadows); the first cell, coming from the satellite, that reaches the ray is what it sees.

Usage::

    steps = view_steps(gap, res_m, max_rise_m)          # None when looking straight down
    hits = oblique_hits(h_ext, terrain, (oy, ox), steps)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.world._gap import DomainGap
from train.world._photometric import AMBIENT, flat_irradiance
from train.world._scene import BUILDING, CAR, Objects


@dataclass(frozen=True)
class ViewSteps:
    dist_px: np.ndarray  # (S,) horizontal distance towards the satellite, cells
    dr: np.ndarray  # (S,) integer row shift
    dc: np.ndarray  # (S,) integer column shift
    rise_per_px: float  # ray height gained per cell travelled (m)
    toward: np.ndarray  # (2,) unit vector to the satellite (east, north)


@dataclass(frozen=True)
class ObliqueHits:
    iy: np.ndarray  # (h, w) row in the extended window of the surface seen
    ix: np.ndarray  # (h, w) column
    side: np.ndarray  # (h, w) bool: a wall (seen from the side), not a top surface
    z: np.ndarray  # (h, w) height of the ray where it meets the surface (m, absolute)


def view_steps(gap: DomainGap, res_m: float, max_rise_m: float) -> ViewSteps | None:
    if gap.off_nadir_deg <= 0.0:
        return None
    tan_off = np.tan(np.radians(gap.off_nadir_deg))
    n = int(max_rise_m * tan_off / res_m) + 1
    az = np.radians(gap.off_nadir_azimuth_deg)
    dist = np.arange(1, n + 1, dtype=np.float64)
    return ViewSteps(
        dist_px=dist,
        # direction snapped as in _shadow.py, so half-cell roundings are rotation-symmetric
        dr=np.round(dist * np.round(-np.cos(az), 9)).astype(np.int64),
        dc=np.round(dist * np.round(np.sin(az), 9)).astype(np.int64),
        rise_per_px=res_m / tan_off,
        toward=np.array([np.sin(az), np.cos(az)]),
    )


def margins(steps: ViewSteps | None) -> tuple[int, int, int, int]:
    """(rows before, rows after, cols before, cols after) the extended window needs."""
    if steps is None:
        return 0, 0, 0, 0
    return (
        -min(0, int(steps.dr.min())),
        max(0, int(steps.dr.max())),
        -min(0, int(steps.dc.min())),
        max(0, int(steps.dc.max())),
    )


def oblique_hits(h_ext: np.ndarray, terrain: np.ndarray, origin, steps: ViewSteps) -> ObliqueHits:
    """March every target cell towards the satellite; the target window sits at ``origin``
    (row, col) inside the extended window ``h_ext``; ``terrain`` is the target's DEM.

    Steps run from the satellite's side inwards, so the first hit is what the satellite sees;
    it is a wall when the ray entered the cell below its top from a lower cell."""
    h, w = terrain.shape
    oy, ox = origin
    iy = np.broadcast_to(np.arange(h)[:, None] + oy, (h, w)).copy()
    ix = np.broadcast_to(np.arange(w)[None, :] + ox, (h, w)).copy()
    side = np.zeros((h, w), dtype=bool)
    z = h_ext[oy : oy + h, ox : ox + w].copy()
    found = np.zeros((h, w), dtype=bool)
    prev = np.full((h, w), -np.inf, dtype=h_ext.dtype)  # the cell one step nearer the satellite
    dist = np.concatenate([[0.0], steps.dist_px])  # step 0: the cell itself (a wall's foot)
    dr, dc = np.concatenate([[0], steps.dr]), np.concatenate([[0], steps.dc])
    for k in range(len(dist) - 1, -1, -1):
        y, x = oy + dr[k], ox + dc[k]
        hk = h_ext[y : y + h, x : x + w]
        z_in = terrain + (dist[k] + 0.5) * steps.rise_per_px  # entering this cell
        hit = (hk >= z_in - 0.5 * steps.rise_per_px) & ~found
        if hit.any():
            rr, cc = np.nonzero(hit)
            iy[hit], ix[hit] = y + rr, x + cc
            side[hit] = (hk[hit] > z_in[hit]) & (prev[hit] < z_in[hit])
            z[hit] = np.minimum(z_in[hit], hk[hit])
            found |= hit
        prev = hk
    return ObliqueHits(iy, ix, side, z)


def wall_colours(objects: Objects, oid, top_rgb, z_rel, toward, gap: DomainGap) -> np.ndarray:
    """Colour of walls seen obliquely from above: facades with window rows, car and crown sides.

    ``toward`` is the unit (east, north) vector to the camera: (2,) for a satellite (one
    direction for the whole tile), or (N, 2), one per wall, for a drone's perspective view."""
    out = top_rgb * 0.75  # tree crowns (and anything else): the darker flank
    kind = objects.kind[oid]
    car = kind == CAR
    out[car] = objects.facade[oid[car]] * 0.7
    bld = kind == BUILDING
    if bld.any():
        o = oid[bld]
        a = objects.angle[o]
        u = np.stack([np.cos(a), np.sin(a)], 1)
        v = np.stack([-np.sin(a), np.cos(a)], 1)
        if toward.ndim == 1:
            du, dv = u @ toward, v @ toward
        else:
            tw = toward[bld]
            du, dv = (u * tw).sum(1), (v * tw).sum(1)
        normal = np.where(
            (np.abs(du) >= np.abs(dv))[:, None], u * np.sign(du)[:, None], v * np.sign(dv)[:, None]
        )
        sun = gap.sun_vector()
        ndots = np.maximum(normal @ sun[:2], 0.0)
        shade = (AMBIENT * 0.85 + (1.0 - AMBIENT) * ndots) / flat_irradiance(gap)
        storey = z_rel[bld] / objects.floor_h[o]
        band = ((storey % 1.0) > 0.32) & ((storey % 1.0) < 0.78) & (z_rel[bld] < objects.wall_h[o])
        facade = objects.facade[o].astype(np.float32)
        glass = np.array([58, 70, 88], np.float32)
        facade[band] = facade[band] * 0.55 + glass * 0.45  # window columns are sub-pixel here
        out[bld] = facade * shade[:, None]
    return out
