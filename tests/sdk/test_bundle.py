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
from d4g_edge.tiletable import TileTable
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
    write_bundle(out, v, _table(n), entry, query=g, params=IndexParams(M=8), **kw)
    return v


def test_round_trip(tmp_path, tiny_models):
    v = _write(tmp_path / "b", tiny_models, georeference={"stride_m": 25.0})
    b = Bundle.load(tmp_path / "b")
    assert len(b.tiles) == 30 and b.embed_dim == EMBED_DIM and b.stride_m == 25.0
    assert b.query_config == student_config("ground")
    assert b.query_path.name == "ground.onnx" and b.query_path.is_file()
    ids, _scores = b.index.search(v[[3, 7]], k=1)
    np.testing.assert_array_equal(ids[:, 0], [3, 7])
    np.testing.assert_array_equal(b.tiles.tile_id[ids[:, 0]], [103, 107])
    m = b.manifest
    assert "ground" not in m["models"]  # a new bundle names its query model "query"
    assert m["models"]["query"]["sha256"] == open_encoder(tiny_models["ground"]).sha256
    assert m["index"]["M"] == 8 and m["preprocessing"]["size"] == [32, 128]
    assert set(m["files"]) == {"index.bin", "tiles.npz", "ground.onnx"}


def test_an_old_manifest_naming_the_query_model_ground_still_opens(tmp_path, tiny_models):
    _write(tmp_path / "b", tiny_models)
    path = tmp_path / "b" / MANIFEST
    m = json.loads(path.read_text())
    m["models"]["ground"] = m["models"].pop("query")  # as written before the rename
    path.write_text(json.dumps(m))
    b = Bundle.load(tmp_path / "b")
    assert b.query_path.name == "ground.onnx" and b.ground_path == b.query_path
    assert b.ground_config == b.query_config == student_config("ground")
    assert b.open_query_encoder().config.view == "ground"
    m["models"]["query"] = m["models"]["ground"]  # both names: which one holds the model?
    path.write_text(json.dumps(m))
    with pytest.raises(BundleSchemaError, match="not both"):
        Bundle.load(tmp_path / "b")
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
    m["models"]["query"]["config"] = student_config("ground", **changes).to_dict()
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
        write_bundle(tmp_path / "b", v, _table(4), entry, query=[g, g])
    assert not (tmp_path / "b").exists()


def test_float16_bundle_round_trips_and_says_so(tmp_path, tiny_models):
    sat = open_encoder(tiny_models["satellite"])
    v = np.random.default_rng(1).normal(size=(40, EMBED_DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    entry = model_entry(sat.path, sat.config, sat.sha256)
    params = IndexParams(storage="float16")
    write_bundle(tmp_path / "b", v, _table(40), entry, query=None, params=params)
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


# ---- issue 21 items 12-16: the query model verified, manifest types, contents, named fields


def _edit_manifest(root, edit):
    m = json.loads((root / MANIFEST).read_text())
    edit(m)
    (root / MANIFEST).write_text(json.dumps(m))


def _fix_checksums(root):
    """What someone does who edits a bundle file and then "repairs" the manifest."""
    from d4g_edge.fileio import sha256_file

    def edit(m):
        m["files"] = {n: sha256_file(root / n) for n in m["files"]}
        m["models"]["query"]["sha256"] = m["files"][m["models"]["query"]["file"]]

    _edit_manifest(root, edit)


def _outside_ground(root):
    (root.parent / "outside_ground.onnx").write_bytes((root / "ground.onnx").read_bytes())

    # the repro: only models.query.file changed (a listed "../x" was always refused)
    _edit_manifest(root, lambda m: m["models"]["query"].update(file="../outside_ground.onnx"))


def _symlinked_ground(root):
    outside = root.parent / "outside_ground.onnx"
    outside.write_bytes((root / "ground.onnx").read_bytes())
    (root / "ground.onnx").unlink()
    (root / "ground.onnx").symlink_to(outside)


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (
            lambda r: _edit_manifest(r, lambda m: m["files"].pop("ground.onnx")),
            BundleSchemaError,
            r"models\.query\.file 'ground\.onnx' is not listed under files",
        ),
        (_outside_ground, BundleSchemaError, r"'\.\./outside_ground\.onnx' leaves the bundle"),
        (_symlinked_ground, BundleSchemaError, "symlink to .* outside the bundle"),
        (
            lambda r: _edit_manifest(r, lambda m: m["models"]["query"].update(sha256="0" * 64)),
            BundleChecksumError,
            r"models\.query\.sha256 0000000000000000… is not the SHA-256 of ground\.onnx",
        ),
    ],
    ids=["unlisted", "dotdot", "symlink-out", "stale-sha256"],
)
def test_query_model_is_verified_like_every_file(tmp_path, tiny_models, damage, error, match):
    _write(tmp_path / "b", tiny_models)
    damage(tmp_path / "b")
    with pytest.raises(error, match=match):
        Bundle.load(tmp_path / "b")


