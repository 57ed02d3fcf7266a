"""End to end on the real student architecture: a tiny random fastervit_edge exported with
torch.onnx indexes a raster through build_index, and localize() recovers the tile and the
heading of a rolled panorama (slow: the export takes about a minute on two cores)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from d4g_edge.build.builder import build_index
from d4g_edge.build.tiles import open_tile_source
from d4g_edge.localizer import Localizer
from tests.sdk._models import GROUND_HW, degrees_world_file, pano_of_tile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fv_bundle(fastervit_models, tmp_path_factory):
    d = tmp_path_factory.mktemp("fv")
    rgb = np.random.default_rng(1).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ortho.png")
    degrees_world_file(d / "ortho.pgw", 40.0, -88.0, 0.5)
    src = open_tile_source(d / "ortho.png", tile_size_m=32, stride_m=16)
    out = build_index(
        src, fastervit_models["satellite"], d / "b", ground=fastervit_models["ground"]
    )
    return out, list(src)


@pytest.mark.parametrize("steps", [0, 2, 6])  # 0, 90, 270 degrees: on the searched grid
def test_fastervit_heading_and_tile(fv_bundle, steps):
    bundle, tiles = fv_bundle
    loc = Localizer(bundle, threads=1)
    tile = tiles[7]
    query = np.roll(pano_of_tile(tile.read()), -steps * GROUND_HW[1] // 8, axis=1)
    fix = loc.localize(np.ascontiguousarray(query))
    assert fix.candidates[0].tile_id == tile.tile_id
    # the best roll is the true heading; the parabolic refinement moves it by < half a step
    assert abs((fix.heading_deg - 45.0 * steps + 180.0) % 360.0 - 180.0) < 180.0 / loc.headings
    assert fix.score > 0.999
