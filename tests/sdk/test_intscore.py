"""Every code of a small pca-int8 map scored by onnxruntime's int8 product (d4g_edge.intscore):
a valid ONNX model, scores as exact as float32's, the same answers as the cast it replaces."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from d4g_edge import compressed, intscore
from d4g_edge.bitindex import BitIndex
from d4g_edge.bundle import Bundle, model_entry, write_bundle
from d4g_edge.index import EmbeddingIndex, IndexParams
from d4g_edge.intscore import PASSES, Int8Scores, model_bytes, split
from d4g_edge.runtime import open_encoder
from d4g_edge.tiletable import TileTable
from tests.sdk._models import EMBED_DIM


def _codes(n=3000, k=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = rng.integers(-127, 128, (n, k), dtype=np.int8)
    codes[:50] = 127  # the extremes: every product at its largest magnitude
    codes[50:100] = -127
    return codes


def _reference(w: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return np.asarray(w, np.float64) @ codes.T.astype(np.float64)


def test_model_is_valid_onnx() -> None:
    b = np.ascontiguousarray(_codes(300, 48).T)
    model = onnx.load_from_string(model_bytes(b))
    onnx.checker.check_model(model, full_check=True)
    (node,) = model.graph.node
    assert node.op_type == "MatMulInteger"
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(init["B"], b)
    assert init["zp"].dtype == np.uint8 and int(init["zp"]) == intscore._ZERO


def test_split_rebuilds_the_query_to_float32_precision() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 64)) * np.array([1e-3, 1, 1e3, 1e-6, 7])[:, None]
    w[2, :4] *= 1e4  # a wide dynamic range within one row
    rows, scales = split(w)
    assert rows.dtype == np.uint8 and rows.shape == (5 * PASSES, 64)
    assert rows.max() <= 2 * intscore._ZERO  # 7-bit inputs: no int16 saturation of pairs
    digits = rows.reshape(5, PASSES, 64).astype(np.float64) - intscore._ZERO
    rebuilt = scales[:, None] * np.einsum("p,mpk->mk", intscore._WEIGHTS, digits)
    err = np.abs(rebuilt - w).max(1) / np.abs(w).max(1)
    assert (err <= 2.0**-24).all(), err


def test_scores_are_as_exact_as_float32() -> None:
    codes = _codes()
    scorer = Int8Scores(codes)
    rng = np.random.default_rng(2)
    for scale in (1e-4, 1.0, 1e4):
        w = (rng.normal(size=(3, 64)) * scale).astype(np.float32)
        w[0, :8] *= 100
        ref = _reference(w, codes)
        got = scorer(w)
        f32 = w @ codes.T.astype(np.float32)  # float32's own product, for the yardstick
        assert got.dtype == np.float32 and got.shape == (3, len(codes))
        assert np.abs(got - ref).max() <= 2 * np.abs(f32 - ref).max() + 1e-30
    # all weights at the largest digit against codes at +-127: the saturation case of
    # u8 x s8 pairs on x86 without VNNI (this machine may have VNNI: then it cannot saturate
    # either way, and the bound above is what the 7-bit digits guarantee everywhere)
    w = np.full((1, 64), 1.0, np.float32)
    np.testing.assert_allclose(scorer(w), _reference(w, codes), rtol=1e-6)
    assert np.array_equal(scorer(np.zeros((2, 64), np.float32)), np.zeros((2, len(codes))))


def _index(n=2000, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 96)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    params = IndexParams(storage="pca-int8", pca_dims=32)
    return EmbeddingIndex.build(x, params), x


def test_index_scores_match_the_cast_path() -> None:
    index, x = _index()
    assert index.int8 is not None
    q = x[:3] + 0.1 * np.random.default_rng(4).normal(size=(3, 96)).astype(np.float32)
    with_int8 = index.all_scores(q)
    ids, scores = index.search(q, k=10)
    assert index.int8.nbytes == index.codes.nbytes  # the session's copy, once made
    saved, index.int8 = index.int8, None
    try:
        cast = index.all_scores(q)
        ids0, scores0 = index.search(q, k=10)
    finally:
        index.int8 = saved
    np.testing.assert_allclose(with_int8, cast, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(ids, ids0)
    np.testing.assert_allclose(scores, scores0, atol=1e-5)


def test_many_queries_and_non_finite_ones_take_the_cast(monkeypatch) -> None:
    index, x = _index()
    calls = []
    monkeypatch.setattr(Int8Scores, "__call__", lambda self, w: calls.append(len(w)))
    many = index.all_scores(x[: intscore.MAX_QUERIES + 1])
    assert calls == [] and many.shape == (intscore.MAX_QUERIES + 1, index.count)
    bad = x[:1].copy()
    bad[0, 0] = np.nan
    assert np.isnan(index.all_scores(bad)).all() and calls == []


def test_large_maps_get_no_scorer(monkeypatch) -> None:
    monkeypatch.setattr(compressed, "MAX_CODES", 1000)
    index, x = _index()
    assert index.int8 is None
    assert index.all_scores(x[:1]).shape == (1, index.count)


@pytest.mark.parametrize("n", [1, 7])
def test_tiny_maps(n) -> None:
    codes = _codes(n, 16)
    w = np.random.default_rng(5).normal(size=(2, 16)).astype(np.float32)
    np.testing.assert_allclose(Int8Scores(codes)(w), _reference(w, codes), rtol=1e-6, atol=1e-6)


def test_cells_of_a_sharded_bundle_and_pca_bits_keep_the_cast(tmp_path, tiny_models):
    # a session per cell would make RSS grow with the cells loaded; pca-bits codes are
    # byte planes of residual bits, not int8 codes
    sat = open_encoder(tiny_models["satellite"])
    rng = np.random.default_rng(6)
    v = rng.normal(size=(400, EMBED_DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    lat = 40.0 + np.repeat(np.arange(20), 20) * 2e-4  # cells of 0.001 deg: a few rows each
    lon = -88.0 + np.tile(np.arange(20), 20) * 2e-4
    table = TileTable.from_rows(np.arange(400) + 100, lat, lon, np.full(400, 20.0), 0.001)
    entry = model_entry(sat.path, sat.config, sat.sha256)
    params = IndexParams(storage="pca-int8", pca_dims=16)
    write_bundle(tmp_path / "b", v, table, entry, params=params, cells=True)
    b = Bundle.load(tmp_path / "b")
    parts = [index for index, _ in b.index.parts]
    assert len(parts) > 4 and all(p.int8 is None for p in parts)
    ids, _ = b.index.search(v[[3, 250]], k=1)
    np.testing.assert_array_equal(b.tiles.tile_id[ids[:, 0]], [103, 350])
    bits = EmbeddingIndex.build(v, IndexParams(storage="pca-bits", row_bytes=16))
    assert isinstance(bits, BitIndex) and bits.int8 is None
