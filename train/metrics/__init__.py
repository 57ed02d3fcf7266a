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

By concern: :mod:`.records` (what is reported and its table), :mod:`.ranking` (ranks,
their summary, metre errors), :mod:`.classes` (University-1652), :mod:`._checks` (input
checks); every public name is importable from ``train.metrics``.

Usage::

    from train.metrics import evaluate_retrieval
    m = evaluate_retrieval(q, r, query_ids, reference_ids,
                           query_latlon=q_ll, reference_latlon=r_ll)
    print(m.format_table()); json.dump(m.to_dict(), f)
    u = class_retrieval_metrics(drone, drone_labels, sat, sat_labels)  # University-1652
    u.recall_at(1), u.mean_ap
"""

from train.metrics._checks import ids_to_index
from train.metrics.classes import (
    JUNK_LABEL,
    ClassRetrievalMetrics,
    class_retrieval_metrics,
    rank_by_class,
)
from train.metrics.ranking import (
    ScoreFn,
    auto_chunk,
    evaluate_retrieval,
    evaluate_scores,
    position_error,
    rank_scores,
    summarize,
)
from train.metrics.records import (
    DEFAULT_DISTANCES_M,
    DEFAULT_KS,
    MetricsInputError,
    PositionError,
    QueryRanks,
    RetrievalMetrics,
    metrics_table,
)

__all__ = [
    "DEFAULT_DISTANCES_M",
    "DEFAULT_KS",
    "JUNK_LABEL",
    "ClassRetrievalMetrics",
    "MetricsInputError",
    "PositionError",
    "QueryRanks",
    "RetrievalMetrics",
    "ScoreFn",
    "auto_chunk",
    "class_retrieval_metrics",
    "evaluate_retrieval",
    "evaluate_scores",
    "ids_to_index",
    "metrics_table",
    "position_error",
    "rank_by_class",
    "rank_scores",
    "summarize",
]
