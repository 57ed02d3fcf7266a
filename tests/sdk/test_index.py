"""d4g_edge.index: exact and HNSW search agree with brute force; candidate restriction."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.errors import SearchError
from d4g_edge.index import EmbeddingIndex, IndexParams


def _unit(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(q, v, k):
    s = q @ v.T
    return np.argsort(-s, axis=1, kind="stable")[:, :k], np.sort(s, axis=1)[:, ::-1][:, :k]


@pytest.mark.parametrize("threshold", [10_000, 2])  # exact numpy path, then the HNSW graph
def test_search_matches_brute_force(threshold, tmp_path):
    v, q = _unit(500, 24, 0), _unit(20, 24, 1)
    params = IndexParams(M=16, ef_construction=200, ef=200, exact_threshold=threshold)
    index = EmbeddingIndex.build(v, params, threads=1)
    assert index.exact == (threshold > 500)
    ids, scores = index.search(q, k=5)
    ref_ids, ref_scores = _brute(q, v, 5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)  # tie-aware: compare scores
    assert (ids[:, 0] == ref_ids[:, 0]).mean() >= 0.95
    # save + load keeps it (ef comes from the params, hnswlib does not persist it)
    index.save(tmp_path / "i.bin")
    again = EmbeddingIndex.load(tmp_path / "i.bin", 24, 500, params)
    ids2, _ = again.search(q, k=5)
    np.testing.assert_array_equal(ids2, ids)


@pytest.mark.parametrize("threshold", [10_000, 50, 2])
def test_candidates_restrict_results(threshold):
    v, q = _unit(300, 16, 2), _unit(4, 16, 3)
    index = EmbeddingIndex.build(v, IndexParams(M=16, ef=100, exact_threshold=threshold), 1)
    cand = np.arange(100, 160)
    ids, _scores = index.search(q, k=3, candidates=cand)
    assert np.isin(ids, cand).all()
    ref = cand[np.argmax(q @ v[cand].T, axis=1)]
    np.testing.assert_array_equal(ids[:, 0], ref)
    with pytest.raises(SearchError, match="no candidate"):
        index.search(q, candidates=np.array([], np.int64))


def test_exact_full_scan_and_small_k():
    v, q = _unit(40, 8, 4), _unit(3, 8, 5)
    index = EmbeddingIndex.build(v, IndexParams(exact_threshold=2), 1)
    ids, _scores = index.search_exact(q, k=2)
    ref_ids, _ref_scores = _brute(q, v, 2)
    np.testing.assert_array_equal(ids, ref_ids)
    ids, _ = index.search(q, k=100)  # more than the tiles: all of them
    assert ids.shape == (3, 40)
    with pytest.raises(SearchError, match="dimension"):
        index.search(_unit(1, 9, 0))


def test_float16_storage_is_exact_half_the_size_and_round_trips(tmp_path):
    v, q = _unit(400, 32, 6), _unit(25, 32, 7)
    graph = EmbeddingIndex.build(v, IndexParams(M=16), 1)
    flat = EmbeddingIndex.build(v * 3.0, IndexParams(storage="float16"), 1)  # normalised
    assert flat.exact and flat.hnsw is None
    ids, scores = flat.search(q, k=5)
    ref_ids, ref_scores = _brute(q, v, 5)
    np.testing.assert_allclose(scores, ref_scores, atol=2e-3)  # float16 rounding only
    assert (ids[:, 0] == ref_ids[:, 0]).mean() >= 0.95
    graph.save(tmp_path / "graph.bin")
    flat.save(tmp_path / "flat.bin")
    flat_size = (tmp_path / "flat.bin").stat().st_size
    assert flat_size < 0.55 * (tmp_path / "graph.bin").stat().st_size
    assert flat_size == pytest.approx(400 * 32 * 2, abs=256)  # the .npy header only
    params = IndexParams(storage="float16")
    again = EmbeddingIndex.load(tmp_path / "flat.bin", 32, 400, params)
    np.testing.assert_array_equal(again.search(q, k=5)[0], ids)
    assert again.memory_bytes() == 400 * 32 * 4
    # candidates above the exact threshold still search exactly: there is no graph
    tight = IndexParams(storage="float16", exact_threshold=2)
    small = EmbeddingIndex.load(tmp_path / "flat.bin", 32, 400, tight)
    cand = np.arange(50, 250)
    got, _ = small.search(q, k=1, candidates=cand)
    np.testing.assert_array_equal(got[:, 0], cand[np.argmax(q @ v[cand].T, axis=1)])


def test_float16_storage_refuses_what_it_cannot_read(tmp_path):
    from d4g_edge.errors import BundleError

    params = IndexParams(storage="float16")
    EmbeddingIndex.build(_unit(10, 8, 8), IndexParams(M=8), 1).save(tmp_path / "graph.bin")
    with pytest.raises(BundleError, match=r"not a float16 \.npy index"):
        EmbeddingIndex.load(tmp_path / "graph.bin", 8, 10, params)
    np.save(tmp_path / "f32.npy", _unit(10, 8, 9))
    with pytest.raises(BundleError, match=r"float32 \(10, 8\) array, the manifest says float16"):
        EmbeddingIndex.load(tmp_path / "f32.npy", 8, 10, params)
    EmbeddingIndex.build(_unit(10, 8, 8), params, 1).save(tmp_path / "flat.bin")
    with pytest.raises(BundleError, match=r"\(12, 8\)"):
        EmbeddingIndex.load(tmp_path / "flat.bin", 8, 12, params)
    with pytest.raises(ValueError, match="storage must be one of hnswlib, float16"):
        IndexParams(storage="int8")
