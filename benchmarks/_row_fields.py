"""Modelled maps drawn band by band, for :class:`benchmarks._map_data.RowModel`.

A modelled map is a square grid of polar centres, ``block`` x ``block`` per tile, whose rows
are ``mean + basis @ coef`` (normalised) with one random field per principal component.
A component's field is white noise smoothed by a separable Gaussian (wrapping at the map's
edges), so a band of grid rows only needs the noise of its own rows plus a halo of a few
rows on each side: every grid row's noise comes from its own seeded generator, so a band can
be drawn alone and any band size gives the same map bit for bit. Only one band of fields is
ever in memory (``_BAND_BYTES``): a 10^7-row map (40 GB as float32 fields and rows) is
written straight to a float16 memory map on disk in ~256 MB steps.

Usage::

    grid = Grid.for_rows(1_000_000, 25)
    draw_rows(mean, basis, std, sigma, grid, seed, out, norms)   # fills out, norms
    best, at = exact_scan(out, queries)                          # chunked exact search
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_BAND_BYTES = 256 << 20  # one band's fields (float32) at most
_SCAN_ROWS = 131_072  # rows scored at once by the exact scan


@dataclass(frozen=True)
class Grid:
    """A square map of ``tiles_side`` x ``tiles_side`` tiles of ``block`` x ``block``
    centres, rows ordered tile by tile (as a bundle writes them), row-major inside a tile."""

    block: int
    tiles_side: int

    @classmethod
    def for_rows(cls, n: int, per_tile: int) -> Grid:
        block = round(float(np.sqrt(per_tile)))
        return cls(block, max(1, round(float(np.sqrt(n / per_tile)))))

    @property
    def side(self) -> int:
        return self.tiles_side * self.block

    @property
    def count(self) -> int:
        return self.side**2

    def tile_of(self, gi: np.ndarray, gj: np.ndarray) -> np.ndarray:
        return (gi // self.block) * self.tiles_side + gj // self.block

    def row_of(self, gi: np.ndarray, gj: np.ndarray) -> np.ndarray:
        b = self.block
        return self.tile_of(gi, gj) * b * b + (gi % b) * b + gj % b


def gauss_kernel(sigma: float) -> np.ndarray:
    """scipy.ndimage's Gaussian kernel (truncated at 4 sigma, summing to 1)."""
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def kernel_rho(sigma: float) -> float:
    """Neighbour correlation of white noise smoothed by :func:`gauss_kernel` (sigma)."""
    w = gauss_kernel(sigma)
    return float((w[1:] * w[:-1]).sum() / (w * w).sum())


def sigma_for(rho: float) -> float:
    """The sigma whose discrete kernel gives neighbour correlation ``rho`` (bisection).

    The continuous formula rho = exp(-1 / (4 sigma^2)) is far off for small sigma: a field
    it gives rho 0.37 measures 0.26 on the grid, one it gives 0.05 measures 0.005."""
    lo, hi = 0.05, 64.0
    for _ in range(60):
        mid = float(np.sqrt(lo * hi))
        lo, hi = (mid, hi) if kernel_rho(mid) < rho else (lo, mid)
    return float(np.sqrt(lo * hi))


def _noise(seed: int, row: int, stream: int, count: int, side: int) -> np.ndarray:
    """Grid row ``row``'s white noise for ``count`` components (stream 0: the smoothed ones,
    1: the white ones), the same whichever band asks for it."""
    rng = np.random.default_rng((seed, row, stream))
    return rng.standard_normal((count, side), dtype=np.float32)


def draw_rows(mean, basis, std, sigma, grid: Grid, seed: int, out, norms, band_rows=None):
    """Fill ``out`` (count, D) (an array or a memory map, any float dtype) with the map's
    unit rows and ``norms`` (count,) with their norms before normalising.

    Component j's field has standard deviation ``std[j]`` and is white noise smoothed by a
    Gaussian of ``sigma[j]`` grid steps along both axes (0: white)."""
    dim, side, b = len(mean), grid.side, grid.block
    smooth, white = np.flatnonzero(sigma > 0), np.flatnonzero(sigma <= 0)
    kernels = [gauss_kernel(float(sigma[j])) for j in smooth]
    halo = max((len(w) // 2 for w in kernels), default=0)
    # the variance of white noise smoothed by w (x) w is (sum w^2)^2
    gain = np.array(
        [std[j] / (w * w).sum() for j, w in zip(smooth, kernels, strict=True)], np.float32
    )
    std_white = np.asarray(std, np.float32)[white, None]
    if band_rows is None:
        band_rows = max(1, _BAND_BYTES // (dim * side * 4 * b)) * b
    if band_rows % b:
        raise ValueError(f"band_rows must be a multiple of the tile's {b} rows, got {band_rows}")
    basis_t, mean32 = np.asarray(basis, np.float32).T.copy(), np.asarray(mean, np.float32)
    for i0 in range(0, side, band_rows):
        i1 = min(side, i0 + band_rows)
        n_rows = i1 - i0
        coef = np.empty((n_rows, dim, side), np.float32)
        for i in range(i0, i1):
            coef[i - i0, white] = _noise(seed, i, 1, len(white), side) * std_white
        if len(smooth):
            ns = np.stack(
                [_noise(seed, i % side, 0, len(smooth), side) for i in range(i0 - halo, i1 + halo)]
            )
            for k, (j, w) in enumerate(zip(smooth, kernels, strict=True)):
                r = len(w) // 2
                f = np.zeros((n_rows, side), np.float32)
                for t, wt in enumerate(w):  # along the grid's rows: the band's noise + halo
                    f += np.float32(wt) * ns[halo - r + t : halo - r + t + n_rows, k]
                f = ndimage.correlate1d(f, w, axis=1, mode="wrap")  # along a row: all of it
                coef[:, j] = f * gain[k]
        # tile-major: tile (ti, tj) holds its b x b block, row-major
        c = coef.reshape(n_rows // b, b, dim, grid.tiles_side, b).transpose(0, 3, 1, 4, 2)
        x = c.reshape(-1, dim) @ basis_t
        del coef, c
        x += mean32
        nrm = np.linalg.norm(x, axis=1)
        s0 = (i0 // b) * grid.tiles_side * b * b
        out[s0 : s0 + len(x)] = x / nrm[:, None]
        norms[s0 : s0 + len(x)] = nrm


def exact_scan(rows, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's best score and row by exact float32 search, streaming ``rows`` (an
    array or a float16 memory map) in chunks: the reference for maps too large for RAM."""
    q = np.asarray(q, np.float32)
    best = np.full(len(q), -np.inf, np.float32)
    at = np.zeros(len(q), np.int64)
    for s in range(0, len(rows), _SCAN_ROWS):
        scores = q @ np.asarray(rows[s : s + _SCAN_ROWS], np.float32).T
        j = scores.argmax(1)
        v = scores[np.arange(len(q)), j]
        better = v > best
        best[better], at[better] = v[better], j[better] + s
    return best, at


def neighbour_rho(grid: np.ndarray) -> np.ndarray:
    """(D,) neighbour correlation per component of a (rows, cols, D) grid of centred
    coefficients (NaN where no row), averaged over both axes, as RowModel.fit measures it."""
    rho = []
    for a, b in ((grid[1:], grid[:-1]), (grid[:, 1:], grid[:, :-1])):
        ok = np.isfinite(a[..., 0]) & np.isfinite(b[..., 0])
        a, b = a[ok].astype(np.float64), b[ok].astype(np.float64)
        rho.append((a * b).mean(0) / np.sqrt((a**2).mean(0) * (b**2).mean(0)))
    return np.mean(rho, 0)
