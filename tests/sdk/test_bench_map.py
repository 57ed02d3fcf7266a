"""benchmarks.bench_map on a tiny map: every kind measured in its own process, against exact
float32 search and the queries' true tiles, on real rows and on rows modelled on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import bench_map
from benchmarks._map_data import RowModel, bundle_rows, map_rows
from d4g_edge.bundle import model_entry, write_bundle
from d4g_edge.geo import offset_latlon
from d4g_edge.index import IndexParams
from d4g_edge.runtime import open_encoder
from d4g_edge.tiletable import TileTable
from tests.sdk._models import EMBED_DIM

SPACING, BLOCK, TILES = 9.0, 5, 4  # a 4 x 4 grid of tiles, 5 x 5 centres each, 9 m apart


def _grid_map(tmp_path, tiny_models, lat0=40.0, name="map", seed=0):
    """A float16 bundle of 16 tiles x 25 centres whose rows vary smoothly over the grid."""
    rng = np.random.default_rng(seed)
    side = TILES * BLOCK
    gi, gj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    # tile-major rows: tile (ti, tj) holds its 5 x 5 block
    order = np.stack([gi, gj], -1).reshape(TILES, BLOCK, TILES, BLOCK, 2).transpose(0, 2, 1, 3, 4)
    pos = order.reshape(-1, 2)
    freq = rng.normal(size=(2, EMBED_DIM)) * 0.4
    v = np.cos(pos @ freq + rng.uniform(0, 6, EMBED_DIM)) + 0.05 * rng.normal(size=(len(pos), 16))
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    lat, lon = offset_latlon(
        np.full(len(pos), lat0), np.full(len(pos), -88.0), pos[:, 1] * SPACING, -pos[:, 0] * SPACING
    )
    tile = (pos[:, 0] // BLOCK) * TILES + pos[:, 1] // BLOCK
    table = TileTable.from_rows(tile, lat, lon, np.full(len(pos), 90.0))
    sat = open_encoder(tiny_models["satellite"])
    geo = {"stride_m": 45.0, "centres": {"per_tile": 25, "spacing_m": SPACING}}
    entry = model_entry(sat.path, sat.config, sat.sha256)
    out = write_bundle(
        tmp_path / name, v, table, entry, params=IndexParams(storage="float16"), georeference=geo
    )
    # queries: noisy copies of random rows, at those rows' positions
    pick = rng.integers(0, len(v), 30)
    q = v[pick] + 0.1 * rng.normal(size=(30, EMBED_DIM))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    np.savez(tmp_path / f"q{name}.npz", query=q, query_latlon=np.stack([lat[pick], lon[pick]], 1))
    return out, v, q, tile[pick]


def test_bench_map_measures_each_kind_against_exact_search(tmp_path, tiny_models):
    bundle, v, q, true_tile = _grid_map(tmp_path, tiny_models)
    rows = bundle_rows(bundle)
    assert rows.per_tile == 25 and rows.spacing_m == SPACING
    assert abs(rows.area_km2 - 16 * 45**2 / 1e6) < 1e-9
    kinds = ["exact float32", "pca-int8 flat", "pca-int8 tiles", "hnswlib M16"]
    argv = ["--bundle", str(bundle), "--queries", str(tmp_path / "qmap.npz"), "--kinds", *kinds]
    argv += ["--model", "1600", "--model-queries", "20", "--model-file", str(tmp_path / "m.npz")]
    argv += ["--work", str(tmp_path / "work"), "--json", str(tmp_path / "out.json"), "--k", "3"]
    assert bench_map.main(argv) == 0
    out = json.loads((tmp_path / "out.json").read_text())["results"]
    real = {r["kind"]: r for r in out if r["set"] == "real"}
    model = {r["kind"]: r for r in out if r["set"] != "real"}
    assert set(real) == set(kinds) and set(model) == set(kinds)
    exact = real["exact float32"]
    assert exact["recall_at_1"] == 1.0 and real["hnswlib M16"]["recall_at_1"] >= 0.9
    # R@1: the best row's tile is the query's tile (each query sits on a row of its tile)
    best = np.argmax(q @ v.T, axis=1)
    assert exact["r_at_1"] == 100.0 * np.mean(rows.tile_of_row[best] == true_tile)
    assert exact["bytes"] == 400 * EMBED_DIM * 4 + 128  # the .npy header
    assert real["pca-int8 flat"]["bytes"] < exact["bytes"] / 2
    for r in out:
        assert r["p50_ms"] > 0 and r["p90_ms"] >= r["p50_ms"] and r["open_s"] >= 0
        assert r["mb_per_km2"] == r["bytes"] / 1e6 / r["area_km2"]
    assert next(iter(model.values()))["rows"] == 1600  # 8 x 8 tiles x 25
    # the fitted model was saved and loads back
    again = RowModel.load(tmp_path / "m.npz")
    assert again.per_tile == 25 and again.basis.shape == (EMBED_DIM, EMBED_DIM)
    rows2, _, side, make_q = again.draw(400, seed=1)
    assert rows2.shape == (400, EMBED_DIM) and side == 20
    np.testing.assert_allclose(np.linalg.norm(rows2, axis=1), 1.0, atol=1e-5)
    qq, tiles, where = make_q(5, 2)
    assert qq.shape == (5, EMBED_DIM) and (tiles == (where[:, 0] // 5) * 4 + where[:, 1] // 5).all()
    assert "exact float32" in bench_map.table(out)


def test_towns_side_by_side_are_one_map(tmp_path, tiny_models):
    a, va, qa, ta = _grid_map(tmp_path, tiny_models)
    b, vb, qb, tb = _grid_map(tmp_path, tiny_models, lat0=39.95, name="south", seed=1)
    one = map_rows([a, b])
    assert len(one.vectors) == 800 and len(one.tile_latlon) == 32
    np.testing.assert_array_equal(one.tile_of_row[400:], bundle_rows(b).tile_of_row + 16)
    assert one.area_km2 == 2 * bundle_rows(a).area_km2 and one.per_tile == 25
    qs = {k: np.concatenate([np.load(tmp_path / f"q{n}.npz")[k] for n in ("map", "south")])
          for k in ("query", "query_latlon")}  # fmt: skip
    np.savez(tmp_path / "q2.npz", **qs)
    argv = ["--bundle", str(a), str(b), "--queries", str(tmp_path / "q2.npz"), "--k", "3"]
    argv += [
        "--kinds",
        "exact float32",
        "--work",
        str(tmp_path / "w"),
        "--json",
        str(tmp_path / "o"),
    ]
    assert bench_map.main(argv) == 0
    out = json.loads((tmp_path / "o").read_text())
    exact, ref = out["results"][0], out["references"][0]
    v = np.concatenate([va, vb])
    best = np.argmax(np.concatenate([qa, qb]) @ v.T, axis=1)
    truth = np.concatenate([ta, tb + 16])  # the second town's tiles are numbered on
    assert ref["queries"] == 60 and exact["area_km2"] == one.area_km2
    assert exact["r_at_1"] == 100.0 * np.mean(one.tile_of_row[best] == truth)
    with pytest.raises(ValueError, match=r"overlaps .* another --origin"):
        map_rows([a, a])


def test_bench_map_large_modelled_maps_build_only_the_streamed_kinds(tmp_path, tiny_models):
    """Past --max-ram-gb only the kinds built chunk by chunk from the float16 memory map
    are built (the others are listed as skipped), and a drawn map is reused on request."""
    bundle, *_ = _grid_map(tmp_path, tiny_models)
    kinds = ["exact float32", "pca-int8 flat", "hnswlib M16"]
    argv = ["--bundle", str(bundle), "--queries", str(tmp_path / "qmap.npz"), "--no-real"]
    argv += ["--model", "1600", "--model-queries", "20", "--model-file", str(tmp_path / "m.npz")]
    argv += ["--query-model", "real-residuals", "gaussian", "real-residuals:1"]
    argv += ["--max-ram-gb", "1e-6"]
    argv += ["--kinds", *kinds, "--work", str(tmp_path / "work"), "--k", "3"]
    runs = []
    for extra in ([], ["--reuse-rows"]):
        assert bench_map.main([*argv, *extra, "--json", str(tmp_path / "out.json")]) == 0
        runs.append(json.loads((tmp_path / "out.json").read_text()))
    for out in runs:
        assert [(r["set"], r["kind"]) for r in out["results"]] == [
            ("model1600 real-residuals", "pca-int8 flat"),
            ("model1600 gaussian", "pca-int8 flat"),
            ("model1600 real-residuals:1", "pca-int8 flat"),
        ]
        assert all(r["streamed_build"] and 0 < r["recall_at_1"] <= 1 for r in out["results"])
        refs = out["references"]
        assert [r["skipped"] for r in refs] == [["exact float32", "hnswlib M16"]] * 3
        assert all(0 <= r["r_at_1"] <= 100 and r["queries"] == 20 for r in refs)
    assert "reused" not in runs[0]["references"][0] and runs[1]["references"][0]["reused"]
    # the same map and queries: the same exact reference and the same index
    for a, b in zip(runs[0]["references"], runs[1]["references"], strict=True):
        assert a["r_at_1"] == b["r_at_1"]
    rows = np.load(tmp_path / "work" / "model1600" / "rows.npy", mmap_mode="r")
    assert rows.dtype == np.float16 and rows.shape == (1600, EMBED_DIM)
