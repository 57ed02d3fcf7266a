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

from d4g_edge.errors import IndexParamsError, SearchError

__all__ = ["STORAGES", "IndexParams", "merge_topk", "topk"]


@dataclass(frozen=True)
class IndexParams:
    """hnswlib graph parameters and the size below which search is exact."""

    M: int = 32  # graph degree: recall up, memory up
    ef_construction: int = 200
    ef: int = 128  # search beam; >= k; recall up, latency up
    exact_threshold: int = 20_000
    space: str = "cosine"
    # "hnswlib", "float16" (no graph, exact search; see the module doc), "pca-int8" (a PCA
    # rotation + int8 codes, memory-mapped, coarse to fine: d4g_edge.compressed) or
    # "pca-bits" (residuals of coarse lists, bits allocated per component: d4g_edge.bitindex)
    storage: str = "hnswlib"
    # pca-int8 and pca-bits (absent from the manifests of the other kinds):
    pca_dims: int = 64  # pca-int8 only: components kept = bytes per row
    lists: int = 0  # coarse k-means lists; 1: none (a flat scan); 0: auto (1 below 32,768 rows)
    group_rows: int = 0  # > 0: the coarse lists are runs of this many rows (a tile's centres)
    probe: int = 16  # lists whose rows are scored with their codes
    refine: int = 0  # pca-int8 only, > 0: also store float16 rows, re-rank this many exactly
    row_bytes: int = 72  # pca-bits only: code bytes per row (the bits are allocated to fit)
    # pca-int8 only: each row's projection scaled to unit length before its codes (cosines in
    # the kept components; docs/map_scale.md): 62.0 % R@1 at 32 components against 57.5 %
    # for the plain projection. Manifests without the field are the plain kind (read False)
    unit_rows: bool = True
    # pca-bits only: anisotropic rounding of the codes for queries at this cosine to their
    # best row (codes.BitCodec.quantize_along; 0: nearest rounding, as manifests without the
    # field were built): 0.972 recall@1 against 0.964 on the real 10 km² map, 72 B a row
    aniso_cos: float = 0.9

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
        if not isinstance(self.unit_rows, bool | np.bool_):
            raise IndexParamsError(
                f"index parameter unit_rows must be true or false, got {self.unit_rows!r}"
            )
        if not 0.0 <= float(self.aniso_cos) < 1.0:
            raise IndexParamsError(
                f"index parameter aniso_cos must be in [0, 1) (0: nearest rounding), got "
                f"{self.aniso_cos}"
            )
        if self.lists and self.group_rows:
            raise IndexParamsError("give lists (k-means) or group_rows (runs of rows), not both")
        if not 1 <= int(self.row_bytes) <= MAX_ROW_BYTES:
            raise IndexParamsError(
                f"index parameter row_bytes must be in 1..{MAX_ROW_BYTES}, got {self.row_bytes}"
            )
        if self.storage == "pca-bits" and (self.refine or self.pca_dims != 64):
            raise IndexParamsError(
                "pca-bits allocates its components by row_bytes and keeps no float16 store: "
                f"leave pca_dims (64) and refine (0), got {self.pca_dims} and {self.refine}"
            )

    def to_dict(self) -> dict:
        """The manifest's ``index``: each kind names only the fields it uses (the kinds
        before pca-bits keep the manifests they had)."""
        d = asdict(self)
        for name in _COMPRESSED_FIELDS - set(_KIND_FIELDS.get(self.storage, ())):
            d.pop(name)
        if not self.unit_rows:  # the plain pca-int8 keeps the manifest it had
            d.pop("unit_rows", None)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> IndexParams:
        if data.get("storage") == "pca-int8" and "unit_rows" not in data:
            data = {**data, "unit_rows": False}  # written before unit rows existed
        if data.get("storage") == "pca-bits" and "aniso_cos" not in data:
            data = {**data, "aniso_cos": 0.0}  # written before anisotropic rounding
        return cls(**data)


STORAGES = ("hnswlib", "float16", "pca-int8", "pca-bits")
MAX_ROW_BYTES = 1024  # pca-bits: 256 components x 16 bits is 512 bytes; more only pads
_KIND_FIELDS = {
    "pca-int8": ("pca_dims", "lists", "group_rows", "probe", "refine", "unit_rows"),
    "pca-bits": ("lists", "group_rows", "probe", "row_bytes", "aniso_cos"),
}
_COMPRESSED_FIELDS = {name for fields in _KIND_FIELDS.values() for name in fields}


def query_rows(queries, dim: int) -> np.ndarray:
    """``queries`` as (Q, ``dim``) C-contiguous float32 rows, else a :class:`SearchError`
    (every index kind's search takes them so)."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if q.shape[1] != dim:
        raise SearchError(f"queries have dimension {q.shape[1]}, the index {dim}")
    return q


def candidate_rows(candidates) -> np.ndarray:
    """A prior's candidate rows, sorted and unique, else a :class:`SearchError` when none."""
    rows = np.unique(np.asarray(candidates, dtype=np.int64))
    if rows.size == 0:
        raise SearchError("no candidate tiles to search (the prior excludes them all)")
    return rows


def merge_topk(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` of several searches' (Q, *) ids and scores, best first."""
    return topk(scores, k, None, ids)


def topk(scores: np.ndarray, k: int, ids: np.ndarray | None, id_table=None):
    """The best ``k`` columns of (Q, N) ``scores``, best first, as (ids, scores): the ids are
    ``ids[column]`` (or the columns), or ``id_table[q, column]`` when that table is given."""
    k = min(k, scores.shape[1])
    part = _best_columns(scores, k) if k < scores.shape[1] else None
    if len(scores) == 1:  # one query (a localize() call): the same, by plain indexing
        row = scores[0]
        p = np.arange(len(row)) if part is None else part[0]
        cols = p[np.argsort(-row[p], kind="stable")][None]
        out_scores = row[cols].astype(np.float32)
    else:
        if part is None:
            part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        cols = np.take_along_axis(part, order, 1)
        out_scores = np.take_along_axis(scores, cols, 1).astype(np.float32)
    if id_table is not None:
        return np.take_along_axis(id_table, cols, 1).astype(np.int64), out_scores
    return (cols if ids is None else ids[cols]).astype(np.int64), out_scores


_SAMPLE = 8  # every 8th score estimates where the k-th best lies


def _best_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """The columns of each row's ``k`` best scores, in no set order (as argpartition's).

    A full selection over a bundle's 11,925 scores took 0.08-0.11 ms, half of a localize()
    search: the k-th best of every 8th score, taken with a margin, bounds the candidates
    from below, so only the ~2k scores above it are selected among (all of the best k are,
    whenever at least k scores reach the bound; else the row is selected in full)."""
    n = scores.shape[1]
    if n < 4_096 or 4 * k > n:
        return np.argpartition(-scores, k - 1, axis=1)[:, :k]
    sample = scores[:, ::_SAMPLE]
    m = sample.shape[1]
    j = min(m, 2 * (k // _SAMPLE) + 16)
    bound = np.partition(sample, m - j, axis=1)[:, m - j]
    out = np.empty((len(scores), k), np.int64)
    for i, row in enumerate(scores):
        cand = np.flatnonzero(row >= bound[i])
        if len(cand) < k:  # the sample misjudged this row (or NaN): select in full
            out[i] = np.argpartition(-row, k - 1)[:k]
        else:
            out[i] = cand[np.argpartition(-row[cand], k - 1)[:k]]
    return out
