"""A compressed, memory-mapped index: a PCA rotation + int8 codes, searched coarse to fine.

``IndexParams(storage="pca-int8")``. Learned on the bundle's own rows at build time:

* a PCA rotation keeps the leading ``pca_dims`` components;
* each component is quantized to int8 with its own scale (symmetric, at the largest
  magnitude in the rows), so a row costs ``pca_dims`` bytes instead of 1,024 (float16);
* coarse to fine, for large maps: the rows are split into ``lists`` by k-means (an inverted
  file, IVF); a search scores the list centroids first and then only the rows of the best
  ``probe`` lists. ``group_rows=G`` makes the lists runs of G consecutive rows instead (a
  bundle writes a tile's polar centres as consecutive rows: one list per tile). Without
  lists every code is scanned;
* exact re-rank (``refine`` > 0): the rows are also stored as float16 and the best
  ``refine`` candidates of the codes are re-scored with them (1 KB a row on disk; only the
  rows read become resident).

A row's score is the query's dot product with its reconstruction ``mean + basis @ (scale *
code)``, i.e. ``q . mean + code . (scale * basis^T q)``: one float32 x int8 dot per row.

The file (``index.bin``) is :mod:`d4g_edge._mmfile`'s, opened as memory maps: milliseconds
at any size, nothing copied to float32, only the pages a search touches become resident.

Usage::

    from d4g_edge.index import EmbeddingIndex, IndexParams
    p = IndexParams(storage="pca-int8", pca_dims=64)
    index = EmbeddingIndex.build(vectors, p)          # a CompressedIndex
    index.save("index.bin"); index = EmbeddingIndex.load("index.bin", 512, n, p)
    ids, scores = index.search(queries, k=5)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d4g_edge._mmfile import check_arrays, open_index_file, save_index_file
from d4g_edge.errors import BundleContentError, BundleError
from d4g_edge.index_params import IndexParams, candidate_rows, query_rows, topk
from d4g_edge.intscore import MAX_CODES, MAX_QUERIES, Int8Scores, cast_scores
from d4g_edge.vq import lloyd, nearest, pca, ranges, unit

FORMAT = "d4g-edge/pca-int8/1"
AUTO_LISTS_FROM = 32_768  # rows from which lists=0 (auto) builds an inverted file
_FIT_ROWS = 65_536  # rows the rotation is learned on (a seeded sample of larger maps)
_CHUNK = 65_536  # rows scored at once by full scans: bounded temporaries
ALL_SCORES_MAX = 1 << 18  # rows up to which all_scores answers (1 MB of scores a query)


@dataclass(frozen=True)
class Codec:
    """The learned transform: ``code = round(((x - mean) @ basis) / scale)`` in int8; with
    ``unit_rows``, ``round((unit(x @ basis) - mean @ basis) / scale)``, ``mean`` then the
    rows' mean unit projection (in the basis' span). Either way a row's score is ``q . mean
    + code . (scale * basis^T q)``: with unit rows, ``(basis^T q) . unit(basis^T x)``."""

    mean: np.ndarray  # (D,) float32
    basis: np.ndarray  # (D, r) float32, orthonormal columns, by decreasing variance
    scale: np.ndarray  # (r,) float32
    unit_rows: bool = False  # how rows are encoded (a search reads the codes either way)

    @classmethod
    def fit(cls, sample: np.ndarray, dims: int, seed: int = 0, unit_rows: bool = False) -> Codec:
        """PCA of (a seeded subsample of) ``sample`` rows (any array: only the subsample is
        read, so a memory map larger than memory fits); int8 scales from the subsample."""
        if len(sample) > _FIT_ROWS:  # row-wise scaling: sampling first gives the same rows
            rows = np.random.default_rng(seed).choice(len(sample), _FIT_ROWS, replace=False)
            sample = sample[np.sort(rows)]
        x = unit(sample)
        if not 1 <= dims <= x.shape[1]:
            raise BundleError(f"pca_dims must be in 1..{x.shape[1]} (the embedding), got {dims}")
        mean = x.mean(0, dtype=np.float64)
        xc = (x - mean).astype(np.float32)
        _, basis = pca(xc, dims)
        y = xc @ basis
        if unit_rows:  # the row's own projection at unit length, coded around its mean
            u = unit(x @ basis)
            centre = u.mean(0)
            y, mean = u - centre, basis @ centre  # a mean in the span: project() subtracts it
        scale = np.maximum(np.abs(y).max(0), 1e-12) / 127.0
        return cls(mean.astype(np.float32), basis, scale.astype(np.float32), unit_rows)

    @property
    def dims(self) -> int:
        return self.basis.shape[1]

    def project(self, x: np.ndarray) -> np.ndarray:
        return (unit(x) - self.mean) @ self.basis

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, D) rows -> (n, r) int8 codes (rows outside the fitted range are clipped)."""
        if self.unit_rows:  # unit(x @ basis) - mean @ basis: the stored mean is in the span
            y = unit(unit(x) @ self.basis) - self.mean @ self.basis
        else:
            y = self.project(x)
        return np.clip(np.rint(y / self.scale), -127, 127).astype(np.int8)

    def decode(self, codes) -> np.ndarray:
        """int8 codes -> float32 PCA coordinates."""
        return np.asarray(codes, np.float32) * self.scale