def test_open_query_encoder_checks_the_model_itself(tmp_path, tiny_models, capsys):
    from d4g_edge.cli.app import main
    from d4g_edge.errors import EncoderError
    from d4g_edge.localizer import Localizer

    root = tmp_path / "b"
    _write(root, tiny_models)
    b = Bundle.load(root)
    enc = b.open_query_encoder()
    assert enc.config == b.query_config and enc.path == root / "ground.onnx"
    # a model of the user's: the bundle's up to the quantization
    int8 = conv_onnx(tmp_path / "g8.onnx", student_config("ground", quantization="int8"), seed=1)
    assert b.open_query_encoder("onnxruntime", path=int8).config.quantization == "int8"
    with pytest.raises(EncoderError, match="unknown backend 'tflite'"):
        b.open_query_encoder("tflite")
    # the satellite student as ground.onnx, checksums fixed: the files verify, the model not
    (root / "ground.onnx").write_bytes(tiny_models["satellite"].read_bytes())
    _fix_checksums(root)
    b = Bundle.load(root)
    with pytest.raises(ModelMismatchError, match=r"in view: \['satellite'\] vs \['ground'\]"):
        b.open_query_encoder()
    with pytest.raises(ModelMismatchError, match="view"):
        Localizer(root)
    capsys.readouterr()
    assert main(["info", str(root)]) == 2  # info verifies what localize verifies
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "view" in err and "Traceback" not in err


def test_index_only_bundle_needs_a_query_model(tmp_path, tiny_models):
    _write(tmp_path / "b", tiny_models, ground=False)
    b = Bundle.load(tmp_path / "b")
    with pytest.raises(BundleError, match="index-only"):
        b.open_query_encoder()
    assert b.open_query_encoder(path=tiny_models["ground"]).config.view == "ground"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(files=["index.bin"]), "files must be an object, got list"),
        (lambda m: m.update(index="hnsw"), "index must be an object, got str 'hnsw'"),
        (lambda m: m.update(tile_count="many"), "tile_count must be an integer >= 1, got str"),
        (lambda m: m.update(embed_dim=16.0), "embed_dim must be an integer >= 1, got float"),
        (lambda m: m["index"].update(M=0), "index.M must be an integer >= 2, got int 0"),
        (lambda m: m["index"].update(metric="dot"), r"unknown keys \['metric'\]"),
        (lambda m: m["index"].update(space="l2"), "only the cosine space"),  # IndexParams'
        (lambda m: m.update(views="ground"), "views must be a list"),
        (lambda m: m.update(georeference=[1]), "georeference must be an object or null"),
        (lambda m: m["georeference"].update(stride_m="25"), "georeference.stride_m must be"),
        (
            lambda m: m["georeference"].update(centres={"per_tile": "25"}),
            "georeference.centres.per_tile must be an integer",
        ),
        (lambda m: m["models"]["query"].update(file=3), "models.query.file must be a"),
        (lambda m: m["models"].update(query_extra="x"), "models.query_extra must be a list"),
        (lambda m: m.update(embed_dim=8), "embed_dim 8 vs models.satellite.config.embed_dim"),
    ],
)
def test_manifest_type_errors_are_typed_and_named(tmp_path, tiny_models, edit, match):
    _write(tmp_path / "b", tiny_models, georeference={"stride_m": 25.0})
    _edit_manifest(tmp_path / "b", edit)
    with pytest.raises(BundleSchemaError, match=match):
        Bundle.load(tmp_path / "b")


def _rewrite_tiles(root, **columns):
    with np.load(root / "tiles.npz") as data:
        cols = {k: data[k] for k in data.files}
    cols.update(columns)
    np.savez(root / "tiles.npz", **cols)
    _fix_checksums(root)


