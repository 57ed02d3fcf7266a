"""Draw one town: land cover -> roads -> buildings -> cars -> trees -> :class:`Scene`.

Usage::

    scene = generate_scene(seed=0, style_name="suburb", size_m=1200.0, res_m=0.5)
"""

from __future__ import annotations

import zlib

import numpy as np

from d4g_edge.log import logger
from train.world._buildings import BuildingPlacer, Lot
from train.world._landcover import generate_landcover
from train.world._noise import fbm
from train.world._objects import ObjectBuilder, place_cars
from train.world._roads import generate_roads, rasterize_roads
from train.world._scene import FOREST, GRASS, MARKING, ROAD, SIDEWALK, SOIL, WATER, Scene, Trees
from train.world._styles import get_style
from train.world._trees import (
    crown_half_height,
    rasterize_trees,
    tree_colours,
    tree_positions,
)

_ASPHALT = np.array([80, 80, 84], np.float32)
_SIDEWALK = np.array([176, 173, 166], np.float32)
_WHITE = np.array([228, 228, 222], np.float32)
_YELLOW = np.array([222, 185, 70], np.float32)
_SOIL = np.array([146, 120, 88], np.float32)


_LOT_ID0 = 1024  # lot ids start above any land-cover parcel id


def _stamp_lots(rng, placed: list[Lot], ob: ObjectBuilder, mat, rgb, field) -> np.ndarray:
    """Give each building's lawn its own parcel id and tint: gardens differ from each other
    and, through DomainGap.field_variation, between captures (mowing, watering)."""
    field = field.copy()
    for i, lot in enumerate(placed):
        along = np.arctan2(lot.normal[0], -lot.normal[1])
        rows, cols, _, _ = ob.footprint(
            lot.cx, lot.cy, lot.front / 2.0, lot.half_depth + 6.0, along
        )
        lawn = mat[rows, cols] == GRASS
        rows, cols = rows[lawn], cols[lawn]
        field[rows, cols] = (_LOT_ID0 + i) % 65536
        rgb[rows, cols] *= rng.uniform(0.9, 1.1) * rng.uniform(0.97, 1.03, 3)
    return field


def generate_scene(seed: int, style_name: str, size_m: float, res_m: float) -> Scene:
    style = get_style(style_name)
    # the style enters the seed so ("suburb", 3) and ("rural", 3) are unrelated towns
    rng = np.random.default_rng([int(seed), zlib.crc32(style.name.encode())])
    n = round(size_m / res_m)
    lc = generate_landcover(rng, style, n, res_m)
    net = generate_roads(rng, style, n * res_m, lc.land, res_m)
    rr = rasterize_roads(net, n, res_m, style.sidewalk_m)
    mat, rgb = lc.mat, lc.rgb
    fine = fbm(rng, (n, n), 3.0 / res_m, 3)
    grain = rng.normal(0.0, 1.0, (n, n)).astype(np.float32)
    mat[rr.sidewalk] = SIDEWALK
    rgb[rr.sidewalk] = _SIDEWALK * (1.0 + 0.05 * fine[rr.sidewalk, None])
    mat[rr.surface] = ROAD
    rgb[rr.surface] = _ASPHALT * (
        1.0 + 0.07 * fine[rr.surface, None] + 0.04 * grain[rr.surface, None]
    )
    for paint, colour in ((rr.white, _WHITE), (rr.yellow, _YELLOW)):
        mat[paint] = MARKING
        rgb[paint] = colour

    ob = ObjectBuilder(n, res_m)
    blocked = rr.surface | rr.sidewalk | ~lc.land | (mat == FOREST)
    soil = np.zeros((n, n), dtype=bool)
    placed = BuildingPlacer(rng, style, lc, blocked, ob, soil).place(rr)
    mat[soil] = SOIL
    rgb[soil] = _SOIL * (1.0 + 0.1 * fine[soil, None])
    field = _stamp_lots(rng, placed, ob, mat, rgb, lc.field)
    place_cars(rng, style, rr, net.arterial, ~rr.surface | rr.junction | (ob.obj_id > 0), ob)
    objects, obj_id, obj_h, obj_rgb = ob.finish()

    xy = tree_positions(rng, style, rr, mat, lc.urban, placed, res_m)
    col = np.clip((xy[:, 0] / res_m).astype(np.int64), 0, n - 1)
    row = np.clip((-xy[:, 1] / res_m).astype(np.int64), 0, n - 1)
    free = (mat[row, col] != ROAD) & (mat[row, col] != SIDEWALK) & (mat[row, col] != MARKING)
    free &= (mat[row, col] != WATER) & (obj_id[row, col] == 0) & ~soil[row, col]
    xy = xy[free]
    radius = rng.uniform(*style.tree_radius_m, len(xy))
    height = radius * rng.uniform(1.5, 2.4, len(xy)) + rng.uniform(2.0, 4.0, len(xy))
    tree_h, owner = rasterize_trees(xy, radius, height, n, res_m)
    # crowns may overhang the kerb side of a road (the satellite sees them over the asphalt)
    # but street trees are pruned above the driving lanes
    cut = rr.surface & (rr.edge_dist < -2.5)
    tree_h[cut], owner[cut] = 0.0, -1
    crowns = owner >= 0
    leaf = fbm(rng, (n, n), 1.2 / res_m, 2)
    greens = tree_colours(rng, len(xy))
    crown_rgb = np.zeros((n, n, 3), np.float32)
    crown_rgb[crowns] = greens[owner[crowns]] * (
        1.0 + 0.22 * leaf[crowns, None] + 0.06 * grain[crowns, None]
    )
    logger.debug(
        "world %s/%d: %d roads, %d objects, %d trees",
        style.name,
        seed,
        len(net.widths),
        len(objects),
        len(xy),
    )
    return Scene(
        res_m=res_m,
        terrain=lc.terrain,
        base_h=tree_h,
        base_rgb=np.clip(rgb, 0, 255).astype(np.uint8),
        base_mat=mat,
        field_id=field,
        obj_id=obj_id,
        obj_h=obj_h,
        obj_rgb=obj_rgb,
        crown_rgb=np.clip(crown_rgb, 0, 255).astype(np.uint8),
        objects=objects,
        tree_id=owner,
        trees=Trees(xy, radius, height, crown_half_height(radius, height)),
        street_pts=rr.pts,
        street_dir=rr.dirs,
        street_width=rr.width,
    )