class CompressedIndex:
    """The ``pca-int8`` index behind the :class:`~d4g_edge.index.EmbeddingIndex` interface.

    ``codes`` are stored list by list; ``ids[p]`` is the row (tile table row) of stored
    position ``p`` (None: positions are rows); ``offsets`` bound the lists.
    """

    hnsw = None  # no graph

    INT8_CODES = True  # codes onnxruntime's int8 product can score (not pca-bits' planes)

    def __init__(self, params, codec, codes, centroids, offsets, ids=None, refine=None) -> None:
        self.params, self.codec = params, codec
        self.codes, self.centroids, self.offsets = codes, centroids, offsets
        self.ids, self.refine = ids, refine
        self.count, self.dim = int(codes.shape[0]), int(codec.mean.shape[0])
        self._positions: np.ndarray | None = None  # row -> stored position, on first use
        # every code of a small map by onnxruntime's int8 product (d4g_edge.intscore); None:
        # the cast (a cell of a sharded bundle: a session each would be ~2 MB a cell)
        small = self.INT8_CODES and 0 < codes.size <= MAX_CODES
        self.int8 = Int8Scores(codes) if small else None

    # ---- build / save / load ------------------------------------------------------------

    @classmethod
    def build(cls, vectors, params: IndexParams) -> CompressedIndex:
        """The index of (N, D) ``vectors``, any array (a float16 memory map too) read
        ``_CHUNK`` rows at a time: 10^7 x 512 float32 rows would be 20 GB at once."""
        if not hasattr(vectors, "shape"):
            vectors = np.asarray(vectors, np.float32)
        n = vectors.shape[0] if len(vectors.shape) == 2 else 0
        chunks = [slice(s, s + _CHUNK) for s in range(0, n, _CHUNK)]
        if not n or not all(np.isfinite(vectors[c]).all() for c in chunks):
            raise BundleError(
                f"need a non-empty finite (N, D) embedding array, got {vectors.shape}"
            )
        codec = Codec.fit(vectors, params.pca_dims, unit_rows=params.unit_rows)
        codes = np.concatenate([codec.encode(vectors[c]) for c in chunks])
        refine = None
        if params.refine:
            refine = np.concatenate([unit(vectors[c]).astype(np.float16) for c in chunks])
        return cls.from_codes(params, codec, codes, refine)

    @classmethod
    def from_codes(cls, params: IndexParams, codec: Codec, codes, refine=None) -> CompressedIndex:
        """An index of precomputed row ``codes`` (e.g. encoded chunk by chunk, for maps too
        large for memory as float32): the coarse lists are made here."""
        n = len(codes)
        if params.group_rows:
            offsets = np.append(np.arange(0, n, params.group_rows), n).astype(np.int64)
            cents = np.stack(
                [codec.decode(codes[a:b]).mean(0) for a, b in itertools.pairwise(offsets)]
            )
            return cls(params, codec, codes, cents.astype(np.float32), offsets, None, refine)
        lists = auto_lists(params, n)
        if lists <= 1:
            offsets = np.array([0, n], np.int64)
            cents = codec.decode(codes[:1]) * 0
            return cls(params, codec, codes, cents, offsets, None, refine)
        cents = kmeans(codec, codes, min(lists, n))
        assign = np.concatenate(
            [nearest(codec.decode(codes[s : s + _CHUNK]), cents) for s in range(0, n, _CHUNK)]
        )
        order = np.argsort(assign, kind="stable").astype(np.int32)
        offsets = np.searchsorted(assign[order], np.arange(len(cents) + 1)).astype(np.int64)
        return cls(params, codec, codes[order], cents, offsets, order, refine)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = {
            "mean": self.codec.mean,
            "basis": self.codec.basis,
            "scale": self.codec.scale,
            "codes": self.codes,
            "centroids": self.centroids,
            "offsets": self.offsets,
        }
        if self.ids is not None:
            arrays["ids"] = self.ids
        if self.refine is not None:
            arrays["refine"] = self.refine
        return save_index_file(path, arrays, FORMAT, _file_params(self.params))

    @classmethod
    def load(cls, path: str | Path, dim: int, count: int, params: IndexParams) -> CompressedIndex:
        arrays = open_index_file(path, FORMAT, _file_params(params))
        r, n = params.pca_dims, int(count)
        lists = len(arrays["offsets"]) - 1 if "offsets" in arrays else -1
        want = {
            "mean": ((int(dim),), np.float32),
            "basis": ((int(dim), r), np.float32),
            "scale": ((r,), np.float32),
            "codes": ((n, r), np.int8),
            "centroids": ((max(lists, 1), r), np.float32),
            "offsets": ((lists + 1,), np.int64),
        }
        if "ids" in arrays:
            want["ids"] = ((n,), np.int32)
        if params.refine:
            want["refine"] = ((n, int(dim)), np.float16)
        check_arrays(path, arrays, want)
        small = {k: np.array(arrays[k]) for k in ("mean", "basis", "scale", "offsets")}
        if not all(np.isfinite(small[k]).all() for k in ("mean", "basis", "scale")):
            raise BundleContentError(f"{path}: the PCA rotation holds NaN/inf; rebuild the bundle")
        off = small["offsets"]
        if off[0] != 0 or off[-1] != n or (np.diff(off) < 0).any():
            raise BundleContentError(f"{path}: list offsets do not cover {n} rows; rebuild")
        codec = Codec(small["mean"], small["basis"], small["scale"], params.unit_rows)
        return cls(
            params,
            codec,
            arrays["codes"],
            np.array(arrays["centroids"]),
            off,
            arrays.get("ids"),
            arrays.get("refine"),
        )

    # ---- the EmbeddingIndex interface ---------------------------------------------------

    @property
    def exact(self) -> bool:
        return False

    @property
    def lists(self) -> int:
        return len(self.offsets) - 1

    @property
    def _flat(self) -> bool:
        """Whether a search scans every code (no lists, or no more than it probes)."""
        return self.lists <= 1 or self.lists <= self.params.probe

    def loaded_ids(self) -> np.ndarray:
        return np.arange(self.count)

    def memory_bytes(self) -> int:
        """Bytes a search can touch: codes, ids, centroids, rotation (+ the refine store, of
        which only re-ranked rows are read)."""
        arrays = [self.codes, self.centroids, self.offsets, self.codec.basis, self.codec.mean]
        arrays += [a for a in (self.ids, self.refine) if a is not None]
        packed = self.int8.nbytes if self.int8 is not None else 0  # its copy, once made
        return int(sum(a.nbytes for a in arrays)) + packed

    def get_vectors(self, ids) -> np.ndarray:
        """Unit vectors of rows ``ids``: the float16 store, else the reconstruction."""
        ids = np.asarray(ids, np.int64)
        if self.refine is not None:
            return np.asarray(self.refine[ids], np.float32)
        y = self.codec.decode(self.codes[self._position(ids)])
        return unit(self.codec.mean + y @ self.codec.basis.T)

    def search(self, queries, k: int = 5, candidates=None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` row ids and scores per query, best first (fewer if fewer rows)."""
        q = self._queries(queries)
        k = max(1, min(int(k), self.count))
        if candidates is not None:
            return self._scan_candidates(q, k, candidates)
        if self._flat:
            return self._scan(q, k, None)
        u = q @ self.codec.basis
        order = np.argsort(-(u @ self.centroids.T), axis=1)
        sizes = np.diff(self.offsets)
        out = []
        for i in range(len(q)):
            # the best lists, at least `probe` of them and at least k rows
            n_lists = max(
                self.params.probe, int(np.searchsorted(np.cumsum(sizes[order[i]]), k)) + 1
            )
            best = order[i, :n_lists]
            pos = ranges(self.offsets[best], sizes[best])
            scores = self.codec.decode(self.codes[pos]) @ u[i]
            out.append(self._finish(q[i : i + 1], k, pos[None], scores[None]))
        return np.concatenate([i for i, _ in out]), np.concatenate([s for _, s in out])

    def all_scores(self, queries) -> np.ndarray | None:
        """(Q, count) scores of every row, in row order, exactly as :meth:`search` scores them,
        when it scans every code and re-ranks none, for maps of at most ``ALL_SCORES_MAX``
        rows; else None. A caller that keeps one row per group (a tile's best centre) selects
        among these instead of asking :meth:`search` for k x the group size rows."""
        if not self._flat or self.refine is not None or self.count > ALL_SCORES_MAX:
            return None
        q = self._queries(queries)
        s = self._every_code((q @ self.codec.basis) * self.codec.scale)
        s += (q @ self.codec.mean)[:, None]
        if self.ids is None:
            return s
        out = np.empty_like(s)
        out[:, np.asarray(self.ids)] = s
        return out

    def search_exact(self, queries, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Every code scored (no coarse step): the reference a coarse search is measured on."""
        return self._scan(self._queries(queries), max(1, min(int(k), self.count)), None)

    # ---- internals ------------------------------------------------------------------------

    def _queries(self, queries) -> np.ndarray:
        return query_rows(queries, self.dim)

    def _scan_candidates(self, q, k, candidates) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` of the ``candidates`` rows only (a prior's), every code scored."""
        rows = candidate_rows(candidates)
        return self._scan(q, min(k, rows.size), self._position(rows))

    def _position(self, rows: np.ndarray) -> np.ndarray:
        """Stored positions of tile-table ``rows``."""
        if self.ids is None:
            return rows
        if self._positions is None:
            self._positions = np.empty(self.count, np.int64)
            self._positions[np.asarray(self.ids)] = np.arange(self.count)
        return self._positions[rows]

    def _scan(self, q, k, positions) -> tuple[np.ndarray, np.ndarray]:
        """Score the codes at ``positions`` (all when None) chunk by chunk."""
        w = (q @ self.codec.basis) * self.codec.scale
        n = self.count if positions is None else len(positions)
        keep = min(n, max(k, self.params.refine))
        best_pos, best_scores = [], []
        for s in range(0, n, _CHUNK):
            if positions is None:
                pos, block = np.arange(s, min(s + _CHUNK, n)), self.codes[s : s + _CHUNK]
            else:
                pos = positions[s : s + _CHUNK]
                block = self.codes[pos]
            whole = positions is None and n <= _CHUNK
            i, sc = topk(self._every_code(w) if whole else cast_scores(w, block), keep, pos)
            best_pos.append(i)
            best_scores.append(sc)
        if len(best_pos) == 1:  # one chunk (small maps, the localize path): already the best
            return self._finish(q, k, best_pos[0], best_scores[0], ranked=True)
        pos, scores = topk(np.concatenate(best_scores, 1), keep, None, np.concatenate(best_pos, 1))
        return self._finish(q, k, pos, scores, ranked=True)

    def _every_code(self, w: np.ndarray) -> np.ndarray:
        """``w @ codes.T``: up to 16 queries on a small map by onnxruntime's int8 product
        (the default's codes, one thread: 0.07 against 0.13 ms for one query), else cast."""
        if self.int8 is not None and len(w) <= MAX_QUERIES and np.isfinite(w).all():
            return self.int8(w)
        return cast_scores(w, self.codes)

    def _finish(self, q, k, pos, scores, ranked=False) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` of the scored stored positions as rows: re-ranked exactly when there is a
        refine store, else the codes' scores plus the constant ``q . mean`` (~ cosines).
        ``ranked``: ``pos``/``scores`` are already the best, best first."""
        if self.refine is None:
            p, s = (pos[:, :k], scores[:, :k]) if ranked else topk(scores, k, None, pos)
            return self._rows(p), s + (q @ self.codec.mean)[:, None]
        keep = min(pos.shape[1], max(k, self.params.refine))
        cand = self._rows(topk(scores, keep, None, pos)[0])
        vecs = np.asarray(self.refine[cand.ravel()], np.float32).reshape(*cand.shape, -1)
        return topk(np.einsum("qnd,qd->qn", vecs, q), k, None, cand)

    def _rows(self, pos: np.ndarray) -> np.ndarray:
        return (
            pos
            if self.ids is None
            else np.asarray(self.ids[pos.ravel()], np.int64).reshape(pos.shape)
        )


def kmeans(codec: Codec, codes, lists: int, iters: int = 8, seed: int = 0) -> np.ndarray:
    """(lists, r) float32 centroids of the decoded codes (:func:`lloyd` on a seeded sample
    of 32 rows per list)."""
    rng = np.random.default_rng(seed)
    n = len(codes)
    take = np.sort(rng.choice(n, min(n, 32 * lists), replace=False))
    return lloyd(codec.decode(codes[take]), lists, rng, iters).astype(np.float32)


def auto_lists(params: IndexParams, n: int) -> int:
    """Coarse lists of ``n`` rows: ``params.lists``, else 4 sqrt(n) from 32,768 rows, else 0."""
    return params.lists or (round(4 * float(np.sqrt(n))) if n >= AUTO_LISTS_FROM else 0)


def _file_params(p: IndexParams) -> dict:
    """The parameters that shape the file (a manifest must agree with them)."""
    return {
        "pca_dims": p.pca_dims,
        "lists": p.lists,
        "group_rows": p.group_rows,
        "refine": bool(p.refine),
    } | ({"unit_rows": True} if p.unit_rows else {})  # a plain file keeps the header it had
