"""train.tile_sources + python -m tools.build_index: dataset layouts and the procedural world
become bundles through the torch-free d4g_edge builder."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.bundle import Bundle
from tests.datasets.conftest import cvact_root, cvusa_root, make_vigor  # noqa: F401 (fixtures)
from tools.build_index import main
from train.datasets import load
from train.tile_sources import DatasetTileSource, WorldTileSource


@pytest.fixture
def vigor_root(tmp_path):
    make_vigor(tmp_path / "VIGOR")
    return tmp_path / "VIGOR"


@pytest.mark.parametrize(
    ("name", "split", "root_fixture"),
    [
        ("cvusa", "train", "cvusa_root"),
        ("cvact", "val", "cvact_root"),
        ("vigor", "test", "vigor_root"),
    ],
)
def test_dataset_layouts_build_bundles(name, split, root_fixture, request, tmp_path, tiny_models):
    root = request.getfixturevalue(root_fixture)
    src = DatasetTileSource(name, root, split)
    # VIGOR: the cross-area protocol train.evaluate scores by default (the test cities' tiles)
    data = load(name, root, split, **({"mode": "cross"} if name == "vigor" else {}))
    tiles = list(src)
    assert len(src) == len(tiles) == data.num_references
    for t, rid, (lat, lon) in zip(tiles, data.reference_ids, data.reference_latlon, strict=True):
        assert (t.tile_id, t.lat, t.lon) == (rid, lat, lon)
    assert tiles[0].read().shape[2] == 3
    out = tmp_path / "b"
    rc = main(
        [
            "--dataset",
            name,
            "--data",
            str(root),
            "--split",
            split,
            "--model",
            str(tiny_models["satellite"]),
            "--ground",
            str(tiny_models["ground"]),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    b = Bundle.load(out)
    np.testing.assert_array_equal(b.tiles.tile_id, data.reference_ids)
    np.testing.assert_allclose(b.tiles.lat, data.reference_latlon[:, 0])


def test_world_grid_round_trips_and_builds(tmp_path, tiny_models):
    src = WorldTileSource(seed=5, size_m=200.0, tile_size_m=60.0, stride_m=30.0, tile_px=64)
    tiles = list(src)
    assert len(tiles) == len(src) == 25  # centres 30, 60, ..., 150 m on each axis
    georef = src.world.georef
    for t in tiles[::6]:
        e, n = georef.latlon_to_metres(t.lat, t.lon)
        assert np.allclose((e, n), src.centre_en(t.tile_id), atol=1e-6)
    img = tiles[7].read()
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, tiles[7].read())  # deterministic
    out = tmp_path / "town"
    assert (
        main(
            [
                "--world",
                "5",
                "--size-m",
                "200",
                "--tile-size-m",
                "60",
                "--stride-m",
                "30",
                "--tile-px",
                "64",
                "--model",
                str(tiny_models["satellite"]),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    b = Bundle.load(out)
    assert b.manifest["georeference"]["source"]["seed"] == 5 and len(b.tiles) == 25
    assert b.stride_m == 30.0
    assert b.manifest["georeference"]["source"]["origin"] == [40.0, -88.0]


def test_a_world_can_be_placed_beside_another(tmp_path, tiny_models):
    # towns side by side (one map of several): --origin is the north-west corner
    args = ["--world", "5", "--size-m", "200", "--tile-size-m", "60", "--stride-m", "30"]
    args += ["--tile-px", "64", "--model", str(tiny_models["satellite"])]
    assert main([*args, "--out", str(tmp_path / "b"), "--origin", "39.95", "-87.5"]) == 0
    b = Bundle.load(tmp_path / "b")
    assert b.manifest["georeference"]["source"]["origin"] == [39.95, -87.5]
    lat, lon = np.asarray(b.tiles.lat), np.asarray(b.tiles.lon)
    assert (lat < 39.95).all() and (lat > 39.95 - 0.002).all()  # 200 m south at most
    assert (lon > -87.5).all() and (lon < -87.5 + 0.003).all()


def test_user_errors(tmp_path, tiny_models, capsys):
    assert (
        main(
            [
                "--dataset",
                "cvusa",
                "--model",
                str(tiny_models["satellite"]),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "--data" in capsys.readouterr().err
    assert (
        main(
            [
                "--world",
                "1",
                "--size-m",
                "100",
                "--tile-size-m",
                "150",
                "--model",
                str(tiny_models["satellite"]),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
