"""Buildings and parked cars: placement along the roads and rasterisation as oriented boxes.

Each object is an oriented rectangle (centre, half extents along its u/v axes, angle) with a
height profile (flat or gabled roof, car cabin). The table is kept next to the rasters so the
ground renderer can intersect walls analytically (exact facades and window rows).

Usage::

    ob = ObjectBuilder(n=2400, res_m=0.5)
    place_buildings(rng, style, rr, lc, blocked, ob)
    place_cars(rng, style, rr, blocked, ob)
    objects, obj_id, obj_h, obj_rgb = ob.finish()
"""

from __future__ import annotations

import numpy as np

from train.world._landcover import LandCover
from train.world._roads import RoadRaster
from train.world._scene import APPEARS, BUILDING, CAR, DISAPPEARS, STATIC, Objects
from train.world._styles import TownStyle

_CAR_COLOURS = np.array(
    [
        [235, 235, 235],
        [30, 30, 35],
        [160, 162, 168],
        [150, 30, 30],
        [35, 60, 120],
        [90, 92, 98],
        [200, 190, 160],
        [60, 90, 60],
    ],
    dtype=np.float32,
)
_WINDOW_RGB = np.array([40, 48, 60], np.float32)


class ObjectBuilder:
    """Accumulates objects and rasterises them into obj_id / obj_h / obj_rgb."""

    def __init__(self, n: int, res_m: float) -> None:
        self.n, self.res = n, res_m
        self.obj_id = np.zeros((n, n), dtype=np.int32)
        self.obj_h = np.zeros((n, n), dtype=np.float32)
        self.obj_rgb = np.zeros((n, n, 3), dtype=np.float32)
        # row 0 is the "no object" sentinel
        self.rows: list[tuple] = [
            (0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, (0, 0, 0), 3.0, 3.0, 1.0, 0)
        ]

    def footprint(self, cx, cy, hu, hv, angle, pad=0.0):
        """Cells whose centres lie in the (padded) box: rows, cols, local u, local v."""
        ext = np.hypot(hu + pad, hv + pad)
        res = self.res
        c0, c1 = int(np.floor((cx - ext) / res)), int(np.ceil((cx + ext) / res))
        r0, r1 = int(np.floor((-cy - ext) / res)), int(np.ceil((-cy + ext) / res))
        c0, r0 = max(c0, 0), max(r0, 0)
        c1, r1 = min(c1, self.n), min(r1, self.n)
        if c1 <= c0 or r1 <= r0:
            return (np.zeros(0, np.int64),) * 2 + (np.zeros(0),) * 2
        rr, cc = np.mgrid[r0:r1, c0:c1]
        dx, dy = (cc + 0.5) * res - cx, -(rr + 0.5) * res - cy
        ca, sa = np.cos(angle), np.sin(angle)
        lu, lv = dx * ca + dy * sa, -dx * sa + dy * ca
        inside = (np.abs(lu) <= hu + pad) & (np.abs(lv) <= hv + pad)
        return rr[inside], cc[inside], lu[inside], lv[inside]

    def add(self, row: tuple, rows, cols, heights, rgb) -> int:
        oid = len(self.rows)
        self.rows.append(row)
        self.obj_id[rows, cols] = oid
        self.obj_h[rows, cols] = heights
        self.obj_rgb[rows, cols] = rgb
        return oid

    def finish(self) -> tuple[Objects, np.ndarray, np.ndarray, np.ndarray]:
        cols = list(zip(*self.rows, strict=True))
        objects = Objects(
            kind=np.asarray(cols[0], np.uint8),
            centre=np.stack([np.asarray(cols[1]), np.asarray(cols[2])], axis=1),
            half=np.stack([np.asarray(cols[3]), np.asarray(cols[4])], axis=1),
            angle=np.asarray(cols[5], np.float64),
            wall_h=np.asarray(cols[6], np.float32),
            roof_h=np.asarray(cols[7], np.float32),
            facade=np.asarray(cols[8], np.uint8).reshape(-1, 3),
            floor_h=np.asarray(cols[9], np.float32),
            win_spacing=np.asarray(cols[10], np.float32),
            change_u=np.asarray(cols[11], np.float32),
            change_kind=np.asarray(cols[12], np.uint8),
        )
        rgb = np.clip(self.obj_rgb, 0, 255).astype(np.uint8)
        return objects, self.obj_id, self.obj_h, rgb