def test_contents_are_checked_even_when_checksums_match(tmp_path, tiny_models):
    from d4g_edge.errors import BundleContentError

    root = tmp_path / "b"
    _write(root, tiny_models)
    data = (root / "tiles.npz").read_bytes()
    (root / "tiles.npz").write_bytes(data[: len(data) // 2])  # a BadZipFile to numpy
    _fix_checksums(root)
    with pytest.raises(BundleContentError, match=r"cannot read the tile table .*BadZipFile"):
        Bundle.load(root)
    _write(root, tiny_models)
    lat = np.load(root / "tiles.npz")["lat"].copy()
    lat[4] = 141.9
    _rewrite_tiles(root, lat=lat)
    with pytest.raises(BundleContentError, match=r"lat must be finite degrees .* 141\.9"):
        Bundle.load(root)


@pytest.mark.parametrize("storage", ["hnswlib", "float16"])
def test_nan_index_vectors_are_refused(tmp_path, tiny_models, storage):
    from d4g_edge.errors import BundleContentError

    sat = open_encoder(tiny_models["satellite"])
    v = np.random.default_rng(0).normal(size=(30, EMBED_DIM)).astype(np.float32)
    entry = model_entry(sat.path, sat.config, sat.sha256)
    params = IndexParams(M=8, storage=storage)
    write_bundle(tmp_path / "b", v, _table(30), entry, query=None, params=params)
    path = tmp_path / "b" / "index.bin"
    if storage == "float16":
        a = np.load(path)
        a[7, 3] = np.nan
        with open(path, "wb") as f:
            np.save(f, a)
    else:  # the first float of row 7's vector, after the 96-byte header and its links
        import struct

        head = struct.unpack("<QQQQQQiIQQQdQ", path.read_bytes()[:96])
        at = 96 + 7 * head[3] + head[5]
        data = bytearray(path.read_bytes())
        data[at : at + 4] = struct.pack("<f", float("nan"))
        path.write_bytes(bytes(data))
    from d4g_edge.fileio import sha256_file

    _edit_manifest(tmp_path / "b", lambda m: m["files"].update({"index.bin": sha256_file(path)}))
    with pytest.raises(BundleContentError, match=r"1 index vector\(s\) hold NaN .*row 7"):
        Bundle.load(tmp_path / "b")


def test_mismatch_errors_name_the_fields():
    from d4g_edge.pairing import config_differences

    g = student_config("ground")
    other = student_config("ground", model_id="resnet_s", teacher_centre=(0.5,) * EMBED_DIM)
    assert config_differences(other, g) == [
        "model_id: 'resnet_s' vs 'fastervit_edge'",
        "teacher_centre: [16 values] vs None",
    ]
    assert config_differences(g.replace(quantization="int8"), g, ignore=("quantization",)) == []
    with pytest.raises(ModelMismatchError, match=r"view \['ground'\] vs \['satellite'\]"):
        check_pairing(student_config("ground"), student_config("ground"))
    with pytest.raises(ModelMismatchError, match=r"embed_dim ground=16 vs satellite=8"):
        check_pairing(g, student_config("satellite", embed_dim=8))


def test_info_json_keeps_per_row_lists_behind_full(capsys):
    from d4g_edge.cli.app import main
    from d4g_edge.localizer import DEFAULT_BUNDLE

    assert main(["info", str(DEFAULT_BUNDLE), "--json"]) == 0
    brief = capsys.readouterr().out
    assert main(["info", str(DEFAULT_BUNDLE), "--json", "--full"]) == 0
    full = capsys.readouterr().out
    manifest = json.loads((DEFAULT_BUNDLE / MANIFEST).read_text())
    assert json.loads(full) == manifest
    assert len(brief.splitlines()) < 250 < len(full.splitlines())
    b = json.loads(brief)
    assert b["georeference"]["centres"]["offsets"].startswith("<25 values")
    assert b["index"] == manifest["index"] and b["files"] == manifest["files"]


def test_every_sdk_error_is_a_d4gedge_error():
    """Issue 21 / 24: an application catches one type (ConfigError, UTMError and
    MetricsInputError once derived from ValueError only)."""
    import importlib
    import inspect
    import pkgutil

    import d4g_edge
    from d4g_edge.errors import D4GEdgeError

    classes = set()
    for info in pkgutil.walk_packages(d4g_edge.__path__, "d4g_edge."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        classes |= {
            c
            for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, Exception) and c.__module__ == module.__name__
        }
    assert len(classes) >= 10
    assert [c.__qualname__ for c in classes if not issubclass(c, D4GEdgeError)] == []
