"""The pieces both compressed index kinds (:mod:`d4g_edge.compressed`'s ``pca-int8``,
:mod:`d4g_edge.bitindex`'s ``pca-bits``) learn and search with: a PCA rotation, Lloyd's
k-means lists and the nearest list of a row, unit rows, and the positions of a set of lists.

Usage::

    from d4g_edge.vq import lloyd, nearest, pca, unit
    var, basis = pca(unit(rows) - unit(rows).mean(0), 64)
    cents = lloyd(rows @ basis, lists=256, rng=np.random.default_rng(0))
    assign = nearest(rows @ basis, cents)
"""

from __future__ import annotations

import numpy as np


def pca(xc: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Variance and (D, r) float32 basis of the leading ``r`` principal components of the
    centred rows ``xc``, signs fixed so that the same rows always give the same file."""
    vals, vecs = np.linalg.eigh((xc.T @ xc).astype(np.float64))  # ascending eigenvalues
    basis = np.ascontiguousarray(vecs[:, ::-1][:, :r], dtype=np.float32)
    basis *= np.where(basis[np.abs(basis).argmax(0), np.arange(r)] < 0, -1, 1)
    return np.maximum(vals[::-1][:r], 0.0) / len(xc), basis


def lloyd(x: np.ndarray, lists: int, rng, iters: int = 8) -> np.ndarray:
    """(lists, d) Lloyd's k-means centroids of the rows ``x``, started at ``lists`` of them
    drawn by ``rng`` (an emptied list keeps its centroid); pca-int8 and pca-bits lists."""
    cents = x[rng.choice(len(x), lists, replace=False)].copy()
    for _ in range(iters):
        a = nearest(x, cents)
        counts = np.bincount(a, minlength=lists)
        sums = np.stack([np.bincount(a, x[:, j], lists) for j in range(x.shape[1])], 1)
        full = counts > 0
        cents[full] = sums[full] / counts[full, None]
    return cents


def nearest(x: np.ndarray, cents: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (L2) of each row, in bounded blocks."""
    c2 = (cents**2).sum(1)
    out = np.empty(len(x), np.int64)
    step = max(1, (1 << 24) // max(len(cents), 1))
    for s in range(0, len(x), step):
        out[s : s + step] = np.argmax(2 * x[s : s + step] @ cents.T - c2, axis=1)
    return out


def ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(start, start + size)`` for each pair, vectorised."""
    total = int(sizes.sum())
    shift = np.repeat(starts - np.concatenate(([0], np.cumsum(sizes)[:-1])), sizes)
    return np.arange(total) + shift


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-30)
