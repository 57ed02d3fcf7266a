"""Geo-sharded indexes: one hnswlib file per geographic cell, so a device loads only the cells
near its prior instead of the whole country.

Tiles are grouped by the tile table's ``cell`` (a ``cell_deg`` lat/lon grid, see
:mod:`d4g_edge.build.tiles.base`); rows of ``tiles.npz`` are sorted by cell and each cell's rows
``[start, stop)`` have their own index ``cells/<cell>.bin``. :class:`CellIndex` searches the
loaded cells and merges their top-k, with the same interface as
:class:`~d4g_edge.index.EmbeddingIndex`; row ids stay global.

Usage::

    b = Bundle.load("country", region=(lat, lon, 2000))   # only cells with tiles within 2 km
    ids, scores = b.index.search(z, k=5)                    # rows of b.tiles
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d4g_edge.errors import SearchError
from d4g_edge.index import EmbeddingIndex, IndexParams, merge_topk
from d4g_edge.index_params import query_rows
from d4g_edge.tiletable import TileTable

CELLS_DIR = "cells"


def write_cells(
    root: Path, vectors: np.ndarray, tiles: TileTable, params: IndexParams, threads: int = -1
) -> tuple[TileTable, dict[str, list[int]]]:
    """Sort rows by cell, write one index per cell under ``root/cells``; (sorted tiles, ranges)."""
    order = np.argsort(tiles.cell, kind="stable")
    tiles, vectors = tiles.take(order), vectors[order]
    keys, starts = np.unique(tiles.cell, return_index=True)
    stops = np.append(starts[1:], len(tiles))
    (root / CELLS_DIR).mkdir()
    ranges = {}
    for key, start, stop in zip(keys, starts, stops, strict=True):
        EmbeddingIndex.build(vectors[start:stop], params, threads).save(
            root / CELLS_DIR / f"{key}.bin"
        )
        ranges[str(key)] = [int(start), int(stop)]
    return tiles, ranges


def cells_near(tiles: TileTable, cells: dict, region) -> list[str]:
    """Keys of the cells holding a tile within ``region`` (lat, lon, radius_m); all if None."""
    if region is None:
        return sorted(cells)
    lat, lon, radius = (float(v) for v in region)
    rows = tiles.within(lat, lon, radius)
    if rows.size == 0:
        raise SearchError(f"no tile of this bundle lies within {radius:.0f} m of ({lat}, {lon})")
    return sorted({str(c) for c in np.unique(tiles.cell[rows])})


class CellIndex:
    """The loaded cells' indexes behind the :class:`EmbeddingIndex` search interface."""

    def __init__(
        self,
        parts: list[tuple[EmbeddingIndex, int]],
        count: int,
        params: IndexParams,
        keys: tuple[str, ...] = (),
    ):
        self.parts, self.count, self.params, self.keys = parts, int(count), params, tuple(keys)
        self.dim = parts[0][0].dim
        self.loaded = np.zeros(self.count, dtype=bool)
        for idx, start in parts:
            self.loaded[start : start + idx.count] = True
            if getattr(idx, "int8", None) is not None:
                # one onnxruntime session per cell (~2 MB each beyond its codes) would make
                # RSS grow with the cells loaded: a cell's small scan keeps numpy's cast
                idx.int8 = None

    @classmethod
    def load(cls, root: Path, keys, cells: dict, count: int, dim: int, params: IndexParams):
        parts = []
        for key in keys:
            start, stop = cells[key]
            path = root / CELLS_DIR / f"{key}.bin"
            parts.append((EmbeddingIndex.load(path, dim, stop - start, params), start))
        return cls(parts, count, params, tuple(keys))

    @property
    def exact(self) -> bool:
        return all(idx.exact for idx, _ in self.parts)

    def loaded_ids(self) -> np.ndarray:
        return np.flatnonzero(self.loaded)

    def memory_bytes(self) -> int:
        return sum(idx.memory_bytes() for idx, _ in self.parts)

    def get_vectors(self, ids) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        out = np.empty((len(ids), self.dim), np.float32)
        for idx, start in self.parts:
            m = (ids >= start) & (ids < start + idx.count)
            if m.any():
                out[m] = idx.get_vectors(ids[m] - start)
        return out

    def _each(self, method: str, q, k, candidates=None):
        if candidates is not None:
            candidates = np.asarray(candidates, np.int64)
            candidates = candidates[self.loaded[candidates]]
            if candidates.size == 0:
                raise SearchError(
                    "the prior lies outside the cells loaded from this bundle; load it with "
                    "region= covering the prior (or without region to load every cell)"
                )
        got_ids, got_scores = [], []
        for idx, start in self.parts:
            kw = {}
            if candidates is not None:
                local = candidates[(candidates >= start) & (candidates < start + idx.count)]
                if local.size == 0:
                    continue
                kw["candidates"] = local - start
            ids, scores = getattr(idx, method)(q, k, **kw)
            got_ids.append(ids + start)
            got_scores.append(scores)
        return merge_topk(np.concatenate(got_ids, 1), np.concatenate(got_scores, 1), k)

    def search(self, queries, k: int = 5, candidates=None):
        q = query_rows(queries, self.dim)
        return self._each("search", q, k, candidates)

    def search_exact(self, queries, k: int = 1):
        return self._each("search_exact", np.atleast_2d(queries).astype(np.float32), k)
