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