def _change(rng, frac: float) -> tuple[float, int]:
    if rng.uniform() >= frac:
        return 1.0, STATIC
    return float(rng.uniform(0.02, 1.0)), int(rng.choice([DISAPPEARS, APPEARS]))


def _road_runs(rr: RoadRaster):
    """(indices of the samples of one road) for each road, in order along the road."""
    if len(rr.road_id) == 0:
        return []
    cut = np.flatnonzero(np.diff(rr.road_id)) + 1
    return np.split(np.arange(len(rr.road_id)), cut)


def place_buildings(rng, style: TownStyle, rr: RoadRaster, lc: LandCover, blocked, ob, soil):
    """Lots along both sides of every road; a lot holds a building if it fits and is drawn."""
    pad = 0.4 if style.setback_m[1] < 3 else 1.5  # downtown rows nearly touch
    pal_r = np.asarray(style.roof_palette, np.float32)
    pal_f = np.asarray(style.facade_palette, np.float32)
    placed = []
    for run in _road_runs(rr):
        step_s = 4  # samples are 0.25 m apart
        i = int(rng.integers(0, 40))
        while i < len(run):
            front = rng.uniform(*style.lot_frontage_m)
            k = run[i]
            i += max(int(front / 0.25 / step_s) * step_s, 4)
            p, a, w = rr.pts[k], rr.dirs[k], float(rr.width[k])
            for side in (1.0, -1.0):
                _try_building(
                    rng,
                    style,
                    p,
                    a,
                    w,
                    side,
                    front,
                    lc,
                    blocked,
                    ob,
                    soil,
                    pal_r,
                    pal_f,
                    pad,
                    placed,
                )
    return placed


def _try_building(
    rng, style, p, a, w, side, front, lc, blocked, ob, soil, pal_r, pal_f, pad, placed
):
    res = ob.res
    depth = rng.uniform(*style.lot_depth_m)
    width = front * (rng.uniform(0.85, 0.97) if style.setback_m[1] < 3 else rng.uniform(0.45, 0.75))
    hu, hv = width / 2.0, depth / 2.0
    off = w / 2.0 + style.sidewalk_m + rng.uniform(*style.setback_m) + hv
    nrm = np.array([-np.sin(a), np.cos(a)]) * side
    cx, cy = p + nrm * off
    ci, ri = int(cx / res), int(-cy / res)
    if not (0 <= ci < ob.n and 0 <= ri < ob.n):
        return
    urban = float(lc.urban[ri, ci])
    if rng.uniform() > style.building_prob * (0.25 + 0.75 * urban) ** 0.7:
        return
    rows, cols, _, _ = ob.footprint(cx, cy, hu, hv, a, pad)
    if (
        len(rows) == 0
        or blocked[rows, cols].any()
        or len(rows) < (2 * hu + 2 * pad) * (2 * hv + 2 * pad) / res**2 * 0.9
    ):
        return  # blocked, or partly outside the world
    lo, hi = style.floors
    floors = lo + round((hi - lo) * np.clip(rng.beta(1.3, 2.5) + 0.6 * (urban - 0.5), 0, 1))
    wall_h = floors * style.floor_h_m + rng.uniform(0.3, 1.0)
    angle = a
    gabled = rng.uniform() < style.gabled_prob
    if gabled and hu < hv:  # the ridge runs along the long axis (u)
        hu, hv, angle = hv, hu, a + np.pi / 2
    roof_h = hv * np.tan(np.radians(rng.uniform(22.0, 38.0))) if gabled else 0.0
    rows, cols, lu, lv = ob.footprint(cx, cy, hu, hv, angle)
    heights = wall_h + roof_h * (1.0 - np.abs(lv) / hv)
    roof = pal_r[rng.integers(len(pal_r))] * rng.uniform(0.85, 1.12) * rng.uniform(0.96, 1.04, 3)
    shade = 1.0 + rng.normal(0, 0.035, len(rows))
    if gabled:
        shade -= 0.18 * (np.abs(lv) < 0.35)  # ridge cap
    else:  # a lighter parapet rim
        rim = (np.abs(lu) > hu - 0.6) | (np.abs(lv) > hv - 0.6)
        shade += 0.12 * rim
    rgb = roof[None, :] * shade[:, None]
    facade = tuple(
        int(v) for v in np.clip(pal_f[rng.integers(len(pal_f))] * rng.uniform(0.88, 1.1, 3), 0, 255)
    )
    spacing = rng.uniform(1.8, 3.0) if style.floor_h_m > 3.2 else rng.uniform(2.4, 4.0)
    u, kind = _change(rng, style.dynamic_building_frac)
    row = (
        BUILDING,
        cx,
        cy,
        hu,
        hv,
        angle,
        wall_h,
        roof_h,
        facade,
        style.floor_h_m,
        spacing,
        u,
        kind,
    )
    ob.add(row, rows, cols, heights, rgb)
    if kind == APPEARS:
        soil[rows, cols] = True
    prow, pcol, _, _ = ob.footprint(cx, cy, hu, hv, angle, pad)
    blocked[prow, pcol] = True
    placed.append((cx, cy, depth / 2.0, front, nrm))


