"""The index kinds ``benchmarks.bench_map`` compares: the SDK's own and the field's libraries.

Each kind builds its files from unit rows into a folder, opens them (memory-mapped where the
library can), and answers one query at a time on one thread. Cosine = inner product of unit
vectors everywhere. hnswlib is the SDK's current library; faiss-cpu and usearch are measured
as candidates (``pip install faiss-cpu usearch``); a kind whose library is missing is skipped.

Usage::

    from benchmarks._map_kinds import KINDS
    k = KINDS["pca-int8 ivf"]; k.build(rows, folder); s = k.open(folder, dim)
    ids, scores = k.search(s, query[None], 10)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge.index import EmbeddingIndex, IndexParams


@dataclass(frozen=True)
class Kind:
    name: str
    library: str
    what: str
    build: Callable[[np.ndarray, Path], None]
    open: Callable[[Path, int, int], Any]  # (folder, dim, count) -> searcher
    search: Callable[[Any, np.ndarray, int], tuple[np.ndarray, np.ndarray]]
    needs: tuple[str, ...] = field(default=())  # modules that must import


# ---- the SDK's kinds (d4g_edge.index) ---------------------------------------------------


def _sdk(params: IndexParams, what: str, name: str) -> Kind:
    def fit(dim: int) -> IndexParams:  # fewer components than 64 only for tiny test rows
        if params.storage == "pca-bits":  # allocates its components by row_bytes
            return params
        return replace(params, pca_dims=min(params.pca_dims, dim))

    def build(rows, folder):
        EmbeddingIndex.build(rows, fit(rows.shape[1]), threads=-1).save(folder / "index.bin")

    def open_(folder, dim, count):
        return EmbeddingIndex.load(folder / "index.bin", dim, count, fit(dim))

    def search(index, q, k):
        return index.search(q, k=k)

    lib = "hnswlib" if params.storage == "hnswlib" else "d4g_edge (numpy)"
    return Kind(name, lib, what, build, open_, search, ("hnswlib",) if "hnsw" in lib else ())


def _exact_f32() -> Kind:
    def build(rows, folder):
        np.save(folder / "rows.npy", np.ascontiguousarray(rows, np.float32))

    def open_(folder, dim, count):
        return np.load(folder / "rows.npy", mmap_mode="r")

    def search(rows, q, k):
        s = q @ rows.T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, 1), axis=1)
        ids = np.take_along_axis(top, order, 1)
        return ids, np.take_along_axis(s, ids, 1)

    return Kind("exact float32", "numpy", "brute force, the reference", build, open_, search)


# ---- faiss-cpu ----------------------------------------------------------------------------


def _faiss(factory: str, nprobe: int | None, ef: int | None, name: str, what: str) -> Kind:
    def build(rows, folder):
        import faiss

        lists = max(1, round(4 * math.sqrt(len(rows))))
        spec = factory.format(lists=lists)
        index = faiss.index_factory(rows.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        train = rows[np.sort(rng.choice(len(rows), min(len(rows), max(64 * lists, 65_536)), False))]
        index.train(np.ascontiguousarray(train, np.float32))
        for s in range(0, len(rows), 100_000):
            index.add(np.ascontiguousarray(rows[s : s + 100_000], np.float32))
        faiss.write_index(index, str(folder / "index.faiss"))

    def open_(folder, dim, count):
        import faiss

        faiss.omp_set_num_threads(1)
        try:  # memory-mapped where faiss can (IVF lists, flat codes)
            index = faiss.read_index(str(folder / "index.faiss"), faiss.IO_FLAG_MMAP)
        except RuntimeError:
            index = faiss.read_index(str(folder / "index.faiss"))
        if nprobe is not None:
            faiss.extract_index_ivf(index).nprobe = nprobe
        if ef is not None:
            faiss.downcast_index(index).hnsw.efSearch = ef
        return index

    def search(index, q, k):
        scores, ids = index.search(np.ascontiguousarray(q, np.float32), k)
        return ids.astype(np.int64), scores

    return Kind(name, "faiss-cpu", what, build, open_, search, ("faiss",))


# ---- usearch ------------------------------------------------------------------------------


def _usearch(dtype: str, connectivity: int, ef: int, name: str, what: str) -> Kind:
    def build(rows, folder):
        from usearch.index import Index

        index = Index(
            ndim=rows.shape[1],
            metric="ip",
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=128,
            expansion_search=ef,
        )
        for s in range(0, len(rows), 100_000):
            chunk = np.ascontiguousarray(rows[s : s + 100_000], np.float32)
            index.add(np.arange(s, s + len(chunk)), chunk)
        index.save(str(folder / "index.usearch"))

    def open_(folder, dim, count):
        from usearch.index import Index

        index = Index.restore(str(folder / "index.usearch"), view=True)  # memory-mapped
        index.expansion_search = ef
        return index

    def search(index, q, k):
        m = index.search(np.ascontiguousarray(q, np.float32), k, threads=1)
        keys = np.atleast_2d(np.asarray(m.keys, np.int64))
        dist = np.atleast_2d(np.asarray(m.distances, np.float32))
        return keys, 1.0 - dist  # "ip" distance is 1 - dot

    return Kind(name, "usearch", what, build, open_, search, ("usearch",))


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        _exact_f32(),
        _sdk(IndexParams(storage="float16"), "float16 rows, exact", "float16"),
        _sdk(
            IndexParams(M=16, ef_construction=100, ef=64, exact_threshold=0),
            "float32 HNSW, M 16, ef 64",
            "hnswlib M16",
        ),
        _sdk(
            IndexParams(storage="pca-int8", pca_dims=64, lists=1),
            "PCA 64 x int8, every code scanned",
            "pca-int8 flat",
        ),
        *(
            _sdk(
                IndexParams(storage="pca-int8", pca_dims=d, lists=1),
                f"PCA {d} x int8, every code scanned",
                f"pca-int8 flat d{d}",
            )
            for d in (16, 32, 48, 96)
        ),
        _sdk(
            IndexParams(storage="pca-int8", pca_dims=64, group_rows=25, probe=32),
            "PCA 64 x int8, tile means first, 32 tiles' rows",
            "pca-int8 tiles",
        ),
        _sdk(
            IndexParams(storage="pca-int8", pca_dims=64, probe=16),
            "PCA 64 x int8, 4 sqrt(N) k-means lists, probe 16",
            "pca-int8 ivf",
        ),
        _sdk(
            IndexParams(storage="pca-int8", pca_dims=64, probe=16, refine=64),
            "as ivf + float16 store, best 64 re-ranked exactly",
            "pca-int8 ivf+refine",
        ),
        *(
            _sdk(
                IndexParams(storage="pca-bits", row_bytes=72, lists=lists, probe=probe),
                f"residuals of {what}, bits per component in 72 B a row",
                f"pca-bits {name}",
            )
            for name, lists, probe, what in (
                ("flat", 1, 16, "one list, every code scanned"),
                ("ivf", 0, 16, "4 sqrt(N) k-means lists, probe 16"),
                ("ivf p32", 0, 32, "4 sqrt(N) k-means lists, probe 32"),
                ("ivf p64", 0, 64, "4 sqrt(N) k-means lists, probe 64"),
            )
        ),
        _sdk(  # the rounding before anisotropic codes (aniso_cos 0)
            IndexParams(storage="pca-bits", row_bytes=72, probe=16, aniso_cos=0.0),
            "as pca-bits ivf, codes by nearest rounding",
            "pca-bits ivf nearest",
        ),
        _faiss(
            "OPQ32,IVF{lists},PQ32",
            16,
            None,
            "faiss OPQ32-IVF-PQ32",
            "OPQ rotation, 4 sqrt(N) lists, 32 x 8-bit PQ, nprobe 16",
        ),
        _faiss(
            "PCA64,IVF{lists},SQ8",
            16,
            None,
            "faiss PCA64-IVF-SQ8",
            "PCA 64, 4 sqrt(N) lists, int8, nprobe 16",
        ),
        _faiss("PQ64", None, None, "faiss PQ64", "64 x 8-bit PQ, every code scanned (64 B a row)"),
        _faiss("HNSW32,SQ8", None, 64, "faiss HNSW32-SQ8", "HNSW M 32 over int8 rows, ef 64"),
        _usearch("i8", 16, 64, "usearch HNSW i8", "HNSW M 16 over int8 rows, ef 64, mmap view"),
        _usearch("f16", 16, 64, "usearch HNSW f16", "HNSW M 16 over f16 rows, ef 64, mmap view"),
    )
}
