"""University-1652's retrieval protocol (its ``evaluate_gpu.py``, reused by Sample4Geo): many
gallery items may share the query's label, so it reports CMC recall and mean average precision."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from d4g_edge.log import logger
from train.metrics._checks import _embeddings, _ids
from train.metrics.ranking import _AUTO_CHUNK_ELEMENTS
from train.metrics.records import DEFAULT_KS, MetricsInputError, _Recalls

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
    hits, ap_sum, scored = _hits_and_ap(
        query, q_labels, gallery, g_labels, np.array([*ks, one_pct]), chunk, progress
    )
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


def _hits_and_ap(query, q_labels, gallery, g_labels, all_ks, chunk, progress):
    """Per cut-off in ``all_ks``, the queries with a good item within it; the sum of the
    queries' APs; the count of queries with a good item at all (the others are skipped)."""
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
    return hits, ap_sum, scored
