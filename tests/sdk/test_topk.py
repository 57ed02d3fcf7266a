"""index_params.topk selects among the scores above a sampled bound when a row is long: it
must give what a full selection gives (the best k, best first), also with ties and NaN."""

import numpy as np
import pytest

from d4g_edge.index_params import topk


def plain(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    cols = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return cols, np.take_along_axis(scores, cols, 1)


@pytest.mark.parametrize("n", [100, 4_095, 4_096, 11_925, 50_000])
@pytest.mark.parametrize("k", [1, 32, 800, 3_000])
@pytest.mark.parametrize("queries", [1, 5])
def test_the_best_k_best_first(n, k, queries):
    rng = np.random.default_rng(n + k + queries)
    # distinct values (random float32 draws do tie at 50,000 of them)
    scores = np.stack([rng.permutation(n) for _ in range(queries)]).astype(np.float32) / n
    ids, got = topk(scores, k, None)
    want_cols, want = plain(scores, k)
    np.testing.assert_array_equal(ids, want_cols)
    np.testing.assert_array_equal(got, want)


def test_ids_and_id_tables_follow_the_columns():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((2, 20_000)).astype(np.float32)
    ids = rng.permutation(20_000) + 7
    table = rng.integers(0, 10**9, (2, 20_000))
    cols, _ = plain(scores, 50)
    np.testing.assert_array_equal(topk(scores, 50, ids)[0], ids[cols])
    np.testing.assert_array_equal(
        topk(scores, 50, None, table)[0], np.take_along_axis(table, cols, 1)
    )


def test_ties_keep_the_best_scores():
    rng = np.random.default_rng(2)
    # quantized scores: thousands of exact ties, across the k-th best too
    scores = (rng.integers(0, 300, (3, 12_000)) / 300).astype(np.float32)
    ids, got = topk(scores, 800, None)
    np.testing.assert_array_equal(got, plain(scores, 800)[1])
    np.testing.assert_array_equal(np.take_along_axis(scores, ids, 1), got)
    assert all(len(set(r)) == 800 for r in ids)  # no column twice


def test_a_skewed_row_the_sample_misjudges_is_selected_in_full():
    # the best scores all sit on the sampled columns (every 8th): the bound from the sample
    # is so high that fewer than k scores reach it
    scores = np.zeros((1, 16_000), np.float32)
    scores[0, ::8] = np.linspace(1, 2, 2_000)
    _, got = topk(scores, 1_000, None)
    np.testing.assert_array_equal(got, plain(scores, 1_000)[1])


def test_nan_scores_are_never_the_best():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((1, 10_000)).astype(np.float32)
    scores[0, ::97] = np.nan
    _, got = topk(scores, 100, None)
    assert np.isfinite(got).all()
    finite = np.where(np.isnan(scores), -np.inf, scores)
    np.testing.assert_array_equal(got, plain(finite, 100)[1])


@pytest.mark.parametrize("n", [50, 477, 12_000])
def test_one_row_alone_as_among_others(n):
    # one query takes a path of its own (plain indexing): the same columns, ties included
    rng = np.random.default_rng(n)
    scores = (rng.integers(0, 40, (3, n)) / 40).astype(np.float32)
    ids = rng.permutation(n) + 3
    table = rng.integers(0, 10**9, (3, n))
    for k in (1, 32, n, n + 5):
        many = topk(scores, k, ids), topk(scores, k, None, table)
        for i in range(3):
            row = scores[i : i + 1]
            one = topk(row, k, ids), topk(row, k, None, table[i : i + 1])
            for (got_ids, got), (want_ids, want) in zip(one, many, strict=True):
                assert got_ids.shape == (1, min(k, n)) and got.dtype == np.float32
                np.testing.assert_array_equal(got_ids[0], want_ids[i])
                np.testing.assert_array_equal(got[0], want[i])
