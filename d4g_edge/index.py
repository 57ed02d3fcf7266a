"""Nearest-neighbour search over satellite embeddings: hnswlib (cosine), exact below a size.

Embeddings are unit vectors, so cosine similarity is the dot product. Small indexes (fewer
than ``exact_threshold`` tiles) are searched exactly with numpy: for a few thousand tiles it
is as fast as HNSW and never misses. Larger ones use an hnswlib graph whose parameters ``M``,
``ef_construction`` and ``ef`` are kept in the bundle manifest, because hnswlib does not
persist ``ef``. A search restricted to a set of candidate tiles (a position prior) runs
exactly over those tiles when they are few, else through hnswlib's filter.

``storage="float16"`` keeps no graph: the unit vectors are stored as a float16 ``.npy``
array (half the bytes of hnswlib's float32 copy plus links) and every search is exact;
cosine scores move by under 1e-3.

``storage="pca-int8"`` (:mod:`d4g_edge.compressed`) keeps ``pca_dims`` principal components
of the rows as int8 codes in one memory-mapped file (64 bytes a row instead of 1,024), with
optional k-means lists searched coarse to fine and an optional float16 store for an exact
re-rank; the SDK's bundled default uses it (0.9 MB instead of 12.2 MB). ``storage="pca-bits"``
(:mod:`d4g_edge.bitindex`) codes each row in ``row_bytes`` bytes as the residual of its
coarse list with bits allocated per component (:mod:`d4g_edge.codes`).

Usage::

    from d4g_edge.index import EmbeddingIndex, IndexParams
    index = EmbeddingIndex.build(vectors, IndexParams(M=32, ef=128))
    ids, scores = index.search(queries, k=5)               # (Q, 5) each, best first
    ids, scores = index.search(queries, k=5, candidates=np.array([3, 8, 9]))
    index.save("index.bin"); EmbeddingIndex.load("index.bin", dim=512, count=n, params=p)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from d4g_edge.errors import BundleError
from d4g_edge.fileio import temp_path
from d4g_edge.index_params import (
    STORAGES,
    IndexParams,
    candidate_rows,
    merge_topk,
    query_rows,
    topk,
)

__all__ = ["STORAGES", "EmbeddingIndex", "IndexParams", "merge_topk"]


class EmbeddingIndex:
    """Unit vectors with ids ``0..count-1`` (the row of the tile table)."""

    def __init__(
        self, hnsw, params: IndexParams, dim: int, count: int, vectors: np.ndarray | None = None
    ) -> None:
        self.hnsw, self.params, self.dim, self.count = hnsw, params, int(dim), int(count)
        self.vectors: np.ndarray | None = None
        if hnsw is None:  # float16 storage: the vectors are the index
            self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            return
        self.hnsw.set_ef(max(params.ef, 2))
        if self.count < params.exact_threshold:
            self.vectors = self.hnsw.get_items(np.arange(self.count), return_type="numpy")
            self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)

    @property
    def exact(self) -> bool:
        return self.vectors is not None

    @classmethod
    def build(
        cls, vectors: np.ndarray, params: IndexParams | None = None, threads: int = -1
    ) -> EmbeddingIndex:
        params = params or IndexParams()
        if params.storage == "pca-int8":
            from d4g_edge.compressed import CompressedIndex  # imports this module

            return CompressedIndex.build(vectors, params)
        if params.storage == "pca-bits":
            from d4g_edge.bitindex import BitIndex  # imports this module's parameters

            return BitIndex.build(vectors, params)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0 or not np.isfinite(vectors).all():
            raise BundleError(
                f"need a non-empty finite (N, D) embedding array, got {vectors.shape}"
            )
        if params.storage == "float16":
            # what hnswlib's cosine space does on insert: unit vectors, so dot = cosine
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            unit = (vectors / np.maximum(norms, 1e-30)).astype(np.float16)
            return cls(None, params, vectors.shape[1], len(vectors), unit)
        import hnswlib

        hnsw = hnswlib.Index(space=params.space, dim=vectors.shape[1])
        hnsw.init_index(
            max_elements=len(vectors), M=params.M, ef_construction=params.ef_construction
        )
        hnsw.add_items(vectors, np.arange(len(vectors)), num_threads=threads)
        return cls(hnsw, params, vectors.shape[1], len(vectors))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = temp_path(path)
        try:
            if self.hnsw is None:
                with open(tmp, "wb") as f:  # a handle: np.save would append ".npy" to a name
                    np.save(f, self.vectors.astype(np.float16), allow_pickle=False)
            else:
                self.hnsw.save_index(str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path, dim: int, count: int, params: IndexParams) -> EmbeddingIndex:
        if params.storage == "pca-int8":
            from d4g_edge.compressed import CompressedIndex

            return CompressedIndex.load(path, dim, count, params)
        if params.storage == "pca-bits":
            from d4g_edge.bitindex import BitIndex

            return BitIndex.load(path, dim, count, params)
        if params.storage == "float16":
            try:
                vectors = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as err:
                raise BundleError(f"{path} is not a float16 .npy index: {err}") from None
            if vectors.dtype != np.float16 or vectors.shape != (int(count), int(dim)):
                raise BundleError(
                    f"{path} holds a {vectors.dtype} {vectors.shape} array, the manifest says "
                    f"float16 ({count}, {dim})"
                )
            return cls(None, params, dim, count, vectors)
        import hnswlib

        hnsw = hnswlib.Index(space=params.space, dim=int(dim))
        try:
            hnsw.load_index(str(path), max_elements=int(count))
        except (RuntimeError, ValueError, OSError) as err:
            raise BundleError(f"hnswlib cannot read {path}: {err}") from None
        if hnsw.get_current_count() != count:
            raise BundleError(
                f"{path} holds {hnsw.get_current_count()} vectors, the manifest says {count}"
            )
        return cls(hnsw, params, dim, count)

    def loaded_ids(self) -> np.ndarray:
        return np.arange(self.count)

    def get_vectors(self, ids) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        if self.vectors is not None:
            return self.vectors[ids]
        return self.hnsw.get_items(ids, return_type="numpy").astype(np.float32)

    def memory_bytes(self) -> int:
        """Approximate resident size: vectors + graph links (+ the exact copy if any)."""
        if self.hnsw is None:
            return self.vectors.nbytes
        per = 4 * self.dim + 4 * 2 * self.params.M + 16
        return self.count * per + (self.vectors.nbytes if self.vectors is not None else 0)

    def search(
        self, queries: np.ndarray, k: int = 5, candidates: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ids and cosine scores per query, best first (fewer if fewer tiles)."""
        q = query_rows(queries, self.dim)
        if candidates is not None:
            candidates = candidate_rows(candidates)
            if candidates.size < self.params.exact_threshold or self.hnsw is None:
                return topk(q @ self.get_vectors(candidates).T, k, candidates)
            allowed = np.zeros(self.count, dtype=bool)
            allowed[candidates] = True
            return self._hnsw(q, min(k, candidates.size), lambda i: bool(allowed[i]))
        if self.vectors is not None:
            return topk(q @ self.vectors.T, k, None)
        return self._hnsw(q, min(k, self.count), None)

    def all_scores(self, queries: np.ndarray) -> np.ndarray | None:
        """(Q, count) cosines of every vector, as an exact :meth:`search` scores them; None
        for a graph search (see :meth:`d4g_edge.compressed.CompressedIndex.all_scores`)."""
        if self.vectors is None:
            return None
        q = query_rows(queries, self.dim)
        return q @ self.vectors.T

    def search_exact(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over every vector (for recall measurements), in bounded memory."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        best_ids, best_scores = [], []
        step = 65_536
        for start in range(0, self.count, step):
            ids = np.arange(start, min(start + step, self.count))
            vecs = self.vectors[ids] if self.vectors is not None else self.hnsw.get_items(ids)
            i, s = topk(q @ np.asarray(vecs, np.float32).T, k, ids)
            best_ids.append(i)
            best_scores.append(s)
        return topk(np.concatenate(best_scores, 1), k, None, np.concatenate(best_ids, 1))

    def _hnsw(self, q, k, filt) -> tuple[np.ndarray, np.ndarray]:
        labels, dist = self.hnsw.knn_query(q, k=k, num_threads=1, filter=filt)
        return labels.astype(np.int64), (1.0 - dist).astype(np.float32)
