"""The ``pca-bits`` index kind: :class:`d4g_edge.codes.BitCodec` residual codes in coarse lists.

``IndexParams(storage="pca-bits", row_bytes=72)``: the rows are split into coarse lists
(k-means on the leading components, ``4 sqrt(rows)`` from 32,768 rows, or runs of
``group_rows`` rows, or one list), each row is coded as its PCA coordinates minus its list's
centroid with :mod:`d4g_edge.codes`' per-component bit allocation, ``row_bytes`` bytes a
row. A search ranks the lists by ``u . centroid`` plus the expected best of their rows'
residual scores (from the lists' per-component residual spread), then scores the codes of
the best ``probe`` lists; a search restricted to candidate rows, or an index of at most
``probe`` lists, scans codes. The file is :mod:`d4g_edge._mmfile`'s (memory-mapped), its
shaping parameters in its header, checked against the manifest's.

Usage::

    from d4g_edge.index import EmbeddingIndex, IndexParams
    p = IndexParams(storage="pca-bits", row_bytes=72)
    index = EmbeddingIndex.build(vectors, p)        # a BitIndex
    index.save("index.bin"); index = EmbeddingIndex.load("index.bin", 512, n, p)
    ids, scores = index.search(queries, k=5)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d4g_edge._mmfile import check_arrays, open_index_file, save_index_file
from d4g_edge.codes import MAX_BITS, BitCodec, across_weights, fit_codec
from d4g_edge.compressed import CompressedIndex, auto_lists
from d4g_edge.errors import BundleContentError, BundleError
from d4g_edge.index_params import IndexParams, topk
from d4g_edge.vq import lloyd, nearest, pca, ranges, unit

FORMAT = "d4g-edge/pca-bits/1"
_FIT_ROWS = 65_536  # rows the rotation is learned on (at least 32 a list for the k-means)
_CLIP_ROWS = 8_192  # residual rows the quantizer ranges and errors are measured on
_KMEANS_DIMS = 64  # leading components the lists are clustered on
_MAX_DIMS = 256  # leading components the bits are allocated among
_CHUNK = 65_536  # rows a build reads at once
_RERANK = 256  # rows of the probed lists scored in full, at least (see _score_lists)
_SCAN = 8_192  # rows a scan unpacks at once: the float columns stay in cache (2x faster)


class BitIndex(CompressedIndex):
    """The ``pca-bits`` index behind the :class:`~d4g_edge.index.EmbeddingIndex` interface:
    :class:`~d4g_edge.compressed.CompressedIndex`'s lists, ids and restricted search, with
    :class:`BitCodec` residual codes. ``codes`` is (``row_bytes``, rows) uint8, byte planes:
    a list's rows are one contiguous run in each plane, so a search copies runs (no gather)
    and unpacks them with shifts over contiguous memory."""

    INT8_CODES = False  # byte planes of residual bits, not int8 codes: no int8 product

    def __init__(self, params, codec: BitCodec, codes, centroids, spread, offsets, ids=None):
        super().__init__(params, codec, codes, centroids, offsets, ids, None)
        self.count = int(codes.shape[1])
        # a plain view of the (memory-mapped) planes: slicing a np.memmap costs ~3 us of
        # Python per slice, and a search takes two slices of each probed list
        self._planes = np.asarray(codes)
        self.spread = spread  # (lists, r) float16: mean squared residual per component
        # small, scored each query: centroids, and how far a list's best row can reach
        # above its centroid along a query u: the expected largest of its n residual
        # scores, sqrt(u^2 . spread) sqrt(2 ln n) (the rows' residuals as Gaussians)
        self._cents = np.asarray(centroids, np.float32)
        self._spread = np.asarray(spread, np.float32)
        self._reach = np.sqrt(2 * np.log(np.maximum(np.diff(offsets), 2))).astype(np.float32)

    # ---- build / save / load ------------------------------------------------------------

    @classmethod
    def build(cls, vectors, params: IndexParams) -> BitIndex:
        """The index of (N, D) ``vectors``: any array, a float16 memory map too. Rows are
        read 65,536 at a time and converted to float32 there, so a map larger than memory
        as float32 builds (10^7 x 512 x 4 = 20 GB); only the codes are held whole."""
        if not hasattr(vectors, "shape"):
            vectors = np.asarray(vectors, np.float32)
        if len(vectors.shape) != 2 or vectors.shape[0] == 0:
            raise BundleError(f"need a non-empty (N, D) embedding array, got {vectors.shape}")
        n, dim = vectors.shape
        lists = 1 if params.group_rows else _lists(params, n)
        rng = np.random.default_rng(0)
        take = np.sort(rng.choice(n, min(n, max(_FIT_ROWS, 32 * lists)), replace=False))
        xs = unit(_rows(vectors, take))
        mean = xs.mean(0, dtype=np.float64).astype(np.float32)
        var, basis = pca(xs - mean, min(dim, _MAX_DIMS))
        fit_y = (xs - mean) @ basis
        cents = lloyd(fit_y[:, :_KMEANS_DIMS], lists, rng) if lists > 1 else None
        assign = np.empty(n, np.int64)
        sums = np.zeros((n // params.group_rows + 1 if params.group_rows else lists, len(var)))
        for s in range(0, n, _CHUNK):  # pass 1: every row's list and the lists' means
            y = (unit(_rows(vectors, slice(s, s + _CHUNK))) - mean) @ basis
            a = _assign(y, s, params.group_rows, cents)
            assign[s : s + len(y)] = a
            sums += _sum_by(a, y, len(sums))
        counts = np.bincount(assign, minlength=len(sums))[: len(sums)]
        sums, counts = sums[counts > 0], counts[counts > 0]
        if not params.group_rows:  # renumber the non-empty k-means lists
            assign = np.cumsum(np.bincount(assign, minlength=lists) > 0)[assign] - 1
        centroids = (sums / counts[:, None]).astype(np.float16)
        fit_res = fit_y - centroids[assign[take]].astype(np.float32)
        sample = rng.choice(len(take), min(len(take), _CLIP_ROWS), replace=False)
        bits, step, lo = fit_codec(fit_res[sample], var, params.row_bytes)
        keep = np.flatnonzero(bits)
        codec = BitCodec(
            mean, np.ascontiguousarray(basis[:, keep]), bits[keep], step[keep], lo[keep]
        )
        centroids = np.ascontiguousarray(centroids[:, keep])
        codes = np.empty((params.row_bytes, n), np.uint8)
        squares = np.zeros(centroids.shape)
        across = across_weights(var[keep], params.aniso_cos)
        along_mean = codec.mean @ codec.basis  # a row's own coordinates: centred + this
        for s in range(0, n, _CHUNK):  # pass 2: the residual codes and their spread
            a = assign[s : s + _CHUNK]
            y = codec.project(_rows(vectors, slice(s, s + _CHUNK)))
            along = y + along_mean
            y -= centroids[a].astype(np.float32)
            c = codec.quantize_along(y, along, across, params.aniso_cos)
            codes[:, s : s + len(y)] = codec.pack(c, params.row_bytes).T
            squares += _sum_by(a, y**2, len(squares))
        spread = (squares / counts[:, None]).astype(np.float16)
        order = np.argsort(assign, kind="stable")
        offsets = np.searchsorted(assign[order], np.arange(len(centroids) + 1)).astype(np.int64)
        if (order == np.arange(n)).all():  # runs of rows, one list: positions are rows
            return cls(params, codec, codes, centroids, spread, offsets, None)
        ids = order.astype(np.int32)
        return cls(params, codec, codes[:, order], centroids, spread, offsets, ids)

    def save(self, path: str | Path) -> Path:
        path, c = Path(path), self.codec
        arrays = {"mean": c.mean, "basis": c.basis, "bits": c.bits, "step": c.step, "lo": c.lo}
        arrays |= {"codes": self.codes, "centroids": self.centroids, "spread": self.spread}
        arrays["offsets"] = self.offsets
        if self.ids is not None:
            arrays["ids"] = self.ids
        return save_index_file(path, arrays, FORMAT, file_params(self.params))

    @classmethod
    def load(cls, path: str | Path, dim: int, count: int, params: IndexParams) -> BitIndex:
        arrays = open_index_file(path, FORMAT, file_params(params))
        bits = arrays.get("bits")
        r = len(bits) if bits is not None and bits.ndim == 1 else -1
        lists = len(arrays["offsets"]) - 1 if "offsets" in arrays else -1
        want = {
            "mean": ((int(dim),), np.float32),
            "basis": ((int(dim), r), np.float32),
            "bits": ((r,), np.uint8),
            "step": ((r,), np.float32),
            "lo": ((r,), np.float32),
            "codes": ((params.row_bytes, int(count)), np.uint8),
            "centroids": ((lists, r), np.float16),
            "spread": ((lists, r), np.float16),
            "offsets": ((lists + 1,), np.int64),
        }
        if "ids" in arrays:
            want["ids"] = ((int(count),), np.int32)
        check_arrays(path, arrays, want)
        small = {k: np.array(arrays[k]) for k in ("mean", "basis", "bits", "step", "lo")}
        codec = BitCodec(**small)
        if not all(np.isfinite(small[k]).all() for k in ("mean", "basis", "step", "lo")):
            raise BundleContentError(f"{path}: the codec holds NaN/inf; rebuild the bundle")
        if r < 1 or not ((bits >= 1) & (bits <= MAX_BITS)).all() or (small["step"] <= 0).any():
            raise BundleContentError(f"{path}: bad bit allocation or steps; rebuild the bundle")
        if codec.layout()[1] > params.row_bytes:
            raise BundleContentError(f"{path}: the bits do not fit row_bytes; rebuild")
        off = np.array(arrays["offsets"])
        if lists < 1 or off[0] != 0 or off[-1] != count or (np.diff(off) < 0).any():
            raise BundleContentError(f"{path}: list offsets do not cover {count} rows; rebuild")
        cents, spread = arrays["centroids"], arrays["spread"]
        index = cls(params, codec, arrays["codes"], cents, spread, off, arrays.get("ids"))
        c, v = index._cents, index._spread  # float32 (checks on float16 are slow)
        if not (np.isfinite(c).all() and np.isfinite(v).all() and (v >= 0).all()):
            raise BundleContentError(f"{path}: the lists hold NaN/inf (or a spread < 0); rebuild")
        return index

    # ---- the EmbeddingIndex interface ---------------------------------------------------

    def memory_bytes(self) -> int:
        """Bytes a search can touch: codes, ids, the lists' centroids and spread, rotation."""
        return super().memory_bytes() + int(self.spread.nbytes)

    def all_scores(self, queries) -> None:
        """None: a search ranks rows by their leading digits before it scores the best in
        full, so there is no array of every row's score (a bundle's search then asks for k x
        the centres per tile rows). The inherited one read pca-int8's codec and failed."""
        return None

    def get_vectors(self, ids) -> np.ndarray:
        """Unit reconstructions of rows ``ids``."""
        pos = self._position(np.asarray(ids, np.int64))
        y = self._cents[self._list_of(pos)] + self.codec.decode(self.codes[:, pos])
        return unit(self.codec.mean + y @ self.codec.basis.T)

    def search(self, queries, k: int = 5, candidates=None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` row ids and approximate cosines per query, best first."""
        q = self._queries(queries)
        k = max(1, min(int(k), self.count))
        if candidates is not None:
            return self._scan_candidates(q, k, candidates)
        if self.lists <= self.params.probe:
            return self._scan(q, k, None)
        u, base, cscore, weights = self._prepare(q)
        rank = cscore + np.sqrt((u * u) @ self._spread.T) * self._reach
        sizes = np.diff(self.offsets)
        ids, scores = [], []
        for i in range(len(q)):
            best = self._best_lists(rank[i], sizes, k)
            pos, s = self._score_lists(best, sizes, weights[i], cscore[i], k)
            p, sc = topk(s[None] + base[i], k, pos)
            ids.append(self._rows(p))
            scores.append(sc)
        return np.concatenate(ids), np.concatenate(scores)

    # ---- internals ------------------------------------------------------------------------

    def _prepare(self, q):
        """Query coordinates, the constant ``q . mean + u . lo``, centroid scores, digit
        weights."""
        u = q @ self.codec.basis
        base = q @ self.codec.mean + u @ self.codec.lo
        return u, base, u @ self._cents.T, self.codec.weights(u)

    def _score_lists(self, best, sizes, weights, cscore, k) -> tuple[np.ndarray, np.ndarray]:
        """Stored positions and scores (less ``q . mean + u . lo``) of the rows of lists
        ``best`` worth scoring in full. Two stages when there are many: the 8-bit digits
        (the leading components' 8 most significant bits, the first planes) rank the rows
        and only the best ``max(_RERANK, 2 k)`` are unpacked whole (on the modelled 1.22 M
        rows: the same recall as scoring every row, in 40 % of the time)."""
        starts, counts = self.offsets[best].tolist(), sizes[best].tolist()
        pos = ranges(self.offsets[best], sizes[best])
        const = cscore[np.repeat(best, sizes[best])]
        lead, keep = self.codec.columns[0][0][1], max(_RERANK, 2 * k)
        if len(pos) <= keep or not lead:
            runs = [self._planes[:, a : a + m] for a, m in zip(starts, counts, strict=True)]
            return pos, self.codec.score(np.concatenate(runs, axis=1), weights[None])[0] + const
        runs = [self._planes[:lead, a : a + m] for a, m in zip(starts, counts, strict=True)]
        first = weights[:lead] @ np.concatenate(runs, axis=1).astype(np.float32) + const
        sel = np.sort(np.argpartition(first, len(first) - keep)[len(first) - keep :])
        pos, const = pos[sel], const[sel]
        return pos, self.codec.score(self._planes[:, pos], weights[None])[0] + const

    def _best_lists(self, rank: np.ndarray, sizes: np.ndarray, k: int) -> np.ndarray:
        """The lists to score, best ``rank`` first: at least ``probe`` of them and at least
        ``k`` rows (a partial sort; a full one when ``probe`` lists are too few rows)."""
        probe = self.params.probe
        part = np.argpartition(-rank, probe - 1)[:probe]
        best = part[np.argsort(-rank[part], kind="stable")]
        if sizes[best].sum() >= k:
            return best
        order = np.argsort(-rank, kind="stable")
        return order[: int(np.searchsorted(np.cumsum(sizes[order]), k)) + 1]

    def _list_of(self, pos: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.offsets, pos, side="right") - 1

    def _scan(self, q, k, positions) -> tuple[np.ndarray, np.ndarray]:
        """Score the codes at ``positions`` (all when None) chunk by chunk."""
        _, base, cscore, weights = self._prepare(q)
        n = self.count if positions is None else len(positions)
        best_pos, best_scores = [], []
        for s in range(0, n, _SCAN):
            if positions is None:
                pos, block = np.arange(s, min(s + _SCAN, n)), self.codes[:, s : s + _SCAN]
            else:
                pos = positions[s : s + _SCAN]
                block = self.codes[:, pos]
            sc = self.codec.score(block, weights) + cscore[:, self._list_of(pos)] + base[:, None]
            i, sc = topk(sc, k, pos)
            best_pos.append(i)
            best_scores.append(sc)
        pos, scores = topk(np.concatenate(best_scores, 1), k, None, np.concatenate(best_pos, 1))
        return self._rows(pos), scores


def file_params(p: IndexParams) -> dict:
    """The parameters that shape the file (a manifest must agree with them); the rounding's
    cosine only where there is one (files before it have no such key)."""
    out = {"row_bytes": p.row_bytes, "lists": p.lists, "group_rows": p.group_rows}
    return out | ({"aniso_cos": p.aniso_cos} if p.aniso_cos else {})


def _lists(params: IndexParams, n: int) -> int:
    return max(1, min(auto_lists(params, n), n))


def _assign(y: np.ndarray, start: int, group_rows: int, cents) -> np.ndarray:
    """Each row's list: its run of ``group_rows``, its nearest centroid, or the one list."""
    if group_rows:
        return (start + np.arange(len(y))) // group_rows
    if cents is None:
        return np.zeros(len(y), np.int64)
    return nearest(y[:, : cents.shape[1]], cents)


def _rows(vectors, index) -> np.ndarray:
    """Rows ``index`` (a slice or sorted positions) of ``vectors`` as float32, checked."""
    x = np.asarray(vectors[index], np.float32)
    if not np.isfinite(x).all():
        raise BundleError("the embedding rows hold NaN or inf; re-embed the tiles")
    return x


def _sum_by(a: np.ndarray, y: np.ndarray, groups: int) -> np.ndarray:
    """(groups, d) float64 sums of the rows of ``y`` by their group ``a``."""
    order = np.argsort(a, kind="stable")
    a_sorted = a[order]
    starts = np.flatnonzero(np.r_[True, a_sorted[1:] != a_sorted[:-1]])
    out = np.zeros((groups, y.shape[1]))
    out[a_sorted[starts]] = np.add.reduceat(y[order].astype(np.float64), starts, axis=0)
    return out
