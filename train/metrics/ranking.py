"""Ranking queries against references, Sample4Geo's semantics (see :mod:`train.metrics`):
score blocks in bounded memory, per-query ranks, their summary and metre errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from d4g_edge.geo import haversine_m
from train.metrics._checks import _embeddings, _ids, _latlon, ids_to_index
from train.metrics.records import (
    DEFAULT_DISTANCES_M,
    DEFAULT_KS,
    MetricsInputError,
    PositionError,
    QueryRanks,
    RetrievalMetrics,
)

# Auto chunk: keep one score block (float32) around 256 MiB whatever the reference count.
_AUTO_CHUNK_ELEMENTS = 64 * 1024 * 1024
ScoreFn = Callable[[int, int], np.ndarray]
"""``score_fn(start, stop) -> (stop - start, R)`` scores of queries ``start:stop``."""


def auto_chunk(num_references: int) -> int:
    """Queries per score block so one block stays near 256 MiB of float32."""
    return max(1, _AUTO_CHUNK_ELEMENTS // max(1, num_references))


def rank_scores(
    score_fn: ScoreFn,
    num_queries: int,
    positive_index: np.ndarray,
    semi_positive_index: np.ndarray | None = None,
    *,
    chunk: int | None = None,
    num_references: int | None = None,
    progress: Callable[[range], Iterable[int]] | None = None,
) -> QueryRanks:
    """Rank every query from score blocks produced by ``score_fn`` (see :data:`ScoreFn`).

    This is the core shared by embedding retrieval and non-embedding scorers (the polar
    baseline's max over circular shifts); ``positive_index`` indexes the score columns.
    ``progress`` wraps the chunk loop (e.g. ``tqdm``; this package stays numpy-only).
    """
    positive_index = np.asarray(positive_index, dtype=np.int64)
    if chunk is None:
        chunk = auto_chunk(num_references or 1)
    if chunk < 1:
        raise MetricsInputError(f"chunk must be >= 1 query, got {chunk}")
    rank = np.empty(num_queries, dtype=np.int64)
    top1 = np.empty(num_queries, dtype=np.int64)
    hit = None if semi_positive_index is None else np.empty(num_queries, dtype=bool)
    starts = range(0, num_queries, chunk)
    for start in progress(starts) if progress is not None else starts:
        stop = min(start + chunk, num_queries)
        scores = np.asarray(score_fn(start, stop))
        if scores.ndim != 2 or scores.shape[0] != stop - start:
            raise MetricsInputError(
                f"score block for queries {start}:{stop} has shape {scores.shape}, "
                f"expected ({stop - start}, R)"
            )
        if not np.isfinite(scores).all():
            raise MetricsInputError(f"scores for queries {start}:{stop} contain NaN or inf")
        rows = np.arange(stop - start)
        gt = scores[rows, positive_index[start:stop]]
        higher = scores > gt[:, None]
        rank[start:stop] = higher.sum(axis=1)
        top1[start:stop] = scores.argmax(axis=1)
        if hit is not None:
            semi = np.sort(semi_positive_index[start:stop], axis=1)
            semi_higher = higher[rows[:, None], semi]
            # a semi-positive listed twice must be excused once (Sample4Geo masks, not counts)
            semi_higher[:, 1:] &= semi[:, 1:] != semi[:, :-1]
            hit[start:stop] = rank[start:stop] == semi_higher.sum(axis=1)
    return QueryRanks(rank=rank, top1=top1, hit=hit)


def position_error(
    query_latlon, predicted_latlon, distances_m: tuple[float, ...] = DEFAULT_DISTANCES_M
) -> PositionError:
    """Metres between each query's true and predicted position (e.g. its top-1 reference's)."""
    qll = _latlon("query_latlon", query_latlon, len(np.asarray(query_latlon)))
    best = _latlon("predicted_latlon", predicted_latlon, len(qll))
    err = haversine_m(qll[:, 0], qll[:, 1], best[:, 0], best[:, 1])
    return PositionError(
        median_m=float(np.median(err)),
        mean_m=float(err.mean()),
        thresholds_m=tuple(float(t) for t in distances_m),
        recall_within=tuple(float((err <= t).mean() * 100) for t in distances_m),
    )


def summarize(
    ranks: QueryRanks,
    num_references: int,
    *,
    ks: tuple[int, ...] = DEFAULT_KS,
    query_latlon: np.ndarray | None = None,
    reference_latlon: np.ndarray | None = None,
    distances_m: tuple[float, ...] = DEFAULT_DISTANCES_M,
) -> RetrievalMetrics:
    """Recall@k, R@1 %, hit rate and metre errors from per-query ranks."""
    q = len(ranks.rank)
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise MetricsInputError(f"ks must be positive integers, got {ks}")
    one_pct = num_references // 100
    position = None
    if (query_latlon is None) != (reference_latlon is None):
        raise MetricsInputError("pass both query_latlon and reference_latlon, or neither")
    if query_latlon is not None:
        rll = _latlon("reference_latlon", reference_latlon, num_references)
        position = position_error(query_latlon, rll[ranks.top1], distances_m)
    return RetrievalMetrics(
        num_queries=q,
        num_references=num_references,
        ks=ks,
        recall=tuple(float((ranks.rank < k).mean() * 100) for k in ks),
        one_percent_k=one_pct,
        recall_one_percent=float((ranks.rank < one_pct).mean() * 100),
        hit_rate=None if ranks.hit is None else float(ranks.hit.mean() * 100),
        position=position,
    )


def evaluate_scores(
    score_fn: ScoreFn,
    query_ids,
    reference_ids,
    *,
    semi_positive_ids=None,
    query_latlon=None,
    reference_latlon=None,
    ks: tuple[int, ...] = DEFAULT_KS,
    distances_m: tuple[float, ...] = DEFAULT_DISTANCES_M,
    chunk: int | None = None,
    progress: Callable[[range], Iterable[int]] | None = None,
) -> RetrievalMetrics:
    """Like :func:`evaluate_retrieval` for any scorer; higher score = better match."""
    reference_ids = _ids("reference_ids", reference_ids)
    query_ids = _ids("query_ids", query_ids)
    if len(query_ids) == 0 or len(reference_ids) == 0:
        raise MetricsInputError("need at least one query and one reference")
    positive = ids_to_index(query_ids, reference_ids)
    semi = None
    if semi_positive_ids is not None:
        semi_arr = np.asarray(semi_positive_ids)
        if semi_arr.ndim != 2 or len(semi_arr) != len(query_ids):
            raise MetricsInputError(
                f"semi_positive_ids must have shape ({len(query_ids)}, S), got {semi_arr.shape}"
            )
        semi = ids_to_index(semi_arr, reference_ids, "semi_positive_ids")
    ranks = rank_scores(
        score_fn,
        len(query_ids),
        positive,
        semi,
        chunk=chunk,
        num_references=len(reference_ids),
        progress=progress,
    )
    return summarize(
        ranks,
        len(reference_ids),
        ks=ks,
        query_latlon=query_latlon,
        reference_latlon=reference_latlon,
        distances_m=distances_m,
    )


def evaluate_retrieval(
    query,
    reference,
    query_ids,
    reference_ids,
    *,
    semi_positive_ids=None,
    query_latlon=None,
    reference_latlon=None,
    ks: tuple[int, ...] = DEFAULT_KS,
    distances_m: tuple[float, ...] = DEFAULT_DISTANCES_M,
    chunk: int | None = None,
    progress: Callable[[range], Iterable[int]] | None = None,
) -> RetrievalMetrics:
    """Score ``Q x D`` query embeddings against ``R x D`` reference embeddings.

    ``query_ids[i]`` is the id of query ``i``'s true reference among ``reference_ids``
    (unique). ``semi_positive_ids`` (Q x S, VIGOR) enables the hit rate; lat/lon of both
    sides (degrees) enable metre errors of the top-1 reference centre. ``chunk`` = queries
    scored at once (default: sized for ~256 MiB per block). Embeddings that are not
    L2-normalised are ranked by raw dot product with a logged warning.
    """
    query = _embeddings("query", query)
    reference = _embeddings("reference", reference)
    if query.shape[1] != reference.shape[1]:
        raise MetricsInputError(
            f"query dim {query.shape[1]} != reference dim {reference.shape[1]}; both views "
            "must come from encoders with the same embedding size"
        )
    _ids("query_ids", query_ids, len(query))
    _ids("reference_ids", reference_ids, len(reference))
    ref_t = np.ascontiguousarray(reference.T)
    return evaluate_scores(
        lambda start, stop: query[start:stop] @ ref_t,
        query_ids,
        reference_ids,
        semi_positive_ids=semi_positive_ids,
        query_latlon=query_latlon,
        reference_latlon=reference_latlon,
        ks=ks,
        distances_m=distances_m,
        chunk=chunk,
        progress=progress,
    )
