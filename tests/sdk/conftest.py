"""Shared SDK fixtures: tiny real encoders (see tests/sdk/_models.py)."""

from __future__ import annotations

import pytest

from tests.sdk._models import conv_onnx, fastervit_onnx, student_config


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """Fast random conv encoders: {'ground': path, 'satellite': path}."""
    d = tmp_path_factory.mktemp("tiny_models")
    return {
        "ground": conv_onnx(d / "ground_fp32.onnx", student_config("ground"), seed=1),
        "satellite": conv_onnx(d / "satellite_fp32.onnx", student_config("satellite"), seed=2),
    }


@pytest.fixture(scope="session")
def fastervit_models(tmp_path_factory) -> dict:
    """A tiny random fastervit_edge student exported by export.onnx (slow: ~1 min)."""
    return fastervit_onnx(tmp_path_factory.mktemp("fastervit"))


@pytest.fixture(scope="session")
def paired(tmp_path_factory) -> dict:
    """A bundle where ground and satellite encoders share weights, over a random ortho raster.

    A 'panorama' made as the polar transform of a tile then embeds (up to uint8 rounding) like
    that tile, so localize() must return exactly that tile, and a rolled panorama's heading.
    """
    import numpy as np
    from PIL import Image

    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source
    from tests.sdk._models import degrees_world_file

    d = tmp_path_factory.mktemp("paired")
    rgb = np.random.default_rng(0).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ortho.png")
    degrees_world_file(d / "ortho.pgw", 40.0, -88.0, 0.5)
    src = open_tile_source(d / "ortho.png", tile_size_m=32, stride_m=8)
    ground = conv_onnx(d / "ground.onnx", student_config("ground"), seed=3)
    sat = conv_onnx(d / "satellite.onnx", student_config("satellite"), seed=3)
    bundle = build_index(src, sat, d / "bundle", ground=ground)
    return {"bundle": bundle, "tiles": list(src), "ground": ground, "satellite": sat, "dir": d}
