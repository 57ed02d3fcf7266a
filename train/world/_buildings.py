"""Buildings on lots along the roads: footprint, storeys, roof (flat or gabled), colours.

Lots are walked along both sides of every road; a lot holds a building when the draw (the
style's probability, higher where the area is more built-up) says so and the footprint fits
(no road, water, forest or neighbour within the padding).

Usage::

    lots = BuildingPlacer(rng, style, lc, blocked, ob, soil).place(rr)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from train.world._landcover import LandCover
from train.world._objects import ObjectBuilder, ObjectSpec, draw_change, road_runs
from train.world._roads import RoadRaster
from train.world._scene import APPEARS, BUILDING
from train.world._styles import TownStyle


class Lot(NamedTuple):
    """A built lot: building centre, half depth of the lot, frontage, normal away from the road."""

    cx: float
    cy: float
    half_depth: float
    front: float
    normal: np.ndarray


class BuildingPlacer:
    """Draws and rasterises buildings; marks their footprints in ``blocked`` (for trees and
    cars), and the future construction sites (buildings that appear later) in ``soil``."""

    def __init__(self, rng, style: TownStyle, lc: LandCover, blocked, ob: ObjectBuilder, soil):
        self.rng, self.style, self.lc = rng, style, lc
        self.blocked, self.ob, self.soil = blocked, ob, soil
        self.pad = 0.4 if style.setback_m[1] < 3 else 1.5  # downtown rows nearly touch
        self.occupied = np.zeros_like(blocked)
        self.roofs = np.asarray(style.roof_palette, np.float32)
        self.facades = np.asarray(style.facade_palette, np.float32)
        self.lots: list[Lot] = []

    def place(self, rr: RoadRaster) -> list[Lot]:
        rng = self.rng
        for run in road_runs(rr):
            i, prev = int(rng.integers(0, 40)), 0.0
            while True:  # consecutive lots share a boundary: centres (prev + front) / 2 apart
                front = rng.uniform(*self.style.lot_frontage_m)
                i += max(int((prev + front) / 2 / 0.25), 4)  # road samples are 0.25 m apart
                if i >= len(run):
                    break
                k, prev = run[i], front
                for side in (1.0, -1.0):
                    self._try(rr.pts[k], rr.dirs[k], float(rr.width[k]), side, front)
        return self.lots

    def _try(self, p, a: float, road_w: float, side: float, front: float) -> None:
        rng, style, ob = self.rng, self.style, self.ob
        depth = rng.uniform(*style.lot_depth_m)
        share = rng.uniform(0.9, 0.99) if style.setback_m[1] < 3 else rng.uniform(0.45, 0.75)
        hu, hv = front * share / 2.0, depth / 2.0
        off = road_w / 2.0 + style.sidewalk_m + rng.uniform(*style.setback_m) + hv
        nrm = np.array([-np.sin(a), np.cos(a)]) * side
        cx, cy = p + nrm * off
        ci, ri = int(cx / ob.res), int(-cy / ob.res)
        if not (0 <= ci < ob.n and 0 <= ri < ob.n):
            return
        urban = float(self.lc.urban[ri, ci])
        density = 1.0 - style.urban_weight + style.urban_weight * (0.25 + 0.75 * urban) ** 0.7
        if rng.uniform() > style.building_prob * density:
            return
        for shrink in (1.0, 0.6, 0.4):  # near corners a narrower building may still fit
            if self._fits(cx, cy, hu * shrink, hv, a):
                self._build(cx, cy, hu * shrink, hv, a, urban)
                self.lots.append(Lot(cx, cy, hv, front, nrm))
                return

    def _fits(self, cx, cy, hu, hv, a) -> bool:
        ob = self.ob
        # the padding keeps buildings apart; roads and sidewalks only need the bare footprint
        rows, cols, _, _ = ob.footprint(cx, cy, hu, hv, a, self.pad)
        full = (2 * hu + 2 * self.pad) * (2 * hv + 2 * self.pad) / ob.res**2 * 0.9
        if len(rows) < full or self.occupied[rows, cols].any():
            return False  # another building, or partly outside the world
        rows, cols, _, _ = ob.footprint(cx, cy, hu, hv, a)
        return not self.blocked[rows, cols].any()  # road, sidewalk, water or forest

    def _build(self, cx, cy, hu, hv, angle, urban) -> None:
        rng, style, ob = self.rng, self.style, self.ob
        lo, hi = style.floors
        floors = lo + round((hi - lo) * np.clip(rng.beta(1.3, 2.5) + 0.6 * (urban - 0.5), 0, 1))
        wall_h = floors * style.floor_h_m + rng.uniform(0.3, 1.0)
        gabled = rng.uniform() < style.gabled_prob
        if gabled and hu < hv:  # the ridge runs along the long axis (u)
            hu, hv, angle = hv, hu, angle + np.pi / 2
        roof_h = hv * np.tan(np.radians(rng.uniform(22.0, 38.0))) if gabled else 0.0
        rows, cols, lu, lv = ob.footprint(cx, cy, hu, hv, angle)
        heights = wall_h + roof_h * (1.0 - np.abs(lv) / hv)
        # mostly a brightness change per roof, a little hue
        roof = self.roofs[rng.integers(len(self.roofs))] * rng.uniform(0.85, 1.12)
        roof = roof * rng.uniform(0.96, 1.04, 3)
        shade = 1.0 + rng.normal(0, 0.035, len(rows))
        if gabled:
            shade -= 0.18 * (np.abs(lv) < 0.35)  # ridge cap
        else:  # a lighter parapet rim
            shade += 0.12 * ((np.abs(lu) > hu - 0.6) | (np.abs(lv) > hv - 0.6))
        facade = self.facades[rng.integers(len(self.facades))] * rng.uniform(0.88, 1.1, 3)
        spacing = rng.uniform(1.8, 3.0) if style.floor_h_m > 3.2 else rng.uniform(2.4, 4.0)
        u, kind = draw_change(rng, style.dynamic_building_frac)
        spec = ObjectSpec(
            kind=BUILDING, cx=cx, cy=cy, hu=hu, hv=hv, angle=angle, wall_h=wall_h, roof_h=roof_h,
            facade=tuple(int(v) for v in np.clip(facade, 0, 255)), floor_h=style.floor_h_m,
            win_spacing=spacing, change_u=u, change_kind=kind,
        )  # fmt: skip
        ob.add(spec, rows, cols, heights, roof[None, :] * shade[:, None])
        if kind == APPEARS:  # a construction site until the building appears
            self.soil[rows, cols] = True
        prow, pcol, _, _ = ob.footprint(cx, cy, hu, hv, angle, self.pad)
        self.occupied[prow, pcol] = True
        self.blocked[rows, cols] = True
