"""The scene: rasters + object table that both views are rendered from.

Every raster is north-up (row grows south, column grows east) with square cells of
``res_m`` metres; cell ``(r, c)`` covers east ``[c, c+1) * res`` and north
``(-(r+1), -r] * res`` (the world origin is the top-left corner, as in
:class:`d4g_edge.geo.GeoReference`). Heights are metres above the datum.

Two layers make time gaps cheap: the *base* layer (terrain, land cover, roads, trees) is
always present; the *object* layer (buildings, cars) is masked per capture epoch with
:meth:`Objects.present`, so removing a building never needs re-rasterisation.

Usage::

    scene.rotated90(1)   # the same town turned so that old east is new north
    scene.flipped()      # mirrored east <-> west
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

# land-cover materials of the base layer (uint8)
GRASS, CROP, FOREST, SAND, WATER, ROAD, MARKING, SIDEWALK, TREE, SOIL, PAVED = range(11)
# TREE is not stored in base_mat (that keeps the ground under crowns); it keys crown tones
VEGETATION = (GRASS, CROP, FOREST, TREE)

# object kinds and change kinds (uint8)
NONE, BUILDING, CAR = 0, 1, 2
STATIC, DISAPPEARS, APPEARS = 0, 1, 2


@dataclass(frozen=True)
class Objects:
    """Structure of arrays; index 0 is the "no object" sentinel so ``obj_id`` indexes it."""

    kind: np.ndarray  # (M,) uint8
    centre: np.ndarray  # (M, 2) float64 east, north metres
    half: np.ndarray  # (M, 2) float64 half extents along the local u, v axes
    angle: np.ndarray  # (M,) float64 radians, direction of u, counter-clockwise from east
    wall_h: np.ndarray  # (M,) float32 eave height above terrain
    roof_h: np.ndarray  # (M,) float32 ridge rise (0 = flat roof); ridge runs along u
    facade: np.ndarray  # (M, 3) uint8 wall colour
    floor_h: np.ndarray  # (M,) float32 storey height (window rows)
    win_spacing: np.ndarray  # (M,) float32 window pitch along a wall
    change_u: np.ndarray  # (M,) float32 epoch in (0, 1] at which the object flips presence
    change_kind: np.ndarray  # (M,) uint8 STATIC / DISAPPEARS / APPEARS

    def __len__(self) -> int:
        return len(self.kind)

    def present(self, epoch: float) -> np.ndarray:
        """(M,) bool: which objects exist at capture epoch ``epoch`` (sentinel is False)."""
        ck, u = self.change_kind, self.change_u
        alive = (
            (ck == STATIC) | ((ck == DISAPPEARS) & (u > epoch)) | ((ck == APPEARS) & (u <= epoch))
        )
        alive[0] = False
        return alive


@dataclass(frozen=True)
class Trees:
    """Crowns are ellipsoids of horizontal radius ``radius`` and vertical half size ``crown``
    centred ``height - crown`` above the terrain, on a trunk; the height field holds their top
    surface, the ground renderer intersects the ellipsoid itself."""

    centre: np.ndarray  # (T, 2) float64 east, north
    radius: np.ndarray  # (T,) float64 crown radius
    height: np.ndarray  # (T,) float64 tree height above terrain
    crown: np.ndarray  # (T,) float64 vertical half size of the crown

    def underside(self, tid: np.ndarray, east: np.ndarray, north: np.ndarray) -> np.ndarray:
        """Height above terrain of the crown's underside at (east, north) for trees ``tid``."""
        c, r = self.centre[tid], self.radius[tid]
        d2 = ((east - c[:, 0]) ** 2 + (north - c[:, 1]) ** 2) / (r * r)
        cz = self.crown[tid]
        return self.height[tid] - cz - cz * np.sqrt(np.clip(1.0 - d2, 0.0, 1.0))


@dataclass(frozen=True)
class Scene:
    """Rasters (N x N) and objects of one town."""

    res_m: float
    terrain: np.ndarray  # float32 ground elevation
    base_h: np.ndarray  # float32 tree crown height above terrain (0 elsewhere)
    base_rgb: np.ndarray  # uint8 (N, N, 3) summer colour of the ground (also under crowns)
    base_mat: np.ndarray  # uint8 material
    field_id: np.ndarray  # uint16 land-cover parcel (per-field variation between captures)
    obj_id: np.ndarray  # int32 index into objects (0 = none)
    obj_h: np.ndarray  # float32 object height above terrain (roof shape included)
    obj_rgb: np.ndarray  # uint8 (N, N, 3) top colour of objects (roofs, cars)
    crown_rgb: np.ndarray  # uint8 (N, N, 3) colour of tree crowns seen from above (tree_id >= 0)
    objects: Objects
    tree_id: np.ndarray  # int32 index into trees of the crown covering a cell (-1 = none)
    trees: Trees
    street_pts: np.ndarray  # (P, 2) float64 road centreline samples (east, north)
    street_dir: np.ndarray  # (P,) float64 road direction, radians counter-clockwise from east
    street_width: np.ndarray  # (P,) float32 road width

    def __post_init__(self) -> None:
        # renderers gather through ravel(): a non-contiguous raster would be copied per call
        for name, arr in self._map_rasters(lambda a: a).items():
            object.__setattr__(self, name, arr)

    @property
    def size_px(self) -> int:
        return int(self.terrain.shape[0])

    @property
    def size_m(self) -> float:
        return self.size_px * self.res_m

    @property
    def max_height(self) -> float:
        """Highest point of the scene (bound for early termination of ray marching)."""
        return float(np.max(self.terrain + np.maximum(self.base_h, self.obj_h)))

    # rigid transforms (exact on the raster grid) --------------------------------------
    def _map_rasters(self, fn) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray) and v.ndim >= 2 and v.shape[0] == self.size_px:
                out[f.name] = np.ascontiguousarray(fn(v))
        return out

    def _transform_points(self, pts: np.ndarray, k: int, flip: bool) -> np.ndarray:
        half = self.size_m / 2.0
        x, y = pts[:, 0] - half, pts[:, 1] + half  # relative to the world centre
        if flip:
            x = -x
        for _ in range(k % 4):  # counter-clockwise quarter turn: (x, y) -> (-y, x)
            x, y = -y, x
        return np.stack([x + half, y - half], axis=1)

    def _transform_angles(self, a: np.ndarray, k: int, flip: bool) -> np.ndarray:
        a = np.pi - a if flip else a
        return np.mod(a + (k % 4) * np.pi / 2.0, 2.0 * np.pi)

    def _transformed(self, k: int, flip: bool, raster_fn) -> Scene:
        objs = self.objects
        new_objs = replace(
            objs,
            centre=self._transform_points(objs.centre, k, flip),
            angle=self._transform_angles(objs.angle, k, flip),
        )
        trees = replace(self.trees, centre=self._transform_points(self.trees.centre, k, flip))
        return replace(
            self,
            **self._map_rasters(raster_fn),
            objects=new_objs,
            trees=trees,
            street_pts=self._transform_points(self.street_pts, k, flip),
            street_dir=self._transform_angles(self.street_dir, k, flip),
        )

    def rotated90(self, k: int = 1) -> Scene:
        """The scene turned counter-clockwise by ``k`` quarter turns about its centre."""
        return self._transformed(k, False, lambda a: np.rot90(a, k, axes=(0, 1)))

    def flipped(self) -> Scene:
        """The scene mirrored east <-> west about its centre."""
        return self._transformed(0, True, lambda a: a[:, ::-1])
