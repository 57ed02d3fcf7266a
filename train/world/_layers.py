"""Read the scene for one capture epoch: which objects exist, top heights, top colours.

Both renderers go through this, so a building that the time gap removed disappears from the
satellite tile, the shadows and the panorama alike.

Usage::

    lay = EpochLayers(scene, gap)
    h = lay.top_height(r0, r1, c0, c1)      # window, clipped at the world border
    h = lay.top_height_at(rows, cols)       # gathered cells
"""

from __future__ import annotations

import numpy as np

from train.world._gap import DomainGap
from train.world._scene import MARKING, VEGETATION, Scene

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

    def top_colour(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 RGB of the visible top surface, and field id + 1 on vegetation (else 0)."""
        s = self.scene
        is_obj = self.alive[window(s.obj_id, r0, r1, c0, c1)]
        mat = window(s.base_mat, r0, r1, c0, c1)
        base = window(s.base_rgb, r0, r1, c0, c1) * self.material_gain[mat]
        rgb = np.where(is_obj[..., None], window(s.obj_rgb, r0, r1, c0, c1), base).astype(
            np.float32
        )
        veg = _VEG_LUT[mat] & ~is_obj
        return rgb, np.where(veg, window(s.field_id, r0, r1, c0, c1).astype(np.int64) + 1, 0)

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

    def gather_colour(self, flat: np.ndarray, oid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.scene
        is_obj = oid > 0
        mat = s.base_mat.ravel()[flat]
        base = s.base_rgb.reshape(-1, 3)[flat] * self.material_gain[mat]
        rgb = np.where(is_obj[:, None], s.obj_rgb.reshape(-1, 3)[flat], base).astype(np.float32)
        veg = _VEG_LUT[mat] & ~is_obj
        return rgb, np.where(veg, s.field_id.ravel()[flat].astype(np.int64) + 1, 0)
