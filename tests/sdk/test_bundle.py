"""d4g_edge.bundle: write/load round trip and every verification failure, typed and named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from d4g_edge.bundle import MANIFEST, Bundle, check_pairing, model_entry, write_bundle
from d4g_edge.errors import (
    BundleChecksumError,
    BundleError,
    BundleSchemaError,
    ModelMismatchError,
)
from d4g_edge.index import IndexParams
from d4g_edge.runtime import open_encoder
from d4g_edge.tiles.base import TileTable
from tests.sdk._models import EMBED_DIM, conv_onnx, student_config


def _table(n):
    lat = 40.0 + np.arange(n) * 1e-4
    return TileTable.from_rows(np.arange(n) + 100, lat, np.full(n, -88.0), np.full(n, 50.0))


def _write(out, tiny_models, ground=True, n=30, **kw):
    sat = open_encoder(tiny_models["satellite"])
    v = np.random.default_rng(0).normal(size=(n, EMBED_DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    entry = model_entry(sat.path, sat.config, sat.sha256)
    g = open_encoder(tiny_models["ground"]) if ground else None
    write_bundle(out, v, _table(n), entry, ground=g, params=IndexParams(M=8), **kw)
    return v


def test_round_trip(tmp_path, tiny_models):
    v = _write(tmp_path / "b", tiny_models, georeference={"stride_m": 25.0})
    b = Bundle.load(tmp_path / "b")
    assert len(b.tiles) == 30 and b.embed_dim == EMBED_DIM and b.stride_m == 25.0
    assert b.ground_config == student_config("ground")
    assert b.ground_path.name == "ground.onnx" and b.ground_path.is_file()
    ids, _scores = b.index.search(v[[3, 7]], k=1)
    np.testing.assert_array_equal(ids[:, 0], [3, 7])
    np.testing.assert_array_equal(b.tiles.tile_id[ids[:, 0]], [103, 107])
    m = b.manifest
    assert m["models"]["ground"]["sha256"] == open_encoder(tiny_models["ground"]).sha256
    assert m["index"]["M"] == 8 and m["preprocessing"]["size"] == [32, 128]
    assert set(m["files"]) == {"index.bin", "tiles.npz", "ground.onnx"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.parametrize("name", ["index.bin", "tiles.npz", "ground.onnx"])
def test_tampered_file_is_named(tmp_path, tiny_models, name):
    _write(tmp_path / "b", tiny_models)
    path = tmp_path / "b" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleChecksumError, match=name):
        Bundle.load(tmp_path / "b")


def test_missing_file(tmp_path, tiny_models):
    _write(tmp_path / "b", tiny_models)
    (tmp_path / "b" / "tiles.npz").unlink()
    with pytest.raises(BundleChecksumError, match=r"tiles\.npz .*missing"):
        Bundle.load(tmp_path / "b")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(schema="d4g-edge/bundle/99"), "unknown bundle schema"),
        (lambda m: m.pop("tile_count"), "tile_count"),
        (lambda m: m["models"]["satellite"].pop("config"), "lacks its encoder config"),
        (lambda m: m["models"]["satellite"]["config"].update(schema_version=7), "schema"),
    ],
)
def test_schema_failures(tmp_path, tiny_models, edit, match):
    _write(tmp_path / "b", tiny_models)
    path = tmp_path / "b" / MANIFEST
    m = json.loads(path.read_text())
    edit(m)
    path.write_text(json.dumps(m))
    with pytest.raises(BundleSchemaError, match=match):
        Bundle.load(tmp_path / "b")


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a directory"):
        Bundle.load(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        Bundle.load(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / MANIFEST).write_text("{nope")
    with pytest.raises(BundleSchemaError, match="not valid JSON"):
        Bundle.load(tmp_path / "junk")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"teacher_sha256": "12" * 32}, "teacher_sha256 ground="),
        ({"teacher_model": "convnext_base"}, "teacher_model"),
        ({"teacher_sha256": None}, "unset in the ground"),
        ({"teacher_centre": (0.1,) * EMBED_DIM}, "teacher_centre"),
    ],
)
def test_mismatched_models_refused(tmp_path, tiny_models, changes, match):
    other = conv_onnx(tmp_path / "g.onnx", student_config("ground", **changes))
    models = {**tiny_models, "ground": other}
    with pytest.raises(ModelMismatchError, match=match):
        _write(tmp_path / "b", models)  # refused at build time
    # and at load time, when a manifest was edited to pair foreign models
    _write(tmp_path / "ok", tiny_models)
    path = tmp_path / "ok" / MANIFEST
    m = json.loads(path.read_text())
    m["models"]["ground"]["config"] = student_config("ground", **changes).to_dict()
    path.write_text(json.dumps(m))
    with pytest.raises(ModelMismatchError, match=match):
        Bundle.load(tmp_path / "ok")


def test_pairing_checks_views_and_dims():
    with pytest.raises(ModelMismatchError, match="not the satellite student"):
        check_pairing(student_config("ground"), student_config("ground"))
    sat = student_config("satellite", embed_dim=8, teacher_centre=None)
    with pytest.raises(ModelMismatchError, match="embed_dim"):
        check_pairing(student_config("ground"), sat)
    # a centred pair: each student regresses its own view's centre (train.distill)
    check_pairing(
        student_config("ground", teacher_centre=(0.1,) * EMBED_DIM),
        student_config("satellite", teacher_centre=(-0.2,) * EMBED_DIM),
    )


def test_replace_existing_bundle_but_not_other_dirs(tmp_path, tiny_models):
    _write(tmp_path / "b", tiny_models, n=30)
    _write(tmp_path / "b", tiny_models, n=12)
    assert Bundle.load(tmp_path / "b").manifest["tile_count"] == 12
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "keep.txt").write_text("x")
    with pytest.raises(BundleError, match="not a bundle"):
        _write(tmp_path / "docs", tiny_models)
    assert (tmp_path / "docs" / "keep.txt").read_text() == "x"


def test_one_ground_model_per_format(tmp_path, tiny_models):
    sat = open_encoder(tiny_models["satellite"])
    g = open_encoder(tiny_models["ground"])
    v = np.eye(4, EMBED_DIM, dtype=np.float32)
    entry = model_entry(sat.path, sat.config, sat.sha256)
    with pytest.raises(BundleError, match="one of each"):
        write_bundle(tmp_path / "b", v, _table(4), entry, ground=[g, g])
    assert not (tmp_path / "b").exists()


def test_float16_bundle_round_trips_and_says_so(tmp_path, tiny_models):
    sat = open_encoder(tiny_models["satellite"])
    v = np.random.default_rng(1).normal(size=(40, EMBED_DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    entry = model_entry(sat.path, sat.config, sat.sha256)
    params = IndexParams(storage="float16")
    write_bundle(tmp_path / "b", v, _table(40), entry, ground=None, params=params)
    b = Bundle.load(tmp_path / "b")
    assert b.manifest["index"]["storage"] == "float16" and b.index.hnsw is None
    ids, _ = b.index.search(v[[5, 31]], k=1)
    np.testing.assert_array_equal(ids[:, 0], [5, 31])
    # an older manifest without "storage" is an hnswlib bundle (the default)
    _write(tmp_path / "old", tiny_models)
    m = json.loads((tmp_path / "old" / MANIFEST).read_text())
    assert m["index"]["storage"] == "hnswlib"
    del m["index"]["storage"]
    (tmp_path / "old" / MANIFEST).write_text(json.dumps(m))
    assert Bundle.load(tmp_path / "old").index.hnsw is not None
