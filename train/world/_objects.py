"""The object layer: oriented boxes (buildings, cars) rasterised next to their table; parked cars.

Each object is an oriented rectangle (centre, half extents along its u/v axes, angle) with a
height profile (flat or gabled roof, car cabin). The table is kept next to the rasters so the
ground renderer can intersect walls analytically (exact facades and window rows).

Usage::

    ob = ObjectBuilder(n=2400, res_m=0.5)
    ob.add(ObjectSpec(kind=CAR, ...), rows, cols, heights, rgb)
    place_cars(rng, style, rr, arterial_of_road, blocked_cars, ob)
    objects, obj_id, obj_h, obj_rgb = ob.finish()
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from train.world._roads import RoadRaster
from train.world._scene import APPEARS, CAR, DISAPPEARS, STATIC, Objects
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


class ObjectSpec(NamedTuple):
    """One row of the object table (see :class:`train.world._scene.Objects`)."""

    kind: int
    cx: float
    cy: float
    hu: float
    hv: float
    angle: float
    wall_h: float
    roof_h: float
    facade: tuple[int, int, int]
    floor_h: float
    win_spacing: float
    change_u: float
    change_kind: int


_SENTINEL = ObjectSpec(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, (0, 0, 0), 3.0, 3.0, 1.0, STATIC)


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

    def add(self, row: ObjectSpec, rows, cols, heights, rgb) -> int:
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


def draw_change(rng, frac: float) -> tuple[float, int]:
    """(change epoch, change kind): a share ``frac`` of objects appears or disappears."""
    if rng.uniform() >= frac:
        return 1.0, STATIC
    return float(rng.uniform(0.02, 1.0)), int(rng.choice([DISAPPEARS, APPEARS]))


def road_runs(rr: RoadRaster):
    """(indices of the samples of one road) for each road, in order along the road."""
    if len(rr.road_id) == 0:
        return []
    cut = np.flatnonzero(np.diff(rr.road_id)) + 1
    return np.split(np.arange(len(rr.road_id)), cut)


def place_cars(rng, style: TownStyle, rr: RoadRaster, arterial_of_road, blocked_cars, ob):
    """Parked cars along the kerb of local roads; all of them may change between epochs."""
    if style.cars_per_100m <= 0:
        return
    mean_gap = 100.0 / style.cars_per_100m
    n = ob.n
    for run in road_runs(rr):
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
                row = ObjectSpec(
                    kind=CAR, cx=c[0], cy=c[1], hu=hu, hv=hv, angle=a, wall_h=0.85, roof_h=0.0,
                    facade=tuple(int(v) for v in colour), floor_h=1.0, win_spacing=1.0,
                    change_u=float(rng.uniform(0.02, 1.0)), change_kind=kind,
                )  # fmt: skip
                ob.add(row, rows, cols, heights, rgb)
                blocked_cars[rows, cols] = True
