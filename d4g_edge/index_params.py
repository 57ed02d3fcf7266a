"""What an index is (its parameters) and the top-k selection every index kind shares.

Apart from :mod:`d4g_edge.index` so that the compressed kind (:mod:`d4g_edge.compressed`),
which :mod:`d4g_edge.index` opens, imports these without importing that module back.

Usage::

    from d4g_edge.index_params import IndexParams, topk
    params = IndexParams(storage="pca-int8", pca_dims=64)
    ids, scores = topk(query_scores, k=5, ids=None)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from d4g_edge.errors import IndexParamsError

__all__ = ["STORAGES", "IndexParams", "merge_topk", "topk"]


@dataclass(frozen=True)
class IndexParams:
    """hnswlib graph parameters and the size below which search is exact."""

    M: int = 32  # graph degree: recall up, memory up
    ef_construction: int = 200
    ef: int = 128  # search beam; >= k; recall up, latency up
    exact_threshold: int = 20_000
    space: str = "cosine"
    # "hnswlib", "float16" (no graph, exact search; see the module doc) or "pca-int8" (a PCA
    # rotation + int8 codes, memory-mapped, coarse to fine: d4g_edge.compressed)
    storage: str = "hnswlib"
    # pca-int8 only (absent from the manifests of the other kinds):
    pca_dims: int = 64  # components kept = bytes per row
    lists: int = 0  # coarse k-means lists; 1: none (a flat scan); 0: auto (1 below 32,768 rows)
    group_rows: int = 0  # > 0: the coarse lists are runs of this many rows (a tile's centres)
    probe: int = 16  # lists whose rows are scored with their codes
    refine: int = 0  # > 0: also store float16 rows and re-rank this many candidates exactly

    def __post_init__(self) -> None:
        for name in ("M", "ef_construction", "ef"):
            if int(getattr(self, name)) < 2:
                raise IndexParamsError(
                    f"index parameter {name} must be >= 2, got {getattr(self, name)}"
                )
        if self.space != "cosine":
            raise IndexParamsError(f"only the cosine space is supported, got {self.space!r}")
        if self.storage not in STORAGES:
            raise IndexParamsError(
                f"index storage must be one of {', '.join(STORAGES)}, got {self.storage!r}"
            )
        for name in ("pca_dims", "probe"):
            if int(getattr(self, name)) < 1:
                raise IndexParamsError(
                    f"index parameter {name} must be >= 1, got {getattr(self, name)}"
                )
        for name in ("lists", "group_rows", "refine"):
            if int(getattr(self, name)) < 0:
                raise IndexParamsError(
                    f"index parameter {name} must be >= 0, got {getattr(self, name)}"
                )
        if self.lists and self.group_rows:
            raise IndexParamsError("give lists (k-means) or group_rows (runs of rows), not both")

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.storage != "pca-int8":  # today's kinds keep today's manifest
            for name in _COMPRESSED_FIELDS:
                d.pop(name)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> IndexParams:
        return cls(**data)


STORAGES = ("hnswlib", "float16", "pca-int8")
_COMPRESSED_FIELDS = ("pca_dims", "lists", "group_rows", "probe", "refine")


def merge_topk(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` of several searches' (Q, *) ids and scores, best first."""
    return topk(scores, k, None, ids)


def topk(scores: np.ndarray, k: int, ids: np.ndarray | None, id_table=None):
    """The best ``k`` columns of (Q, N) ``scores``, best first, as (ids, scores): the ids are
    ``ids[column]`` (or the columns), or ``id_table[q, column]`` when that table is given."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else None
    if part is None:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    top = np.take_along_axis(scores, part, 1)
    order = np.argsort(-top, axis=1, kind="stable")
    cols = np.take_along_axis(part, order, 1)
    out_scores = np.take_along_axis(scores, cols, 1).astype(np.float32)
    if id_table is not None:
        return np.take_along_axis(id_table, cols, 1).astype(np.int64), out_scores
    return (cols if ids is None else ids[cols]).astype(np.int64), out_scores
