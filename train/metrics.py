"""Retrieval metrics for cross-view geo-localization (numpy only, never torch).

The ranking semantics are those of Sample4Geo's ``calculate_scores`` so numbers are
comparable with the literature:

* similarity = ``query @ reference.T`` (dot product; cosine for L2-normalised embeddings);
* rank of a query = number of references scoring **strictly** higher than its true reference
  (a tie with the positive does not push it down);
* hit at ``k`` when ``rank < k``; R@1 % uses ``k = R // 100``, so with fewer than 100
  references ``k = 0`` and R@1 % is 0 (Sample4Geo's behaviour, kept rather than "fixed");
* VIGOR hit rate: a hit when every reference scoring strictly higher than the positive is one
  of the query's semi-positives.

Unlike Sample4Geo, the Q x R similarity matrix is never materialised: queries are scored in
chunks (``chunk`` rows at a time), so 100k x 100k evaluations run in bounded memory. Recalls
and rates are reported in **percent**, like the papers.

:func:`class_retrieval_metrics` is University-1652's protocol instead (its
``evaluate_gpu.py``, reused by Sample4Geo): many gallery items may share the query's label,
so it reports CMC recall and mean average precision.

Usage::

    from train.metrics import evaluate_retrieval
    m = evaluate_retrieval(q, r, query_ids, reference_ids,
                           query_latlon=q_ll, reference_latlon=r_ll)
    print(m.format_table()); json.dump(m.to_dict(), f)
    u = class_retrieval_metrics(drone, drone_labels, sat, sat_labels)  # University-1652
    u.recall_at(1), u.mean_ap
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from d4g_edge.errors import D4GEdgeError
from d4g_edge.geo import haversine_m
from d4g_edge.log import logger

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
DEFAULT_DISTANCES_M: tuple[float, ...] = (25.0, 50.0, 100.0)
# Auto chunk: keep one score block (float32) around 256 MiB whatever the reference count.
_AUTO_CHUNK_ELEMENTS = 64 * 1024 * 1024
# Tolerance on |norm - 1| before warning that embeddings are not L2-normalised.
_NORM_TOL = 1e-3

ScoreFn = Callable[[int, int], np.ndarray]
"""``score_fn(start, stop) -> (stop - start, R)`` scores of queries ``start:stop``."""


class MetricsInputError(D4GEdgeError, ValueError):
    """Inputs to the metrics have the wrong shape, type or contents."""


@dataclass(frozen=True)
class QueryRanks:
    """Per-query outcome of a retrieval run."""

    rank: np.ndarray  # (Q,) int64: references scoring strictly higher than the positive
    top1: np.ndarray  # (Q,) int64: index of the best reference (first one on ties)
    hit: np.ndarray | None  # (Q,) bool VIGOR hit, None without semi-positives


@dataclass(frozen=True)
class PositionError:
    """Distance in metres between the top-1 reference centre and the query's true position."""

    median_m: float
    mean_m: float
    thresholds_m: tuple[float, ...]
    recall_within: tuple[float, ...]  # percent of queries with error <= threshold

    def to_dict(self) -> dict[str, float]:
        out = {"median_error_m": self.median_m, "mean_error_m": self.mean_m}
        for t, v in zip(self.thresholds_m, self.recall_within, strict=True):
            out[f"recall@{t:g}m"] = v
        return out


class _Recalls:
    """What both metric records share: ``ks``/``recall``/R@1 % fields read by name."""

    ks: tuple[int, ...]
    recall: tuple[float, ...]
    one_percent_k: int
    recall_one_percent: float

    def recall_at(self, k: int) -> float:
        if k not in self.ks:
            raise KeyError(f"recall@{k} was not computed; available ks: {self.ks}")
        return self.recall[self.ks.index(k)]

    def _recall_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {
            f"recall@{k}": v for k, v in zip(self.ks, self.recall, strict=True)
        }
        out["recall@1%"] = self.recall_one_percent
        out["one_percent_k"] = self.one_percent_k
        return out

    def to_dict(self) -> dict[str, float | int | None]:
        raise NotImplementedError

    def format_table(self) -> str:
        """Two-column plain-text table for terminals and logs."""
        return metrics_table(self.to_dict())


@dataclass(frozen=True)
class RetrievalMetrics(_Recalls):
    """Summary of a retrieval run; recalls and hit rate in percent."""

    num_queries: int
    num_references: int
    ks: tuple[int, ...]
    recall: tuple[float, ...]  # one per k in ``ks``
    one_percent_k: int  # R // 100, the k behind R@1 %
    recall_one_percent: float
    hit_rate: float | None = None  # VIGOR only
    position: PositionError | None = None  # only with lat/lon of both sides

    def to_dict(self) -> dict[str, float | int | None]:
        """Flat JSON-ready dict: ``recall@1``, ``recall@1%``, ``hit_rate``, ``median_error_m``..."""
        out: dict[str, float | int | None] = {
            "num_queries": self.num_queries,
            "num_references": self.num_references,
        }
        out.update(self._recall_dict())
        out["hit_rate"] = self.hit_rate
        if self.position is not None:
            out.update(self.position.to_dict())
        return out


