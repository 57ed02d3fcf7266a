"""Retrieval metrics: Sample4Geo semantics on hand-computed cases, chunking, metre errors."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from d4g_edge.log import logger
from train.metrics import (
    MetricsInputError,
    class_retrieval_metrics,
    evaluate_retrieval,
    evaluate_scores,
)

# 1 degree of latitude on the IUGG mean sphere, from the definition of arc length.
METRES_PER_DEG_LAT = math.pi / 180 * 6_371_008.8


def scores_as_embeddings(scores):
    """Queries whose dot products with an identity gallery are exactly ``scores``."""
    scores = np.asarray(scores, dtype=np.float32)
    return scores, np.eye(scores.shape[1], dtype=np.float32)


def test_hand_computed_ranks_with_ties():
    q, r = scores_as_embeddings(
        [
            [0.5, 0.25, 0.75, 0.125],  # true id 10 (col 0): 0.75 is higher -> rank 1
            [0.25, 0.5, 0.5, 0.5],  # true id 20 (col 1): two ties, none higher -> rank 0
            [1.0, 0.75, 0.5, 0.25],  # true id 40 (col 3): three higher -> rank 3
        ]
    )
    m = evaluate_retrieval(q, r, [10, 20, 40], [10, 20, 30, 40], ks=(1, 2, 4))
    assert m.recall == pytest.approx((100 / 3, 200 / 3, 100.0))
    assert m.recall_at(1) == pytest.approx(100 / 3)
    # R = 4 < 100 -> k = R // 100 = 0 and "rank < 0" never holds: R@1% is 0 (as Sample4Geo)
    assert m.one_percent_k == 0
    assert m.recall_one_percent == 0.0
    assert m.hit_rate is None and m.position is None
    d = m.to_dict()
    assert d["recall@2"] == pytest.approx(200 / 3) and d["recall@1%"] == 0.0
    assert d["num_queries"] == 3 and d["num_references"] == 4
    with pytest.raises(KeyError, match="available ks"):
        m.recall_at(5)


def test_recall_one_percent_uses_r_div_100():
    n_ref = 250  # k = 2
    scores = np.zeros((3, n_ref), dtype=np.float32)
    scores[:, 0] = 0.5  # every query's true reference is id 0
    scores[0, 1] = 1.0  # rank 1 -> hit at k=2
    scores[1, 1:3] = 1.0  # rank 2 -> miss at k=2
    scores[2, 1:200] = 1.0  # rank 199
    q, r = scores_as_embeddings(scores)
    m = evaluate_retrieval(q, r, [0, 0, 0], np.arange(n_ref), ks=(1, 5, 200))
    assert m.one_percent_k == 2
    assert m.recall_one_percent == pytest.approx(100 / 3)
    assert m.recall == pytest.approx((0.0, 200 / 3, 100.0))


def test_vigor_hit_rate_masks_only_semi_positives():
    ref_ids = [1, 2, 3, 4, 5]
    q, r = scores_as_embeddings(
        [
            [0.5, 0.75, 0.875, 0.25, 0.125],  # higher: 2, 3 (both semi) -> hit despite rank 2
            [0.5, 0.75, 0.25, 0.25, 0.625],  # higher: 2 (semi), 5 (not semi) -> miss
            [0.5, 0.75, 0.25, 0.25, 0.625],  # semi [2, 2, 5]: both higher are semi -> hit
            [0.5, 0.25, 0.5, 0.25, 0.125],  # nothing strictly higher (a tie) -> hit
        ]
    )
    semi = [[2, 3, 4], [2, 3, 4], [2, 2, 5], [2, 3, 4]]
    m = evaluate_retrieval(q, r, [1, 1, 1, 1], ref_ids, semi_positive_ids=semi, ks=(1,))
    assert m.hit_rate == pytest.approx(75.0)
    assert m.recall == pytest.approx((25.0,))  # only the last query has rank 0


def brute_force_ranks(q, r, positive):
    """Definition, on the full matrix: count of strictly higher scores per query."""
    sim = q @ r.T
    gt = sim[np.arange(len(q)), positive]
    return (sim > gt[:, None]).sum(axis=1)


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_chunk_size_does_not_change_results(chunk):
    rng = np.random.default_rng(0)
    # entries k/8 with |k| <= 4, D = 16: every dot product is an exact multiple of 1/64 in
    # float32 whatever the BLAS blocking, and the coarse grid makes many ties.
    q = rng.integers(-4, 5, size=(64, 16)).astype(np.float32) / 8
    r = rng.integers(-4, 5, size=(150, 16)).astype(np.float32) / 8
    ref_ids = rng.permutation(1000)[:150]
    positive = rng.integers(0, 150, size=64)
    expected = brute_force_ranks(q, r, positive)
    ll_r = np.column_stack([40 + np.arange(150) * 0.001, np.full(150, -88.0)])  # 111 m apart
    ll_q = ll_r[positive]
    m = evaluate_retrieval(
        q,
        r,
        ref_ids[positive],
        ref_ids,
        ks=(1, 5, 10),
        chunk=chunk,
        query_latlon=ll_q,
        reference_latlon=ll_r,
    )
    assert m.recall == pytest.approx(tuple((expected < k).mean() * 100 for k in (1, 5, 10)))
    assert m.recall_one_percent == pytest.approx((expected < 1).mean() * 100)  # 150 // 100
    # top-1 is first argmax of the full matrix, so errors are zero exactly where it is correct
    top1 = (q @ r.T).argmax(axis=1)
    assert m.position.recall_within[0] == pytest.approx((top1 == positive).mean() * 100)


def test_normalized_float32_embeddings_match_definition():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(40, 32)).astype(np.float32)
    r = rng.normal(size=(120, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    positive = np.arange(40) * 3
    ranks = brute_force_ranks(q, r, positive)
    m = evaluate_retrieval(q, r, positive + 100, np.arange(120) + 100, chunk=40)
    assert m.recall == pytest.approx(tuple((ranks < k).mean() * 100 for k in (1, 5, 10)))


def test_scorer_sees_bounded_blocks():
    n_q, n_r = 25, 30
    blocks = []

    def scorer(start, stop):
        blocks.append(stop - start)
        s = np.zeros((stop - start, n_r))
        s[np.arange(stop - start), np.arange(start, stop)] = 1.0  # query i matches ref i
        return s

    m = evaluate_scores(scorer, np.arange(n_q), np.arange(n_r), chunk=4)
    assert max(blocks) == 4 and sum(blocks) == n_q
    assert m.recall[0] == 100.0


def test_position_error_in_metres():
    # references strung along a meridian; queries where the top-1 is off by known arcs
    dlat = np.array([0.0002, 0.0004, 0.0008, 0.002])
    ref_ll = np.column_stack([10.0 + np.arange(4) * 0.01, np.full(4, 20.0)])
    q_ll = ref_ll + np.column_stack([dlat, np.zeros(4)])
    q, r = scores_as_embeddings(np.eye(4))  # each query's top-1 is its own reference
    m = evaluate_retrieval(
        q, r, np.arange(4), np.arange(4), query_latlon=q_ll, reference_latlon=ref_ll
    )
    err = dlat * METRES_PER_DEG_LAT  # 22.2, 44.5, 89.0, 222.4 m
    loc = m.position
    assert loc.median_m == pytest.approx((err[1] + err[2]) / 2, rel=1e-6)
    assert loc.mean_m == pytest.approx(err.mean(), rel=1e-6)
    assert loc.thresholds_m == (25.0, 50.0, 100.0)
    assert loc.recall_within == pytest.approx((25.0, 50.0, 75.0))
    assert m.to_dict()["recall@50m"] == pytest.approx(50.0)


def test_top1_error_uses_best_reference_not_true_one():
    ref_ll = np.array([[0.0, 0.0], [0.001, 0.0]])
    q, r = scores_as_embeddings([[0.25, 0.5]])  # true ref 0, but ref 1 wins
    m = evaluate_retrieval(q, r, [0], [0, 1], query_latlon=ref_ll[:1], reference_latlon=ref_ll)
    assert m.position.median_m == pytest.approx(0.001 * METRES_PER_DEG_LAT, rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"query": np.ones((2, 3), np.float32)}, "query dim 3 != reference dim 4"),
        ({"query_ids": [0, 9]}, "not among reference_ids"),
        ({"reference_ids": [0, 1, 1]}, "must be unique"),
        ({"query_ids": [0.0, 1.0]}, "1-D integer array"),
        ({"query_ids": [0]}, "has 1 entries but there are 2 vectors"),
        ({"query": np.full((2, 4), np.nan, np.float32)}, "NaN or inf"),
        ({"query_latlon": np.zeros((2, 2))}, "both query_latlon and reference_latlon"),
        ({"semi_positive_ids": [[0, 5], [1, 2]]}, "semi_positive_ids are not among"),
        ({"semi_positive_ids": [0, 1]}, r"shape \(2, S\)"),
        ({"ks": (0,)}, "positive integers"),
        ({"chunk": 0}, "chunk must be >= 1"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    args = {
        "query": np.eye(2, 4, dtype=np.float32),
        "reference": np.eye(3, 4, dtype=np.float32),
        "query_ids": [0, 1],
        "reference_ids": [0, 1, 2],
    }
    args.update(kwargs)
    q, r, qi, ri = (args.pop(k) for k in ("query", "reference", "query_ids", "reference_ids"))
    with pytest.raises(MetricsInputError, match=match):
        evaluate_retrieval(q, r, qi, ri, **args)


def test_latlon_out_of_range_is_rejected():
    ll = np.array([[0.0, 0.0], [95.0, 0.0]])
    with pytest.raises(MetricsInputError, match="swapped"):
        evaluate_retrieval(
            np.eye(2), np.eye(2), [0, 1], [0, 1], query_latlon=ll, reference_latlon=ll
        )


def test_unnormalized_embeddings_warn_but_rank_by_dot_product(caplog):
    logger.addHandler(caplog.handler)  # robust to CLIs that disabled propagation
    try:
        with caplog.at_level(logging.WARNING, logger="d4g_edge"):
            m = evaluate_retrieval(np.array([[2.0, 0.0]]), np.eye(2), [0], [0, 1])
    finally:
        logger.removeHandler(caplog.handler)
    assert "not L2-normalised" in caplog.text
    assert m.recall[0] == 100.0


# --- University-1652 class retrieval ---------------------------------------------------------
def reference_university_eval(scores, q_labels, g_labels):
    """University-1652's evaluate_gpu.py, one query at a time, written out literally (with a
    stable sort so ties keep gallery order): (first good row or -1, AP) per query."""
    out = []
    for s, ql in zip(scores, q_labels, strict=True):
        index = np.argsort(-s, kind="stable")
        index = index[g_labels[index] != -1]  # junk removed
        rows_good = np.flatnonzero(g_labels[index] == ql)
        if ql == -1 or len(rows_good) == 0:
            out.append((-1, 0.0))
            continue
        ap = 0.0
        for i, r in enumerate(rows_good):
            precision = (i + 1) / (r + 1)
            old_precision = i / r if r != 0 else 1.0
            ap += (old_precision + precision) / 2 / len(rows_good)
        out.append((int(rows_good[0]), ap))
    return out


def test_class_retrieval_hand_computed():
    g_labels = [1, 2, -1, 1, 3]  # item 2 is junk
    q, g = scores_as_embeddings(
        [
            # label 1; ranking 1(l2) 4(l3) 0(l1) 3(l1) [2 junk]: goods at rows 2 and 3
            [0.5, 0.875, 0.125, 0.25, 0.75],
            # label 3; junk item 2 scores highest and is dropped: the good item 4 is row 0
            [0.125, 0.25, 0.875, 0.375, 0.75],
            # label 7: no gallery item has it -> skipped
            [0.5, 0.5, 0.5, 0.5, 0.5],
            # label 2; all tied -> gallery order 0(l1) 1(l2): the good item is row 1
            [0.5, 0.5, 0.5, 0.5, 0.5],
        ]
    )
    m = class_retrieval_metrics(q, [1, 3, 7, 2], g, g_labels, ks=(1, 2, 3))
    # AP by the trapezoid rule, good i at row r: ((i / r if r else 1) + (i + 1) / (r + 1)) / 2
    ap_a = ((0 / 2 + 1 / 3) / 2 + (1 / 3 + 2 / 4) / 2) / 2  # = 7/24
    ap_b = (1.0 + 1 / 1) / 2  # = 1
    ap_d = (0 / 1 + 1 / 2) / 2  # = 1/4
    assert m.num_queries == 4 and m.num_skipped == 1 and m.num_scored == 3
    assert m.num_gallery == 5
    assert m.mean_ap == pytest.approx((ap_a + ap_b + ap_d) / 3 * 100)
    assert m.mean_ap == pytest.approx(37 / 72 * 100)
    # first good rows: a 2, b 0, d 1
    assert m.recall == pytest.approx((100 / 3, 200 / 3, 100.0))
    assert m.recall_at(2) == pytest.approx(200 / 3)
    assert m.one_percent_k == 1  # round(5 * 0.01) = 0, raised to 1
    assert m.recall_one_percent == pytest.approx(100 / 3)
    d = m.to_dict()
    assert d["mean_ap"] == pytest.approx(37 / 72 * 100) and d["num_skipped"] == 1
    assert "recall@1%" in m.format_table()
    with pytest.raises(KeyError, match="available ks"):
        m.recall_at(10)


@pytest.mark.parametrize("row", [0, 1, 2, 5])
def test_single_positive_ap_by_trapezoid_rule(row):
    scores = np.zeros((1, 8), dtype=np.float32)
    scores[0, :row] = 1.0  # `row` distractors above the positive at column `row`
    scores[0, row] = 0.5
    labels = np.arange(8)
    q, g = scores_as_embeddings(scores)
    m = class_retrieval_metrics(q, [row], g, labels, ks=(1,))
    # i = 0: old precision 0 / r = 0 unless r == 0 (then 1); precision 1 / (r + 1)
    expected = 1.0 if row == 0 else (0.0 + 1 / (row + 1)) / 2
    assert m.mean_ap == pytest.approx(expected * 100)
    assert m.recall[0] == (100.0 if row == 0 else 0.0)


@pytest.mark.parametrize(("n_gallery", "k"), [(40, 1), (250, 2), (300, 3), (951, 10)])
def test_class_recall_one_percent_k(n_gallery, k):
    # k = round(G * 0.01) with Python's round (half to even: 2.5 -> 2), at least 1
    scores = np.zeros((2, n_gallery), dtype=np.float32)
    scores[:, 0] = 0.5  # both queries' only good item (label 0)
    scores[0, 1:k] = 1.0  # k - 1 above it: row k - 1, a hit within the first k
    scores[1, 1 : k + 1] = 1.0  # k above it: row k, a miss
    q, g = scores_as_embeddings(scores)
    m = class_retrieval_metrics(q, [0, 0], g, np.arange(n_gallery), ks=(1,))
    assert m.one_percent_k == k
    assert m.recall_one_percent == pytest.approx(50.0)


@pytest.mark.parametrize("chunk", [None, 1, 7, 64, 10_000])
def test_class_chunking_matches_literal_definition(chunk):
    rng = np.random.default_rng(3)
    # entries k/8, D = 16: exact float32 dot products, and many ties
    q = rng.integers(-4, 5, size=(70, 16)).astype(np.float32) / 8
    g = rng.integers(-4, 5, size=(120, 16)).astype(np.float32) / 8
    g_labels = rng.integers(-1, 25, size=120)  # ~5 items per label, some junk
    q_labels = rng.integers(0, 30, size=70)  # labels 25..29 have no gallery item
    expected = reference_university_eval(q @ g.T, q_labels, g_labels)
    first = np.array([f for f, _ in expected])
    ap = np.array([a for _, a in expected])
    scored = first >= 0
    m = class_retrieval_metrics(q, q_labels, g, g_labels, ks=(1, 5, 10), chunk=chunk)
    assert m.num_skipped == int((~scored).sum()) > 0
    assert m.mean_ap == pytest.approx(ap[scored].mean() * 100)
    for k, r in zip((1, 5, 10), m.recall, strict=True):
        assert r == pytest.approx((first[scored] < k).mean() * 100)
    assert m.recall_one_percent == pytest.approx((first[scored] < 1).mean() * 100)  # k = 1


def test_class_retrieval_bad_inputs():
    q, g = np.eye(2, 4, dtype=np.float32), np.eye(3, 4, dtype=np.float32)
    with pytest.raises(MetricsInputError, match="query dim 3 != gallery dim 4"):
        class_retrieval_metrics(np.eye(2, 3), [0, 1], g, [0, 1, 2])
    with pytest.raises(MetricsInputError, match="gallery_labels has 2 entries"):
        class_retrieval_metrics(q, [0, 1], g, [0, 1])
    with pytest.raises(MetricsInputError, match="no query has a gallery item"):
        class_retrieval_metrics(q, [5, -1], g, [0, 1, -1])  # -1 queries match nothing
    with pytest.raises(MetricsInputError, match="chunk must be >= 1"):
        class_retrieval_metrics(q, [0, 1], g, [0, 1, 2], chunk=0)
    with pytest.raises(MetricsInputError, match="positive integers"):
        class_retrieval_metrics(q, [0, 1], g, [0, 1, 2], ks=(0,))
