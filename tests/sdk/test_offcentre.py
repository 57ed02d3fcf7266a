"""Bundles of an off-centre encoder (``centre_step`` in its config): build-index embeds every
tile around several polar centres without being told, and localize() answers with the best
centre's position, one candidate per tile."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from d4g_edge.build.builder import build_index
from d4g_edge.build.tiles import open_tile_source
from d4g_edge.bundle import Bundle
from d4g_edge.config import ViewInput
from d4g_edge.geo import GeoReference, haversine_m
from d4g_edge.localizer import Localizer
from d4g_edge.polar import polar_transform, shift_tile
from tests.sdk._models import GROUND_HW, SAT_SIZE, conv_onnx, degrees_world_file, student_config

TILE_M, STRIDE_M, MPP = 32.0, 16.0, 0.5  # 64-px tiles on a half-overlap grid, as VIGOR's
STEP = 1 / 6  # -> 3 x 3 centres per tile, 1/6 tile = 5.33 m apart


@pytest.fixture(scope="module")
def offcentre(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("offcentre")
    rgb = np.random.default_rng(5).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ortho.png")
    degrees_world_file(d / "ortho.pgw", 40.0, -88.0, MPP)
    src = open_tile_source(d / "ortho.png", tile_size_m=TILE_M, stride_m=STRIDE_M)
    sat_spec = ViewInput((SAT_SIZE, SAT_SIZE), polar=GROUND_HW, centre_step=STEP)
    sat_cfg = student_config("satellite", inputs={"satellite": sat_spec})
    # ground and satellite share weights: a panorama made from a re-centred tile embeds like
    # that (tile, centre) row
    sat = conv_onnx(d / "satellite.onnx", sat_cfg, seed=4)
    ground = conv_onnx(d / "ground.onnx", student_config("ground"), seed=4)
    bundle = build_index(src, sat, d / "bundle", ground=ground, batch_size=5, part_size=7)
    return {"bundle": bundle, "tiles": list(src), "config": sat_cfg}


def pano_around(tile: np.ndarray, centre, cfg) -> np.ndarray:
    fill = np.round(np.asarray(cfg.mean) * 255.0).astype(np.float32) / 255.0
    x = shift_tile(tile.astype(np.float32) / 255.0, *(np.asarray(centre) * SAT_SIZE), fill)
    return np.clip(np.round(polar_transform(x, *GROUND_HW) * 255.0), 0, 255).astype(np.uint8)


def test_each_tile_is_embedded_around_its_cell_centres(offcentre):
    b = Bundle.load(offcentre["bundle"])
    tiles = offcentre["tiles"]
    assert b.centres_per_tile == 9
    assert len(b.tiles) == 9 * len(tiles)
    centres = b.manifest["georeference"]["centres"]
    assert centres["grid_stride"] == pytest.approx(STRIDE_M / TILE_M)
    assert centres["spacing_m"] == pytest.approx(TILE_M * STEP)
    assert b.position_step_m == pytest.approx(TILE_M * STEP)
    # rows of tile 3: its id nine times, placed at the tile centre plus each offset
    rows = np.flatnonzero(b.tiles.tile_id == tiles[3].tile_id)
    assert len(rows) == 9
    t = tiles[3]
    east, north = GeoReference(t.lat, t.lon).latlon_to_metres(b.tiles.lat[rows], b.tiles.lon[rows])
    np.testing.assert_allclose(np.unique(np.round(east, 3)), [-16 / 3, 0, 16 / 3], atol=1e-3)
    np.testing.assert_allclose(np.unique(np.round(north, 3)), [-16 / 3, 0, 16 / 3], atol=1e-3)


@pytest.mark.parametrize(("k", "centre"), [(5, (1 / 6, 0.0)), (10, (-1 / 6, 1 / 6))])
def test_localize_answers_at_the_best_centre(offcentre, k, centre):
    loc = Localizer(offcentre["bundle"], threads=1)
    tile = offcentre["tiles"][k]
    fix = loc.localize(pano_around(tile.read(), centre, offcentre["config"]), heading=0.0)
    assert fix.candidates[0].tile_id == tile.tile_id and fix.score > 0.999
    east, north = GeoReference(tile.lat, tile.lon).latlon_to_metres(fix.lat, fix.lon)
    np.testing.assert_allclose([east, north], np.asarray(centre) * TILE_M, atol=0.01)
    assert haversine_m(tile.lat, tile.lon, fix.lat, fix.lon) > 5.0  # not the tile centre
    # one candidate per tile, even though every tile has nine rows
    ids = [c.tile_id for c in fix.candidates]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert fix.uncertainty_m >= TILE_M * STEP / 2