def metrics_table(values: dict[str, float | int | None]) -> str:
    rows = [
        (k, f"{v:.2f}" if isinstance(v, float) else str(v))
        for k, v in values.items()
        if v is not None  # e.g. no hit rate outside VIGOR
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v:>10}" for k, v in rows)


# --- validation ------------------------------------------------------------------------------
def _ids(name: str, ids, length: int | None = None) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise MetricsInputError(
            f"{name} must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}"
        )
    if length is not None and len(arr) != length:
        raise MetricsInputError(f"{name} has {len(arr)} entries but there are {length} vectors")
    return arr.astype(np.int64, copy=False)


def _embeddings(name: str, x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise MetricsInputError(
            f"{name} must be a 2-D float array (N x D), got shape {arr.shape} dtype {arr.dtype}"
        )
    if len(arr) == 0:
        raise MetricsInputError(f"{name} is empty; need at least one vector")
    if not np.isfinite(arr).all():
        raise MetricsInputError(f"{name} contains NaN or inf; check the encoder's outputs")
    # Dot products still rank well-defined without normalisation (Sample4Geo ranks raw dot
    # products too), so this is a warning: it is almost always a forgotten F.normalize.
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64))
    bad = int((np.abs(norms - 1.0) > _NORM_TOL).sum())
    if bad:
        logger.warning(
            "%d of %d %s vectors are not L2-normalised (norms %.4g..%.4g); ranking by raw "
            "dot product",
            bad,
            len(arr),
            name,
            norms.min(),
            norms.max(),
        )
    return arr