def place_cars(rng, style: TownStyle, rr: RoadRaster, arterial_of_road, blocked_cars, ob):
    """Parked cars along the kerb of local roads; all of them may change between epochs."""
    if style.cars_per_100m <= 0:
        return
    mean_gap = 100.0 / style.cars_per_100m
    n = ob.n
    for run in _road_runs(rr):
        if arterial_of_road[rr.road_id[run[0]]]:
            continue
        for side in (1.0, -1.0):
            s = rng.uniform(0, mean_gap)
            length = len(run) * 0.25
            while s < length:
                k = run[int(s / 0.25)]
                s += max(rng.exponential(mean_gap), 6.0)
                p, a, w = rr.pts[k], rr.dirs[k], float(rr.width[k])
                c = p + np.array([-np.sin(a), np.cos(a)]) * side * (w / 2.0 - 1.15)
                ci, ri = int(c[0] / ob.res), int(-c[1] / ob.res)
                if not (0 <= ci < n and 0 <= ri < n) or blocked_cars[ri, ci]:
                    continue
                hu, hv = rng.uniform(2.1, 2.45), rng.uniform(0.85, 0.95)
                rows, cols, lu, _lv = ob.footprint(c[0], c[1], hu, hv, a)
                if len(rows) == 0 or blocked_cars[rows, cols].any():
                    continue
                cabin = np.abs(lu) < 1.15
                heights = np.where(cabin, 1.45, 0.85).astype(np.float32)
                colour = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] * rng.uniform(0.9, 1.08)
                glass = (np.abs(lu) >= 1.15) & (np.abs(lu) < 1.75)
                rgb = np.where(glass[:, None], _WINDOW_RGB, colour[None, :])
                kind = int(rng.choice([DISAPPEARS, APPEARS]))
                row = (
                    CAR,
                    c[0],
                    c[1],
                    hu,
                    hv,
                    a,
                    0.85,
                    0.0,
                    tuple(int(v) for v in colour),
                    1.0,
                    1.0,
                    float(rng.uniform(0.02, 1.0)),
                    kind,
                )
                ob.add(row, rows, cols, heights, rgb)
                blocked_cars[rows, cols] = True
