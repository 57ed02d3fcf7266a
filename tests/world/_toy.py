"""A hand-built flat world with one box building, for tests whose answers are computed by hand.

Usage::

    world = toy_world(building_en=(180.0, -150.0))   # 300 m world, camera usually at centre
"""

from __future__ import annotations

import numpy as np

from d4g_edge.geo import GeoReference
from train.world import World
from train.world._objects import ObjectBuilder
from train.world._scene import BUILDING, GRASS, STATIC, Scene, Trees

SIZE_M, RES_M = 300.0, 0.5
GRASS_RGB = (90, 125, 60)
ROOF_RGB = (210, 30, 30)


def toy_world(
    building_en=None,
    half_m=(5.0, 5.0),
    wall_h=20.0,
    change=(1.0, STATIC),
) -> World:
    """Flat grass; one flat-roofed red box building centred at ``building_en`` (or none)."""
    n = int(SIZE_M / RES_M)
    ob = ObjectBuilder(n, RES_M)
    if building_en is not None:
        cx, cy = building_en
        rows, cols, _, _ = ob.footprint(cx, cy, half_m[0], half_m[1], 0.0)
        row = (BUILDING, cx, cy, *half_m, 0.0, wall_h, 0.0, (230, 230, 230), 3.0, 3.0, *change)
        ob.add(row, rows, cols, wall_h, np.asarray(ROOF_RGB, np.float32))
    objects, obj_id, obj_h, obj_rgb = ob.finish()
    scene = Scene(
        res_m=RES_M,
        terrain=np.zeros((n, n), np.float32),
        base_h=np.zeros((n, n), np.float32),
        base_rgb=np.broadcast_to(np.asarray(GRASS_RGB, np.uint8), (n, n, 3)).copy(),
        base_mat=np.full((n, n), GRASS, np.uint8),
        field_id=np.zeros((n, n), np.uint16),
        obj_id=obj_id,
        obj_h=obj_h,
        obj_rgb=obj_rgb,
        crown_rgb=np.zeros((n, n, 3), np.uint8),
        objects=objects,
        tree_id=np.full((n, n), -1, np.int32),
        trees=Trees(np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0)),
        street_pts=np.array([[SIZE_M / 2, -SIZE_M / 2]]),
        street_dir=np.zeros(1),
        street_width=np.full(1, 8.0, np.float32),
    )
    return World(scene, seed=0, style="toy", georef=GeoReference(40.0, -88.0, RES_M))