def _latlon(name: str, x, length: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (length, 2):
        raise MetricsInputError(f"{name} must have shape ({length}, 2) (lat, lon), got {arr.shape}")
    if not np.isfinite(arr).all() or np.abs(arr[:, 0]).max() > 90 or np.abs(arr[:, 1]).max() > 360:
        raise MetricsInputError(
            f"{name} must hold finite (lat, lon) in degrees (|lat| <= 90); got values out of "
            "range: are the columns swapped to (lon, lat)?"
        )
    return arr


def ids_to_index(ids: np.ndarray, reference_ids: np.ndarray, what: str = "query_ids") -> np.ndarray:
    """Index into ``reference_ids`` of every id in ``ids`` (any shape); clear error if missing."""
    reference_ids = _ids("reference_ids", reference_ids)
    order = np.argsort(reference_ids, kind="stable")
    sorted_ids = reference_ids[order]
    dup = sorted_ids[1:] == sorted_ids[:-1]
    if dup.any():
        raise MetricsInputError(
            f"reference_ids must be unique; {sorted_ids[1:][dup][:5].tolist()} appear twice"
        )
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    missing = sorted_ids[pos] != ids
    if missing.any():
        raise MetricsInputError(
            f"{int(missing.sum())} {what} are not among reference_ids, e.g. "
            f"{ids[missing][:5].tolist()}; every query needs its reference in the gallery"
        )
    return order[pos]


# --- ranking ---------------------------------------------------------------------------------
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


# --- class retrieval: University-1652 --------------------------------------------------------
JUNK_LABEL = -1  # gallery items with this label are removed from every ranking
# Auto chunk for class retrieval: a block holds its scores, the junk-free copy, its sorted
# copy and a label mask, so a quarter of a plain score block's elements (~200 MiB).
_CLASS_CHUNK_ELEMENTS = _AUTO_CHUNK_ELEMENTS // 4


@dataclass(frozen=True)
class ClassRetrievalMetrics(_Recalls):
    """University-1652 summary: CMC recalls and mean AP in percent over the scored queries."""

    num_queries: int  # all queries passed in
    num_skipped: int  # queries with no gallery item of their label: left out of every mean
    num_gallery: int
    ks: tuple[int, ...]
    recall: tuple[float, ...]  # one per k in ``ks``
    one_percent_k: int  # max(1, round(num_gallery * 0.01)), the k behind R@1 %
    recall_one_percent: float
    mean_ap: float

    @property
    def num_scored(self) -> int:
        return self.num_queries - self.num_skipped

    def to_dict(self) -> dict[str, float | int | None]:
        """Flat JSON-ready dict: ``recall@1``, ``recall@1%``, ``mean_ap``, counts."""
        out: dict[str, float | int | None] = {
            "num_queries": self.num_queries,
            "num_skipped": self.num_skipped,
            "num_gallery": self.num_gallery,
        }
        out.update(self._recall_dict())
        out["mean_ap"] = self.mean_ap
        return out


def rank_by_class(
    scores: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(first good row, AP) per row of a (C, G) score block, University-1652's definition.

    Each query ranks the gallery by descending score (stable: ties keep gallery order),
    drops the items labelled :data:`JUNK_LABEL` and finds its good items (its own label) at
    0-based rows ``r_0 < r_1 < ...`` of what remains. AP is the trapezoid rule over them:
    ``sum_i ((i / r_i if r_i else 1) + (i + 1) / (r_i + 1)) / 2 / n_good``. A query without
    good items gets first row -1 and AP 0 (the caller skips it).
    """
    keep = gallery_labels != JUNK_LABEL
    kept = scores[:, keep]  # junk dropped, gallery order kept
    good = gallery_labels[keep][None, :] == query_labels[:, None]
    # A good item's row = items scoring strictly higher (binary search in the sorted row:
    # np.sort is ~10x faster than a stable argsort) + earlier tied items; only a row with a
    # tie at a good item's score pays for a stable argsort.
    ascending = np.sort(kept, axis=1)
    first = np.full(len(scores), -1, dtype=np.int64)
    ap = np.zeros(len(scores))
    for q in np.flatnonzero(good.any(axis=1)):
        cols = np.flatnonzero(good[q])
        s = kept[q, cols]
        above = np.searchsorted(ascending[q], s, side="right")
        if (above - np.searchsorted(ascending[q], s, side="left") > 1).any():
            position = np.empty(kept.shape[1], dtype=np.int64)
            position[np.argsort(-kept[q], kind="stable")] = np.arange(kept.shape[1])
            rows = np.sort(position[cols])
        else:
            rows = np.sort(kept.shape[1] - above)
        i = np.arange(len(rows))
        precision = (i + 1) / (rows + 1)
        old_precision = np.where(rows != 0, i / np.maximum(rows, 1), 1.0)
        ap[q] = float(((old_precision + precision) / 2).mean())  # sum / n_good
        first[q] = rows[0]
    return first, ap


def class_retrieval_metrics(
    query_emb,
    query_labels,
    gallery_emb,
    gallery_labels,
    *,
    ks: tuple[int, ...] = DEFAULT_KS,
    chunk: int | None = None,
    progress: Callable[[range], Iterable[int]] | None = None,
) -> ClassRetrievalMetrics:
    """University-1652 retrieval metrics of ``Q x D`` queries against a ``G x D`` gallery.

    Any number of gallery items may carry a query's label (54 drone frames per location in
    Satellite->Drone); gallery label -1 marks junk, removed before ranking. Recall@k = share
    of queries with a good item in the first ``k`` of the junk-free ranking (the CMC curve),
    R@1 % uses ``k = max(1, round(G * 0.01))``, AP is :func:`rank_by_class`'s; all in
    percent over the queries with at least one good item, the others counted in
    ``num_skipped`` (and warned about). Scores are dot products, ``chunk`` queries at a time
    (default: ~200 MiB of work arrays per block).

    Differences from Sample4Geo's ``evaluate`` for University-1652, none of which changes
    the official benchmark's numbers except the last: it divides by all queries, skipped
    ones included (the benchmark has none); its ``np.argsort`` breaks ties arbitrarily; and
    it reports ``CMC[round(G * 0.01)]``, i.e. a hit within the first ``k + 1`` items.

    For Satellite->Drone from a ``CrossViewSplit`` loaded with ``mode="satellite"``, pass
    the satellite embeddings and ``split.reference_ids`` as queries and the drone
    embeddings and ``split.query_ids`` as gallery.
    """
    query = _embeddings("query", query_emb)
    gallery = _embeddings("gallery", gallery_emb)
    if query.shape[1] != gallery.shape[1]:
        raise MetricsInputError(
            f"query dim {query.shape[1]} != gallery dim {gallery.shape[1]}; both views "
            "must come from encoders with the same embedding size"
        )
    q_labels = _ids("query_labels", query_labels, len(query))
    g_labels = _ids("gallery_labels", gallery_labels, len(gallery))
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise MetricsInputError(f"ks must be positive integers, got {ks}")
    if chunk is None:
        chunk = max(1, _CLASS_CHUNK_ELEMENTS // len(gallery))
    if chunk < 1:
        raise MetricsInputError(f"chunk must be >= 1 query, got {chunk}")
    one_pct = max(1, round(len(gallery) * 0.01))
    all_ks = np.array([*ks, one_pct])
    hits = np.zeros(len(all_ks), dtype=np.int64)
    ap_sum, scored = 0.0, 0
    g_t = np.ascontiguousarray(gallery.T)
    starts = range(0, len(query), chunk)
    for start in progress(starts) if progress is not None else starts:
        stop = min(start + chunk, len(query))
        first, ap = rank_by_class(query[start:stop] @ g_t, q_labels[start:stop], g_labels)
        has = first >= 0
        hits += (first[has][:, None] < all_ks[None, :]).sum(axis=0)
        ap_sum += float(ap[has].sum())
        scored += int(has.sum())
    skipped = len(query) - scored
    if scored == 0:
        raise MetricsInputError(
            "no query has a gallery item with its label (label -1 is junk); are the "
            "query and gallery labels from the same split and id scheme?"
        )
    if skipped:
        logger.warning(
            "%d of %d queries have no gallery item with their label; they are left out of "
            "every mean",
            skipped,
            len(query),
        )
    recall = hits / scored * 100
    return ClassRetrievalMetrics(
        num_queries=len(query),
        num_skipped=skipped,
        num_gallery=len(gallery),
        ks=ks,
        recall=tuple(float(v) for v in recall[:-1]),
        one_percent_k=one_pct,
        recall_one_percent=float(recall[-1]),
        mean_ap=ap_sum / scored * 100,
    )
