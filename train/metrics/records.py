"""What the retrieval metrics report: per-query ranks, the summary records (recalls in
percent, R@1 %, VIGOR hit rate, metre errors) and their plain-text table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d4g_edge.errors import D4GEdgeError

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
DEFAULT_DISTANCES_M: tuple[float, ...] = (25.0, 50.0, 100.0)


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
