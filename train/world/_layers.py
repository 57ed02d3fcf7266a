"""Read the scene for one capture epoch: which objects exist, top heights, top colours.

Both renderers go through this, so a building that the time gap removed disappears from the
satellite tile, the shadows and the panorama alike.

Usage::

    lay = EpochLayers(scene, gap)
    h = lay.top_height(r0, r1, c0, c1)      # window, clipped at the world border
    rgb, veg = lay.gather_colour(flat, oid)  # cells gathered by flat index
"""

from __future__ import annotations

import numpy as np

from train.world._gap import DomainGap
from train.world._scene import MARKING, TREE, VEGETATION, Scene

_VEG_LUT = np.zeros(256, dtype=bool)
_VEG_LUT[list(VEGETATION)] = True


def window(arr: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """``arr[r0:r1, c0:c1]``, replicating border cells where the window leaves the raster."""
    n0, n1 = arr.shape[:2]
    if r0 >= 0 and c0 >= 0 and r1 <= n0 and c1 <= n1:
        return arr[r0:r1, c0:c1]
    rows = np.clip(np.arange(r0, r1), 0, n0 - 1)
    cols = np.clip(np.arange(c0, c1), 0, n1 - 1)
    return arr[rows[:, None], cols[None, :]]


class EpochLayers:
    """The scene as captured by one view: objects present at its epoch, material tones."""

    def __init__(self, scene: Scene, gap: DomainGap) -> None:
        self.scene = scene
        self.alive = scene.objects.present(gap.time_gap)
        self.material_gain = gap.material_gains()
        self.material_gain[MARKING] = 1.0  # paint stays paint

    # windows --------------------------------------------------------------------------
    def top_height(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        s = self.scene
        oid = window(s.obj_id, r0, r1, c0, c1)
        oh = np.where(self.alive[oid], window(s.obj_h, r0, r1, c0, c1), 0.0)
        return window(s.terrain, r0, r1, c0, c1) + np.maximum(window(s.base_h, r0, r1, c0, c1), oh)

    def underside_height(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Bottom of what occupies each cell: the terrain, or a floating crown's underside."""
        s = self.scene
        win = (r0, r1, c0, c1)
        low = window(s.terrain, *win).copy()
        tid = window(s.tree_id, *win)
        crown = (tid >= 0) & ~self.alive[window(s.obj_id, *win)]
        if crown.any():
            rows, cols = np.nonzero(crown)
            res = s.res_m
            east = (cols + c0 + 0.5) * res
            north = -(rows + r0 + 0.5) * res
            low[crown] += s.trees.underside(tid[crown], east, north)
        return low

    def top_colour(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 RGB of the visible top surface, and field id + 1 on vegetation (else 0)."""
        s = self.scene
        win = (r0, r1, c0, c1)
        is_obj = self.alive[window(s.obj_id, *win)]
        crown = (window(s.tree_id, *win) >= 0) & ~is_obj
        mat = window(s.base_mat, *win)
        rgb = self._compose(
            window(s.base_rgb, *win),
            mat,
            window(s.crown_rgb, *win),
            crown,
            window(s.obj_rgb, *win),
            is_obj,
        )
        veg = (_VEG_LUT[mat] | crown) & ~is_obj
        return rgb, np.where(veg, window(s.field_id, *win).astype(np.int64) + 1, 0)

    def _compose(self, base, mat, crown_rgb, crown, obj_rgb, is_obj) -> np.ndarray:
        rgb = base * self.material_gain[mat]
        rgb = np.where(crown[..., None], crown_rgb * self.material_gain[TREE], rgb)
        return np.where(is_obj[..., None], obj_rgb, rgb).astype(np.float32)

    # gathered cells (flat indices into the N x N rasters) ---------------------------------
    def gather(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        s = self.scene
        oid = s.obj_id.ravel()[flat]
        is_obj = self.alive[oid]
        terrain = s.terrain.ravel()[flat]
        rel = np.maximum(s.base_h.ravel()[flat], np.where(is_obj, s.obj_h.ravel()[flat], 0.0))
        solid = terrain + np.where(is_obj, s.obj_h.ravel()[flat], 0.0)
        return {
            "oid": np.where(is_obj, oid, 0),
            "terrain": terrain,
            "top": terrain + rel,
            "solid": solid,
        }

    def gather_heights(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(top of everything, top without tree crowns) at the cells ``flat``."""
        s = self.scene
        oh = s.obj_h.ravel()[flat]
        oh = np.where(self.alive[s.obj_id.ravel()[flat]], oh, 0.0)
        ground = s.terrain.ravel()[flat]
        return ground + np.maximum(s.base_h.ravel()[flat], oh), ground + oh

    def gather_colour(
        self, flat: np.ndarray, oid: np.ndarray, crowns: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`top_colour` for gathered cells; ``crowns=False``: the ground under them."""
        s = self.scene
        is_obj = oid > 0
        crown = (s.tree_id.ravel()[flat] >= 0) & ~is_obj & crowns
        mat = s.base_mat.ravel()[flat]
        rgb = self._compose(
            s.base_rgb.reshape(-1, 3)[flat],
            mat,
            s.crown_rgb.reshape(-1, 3)[flat],
            crown,
            s.obj_rgb.reshape(-1, 3)[flat],
            is_obj,
        )
        veg = (_VEG_LUT[mat] | crown) & ~is_obj
        return rgb, np.where(veg, s.field_id.ravel()[flat].astype(np.int64) + 1, 0)
