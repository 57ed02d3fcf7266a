"""A transform code with a per-component bit allocation (the ``pca-bits`` index's codes).

pca-int8 spends 8 bits on each of 64 components; on real maps two things limit its recall
against exact float32 search: the int8 rounding of the few high-variance components (a
component's score error grows with its variance times its step, and its step with its
spread) and the components it drops (the low-variance tail is what separates neighbouring
rows). :class:`BitCodec` spends a fixed number of bytes a row where the score error is:

* bit allocation: component ``i`` gets ``b_i`` bits (0 to 16) by reverse water-filling on
  the score error ``w_i * D_i(b)``: ``D_i(b)`` is the measured mean squared error of a
  ``b``-bit uniform quantizer of the component (0 bits: its whole variance) and ``w_i =
  var_i^0.75`` models how much of a query lies along it (on the real 10 km² map's queries
  the share grows from 0.3 x the rows' variance at the head to ~180 x in the tail; the
  exponent was picked by recall there). A Lagrange multiplier is bisected until the packed
  row fits the bytes given;
* clipping: each component's quantizer range is the one with the least squared error on a
  sample (not the largest magnitude), from a grid of multiples of its spread;
* packing: a ``b``-bit code is split into binary digits of 8, 4, 2 and 1 bits (13 = 8 + 4
  + 1), each digit stored in the block of its width, so rows are byte-aligned blocks and a
  score stays linear: ``sum_i w_i code_i = sum_digits (w_i 2^shift) digit``. A block is
  unpacked with shifts alone (no masks: :attr:`BitCodec.columns` folds the higher digits'
  share into the weights), the rows stored as byte planes (``row_bytes`` x rows) so that
  each shift and cast runs over contiguous memory.

Usage::

    bits, step, lo = fit_codec(residual_sample, variances, row_bytes=72)
    codec = BitCodec(mean, basis[:, bits > 0], bits[bits > 0], ...)
    rows = codec.pack(codec.quantize(y), 72)              # (n, 72) uint8
    scores = codec.score(rows.T, codec.weights(u))  # (Q, n): u . (lo + step code) - u . lo
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from d4g_edge.vq import unit

MAX_BITS = 16
QUERY_WEIGHT_EXP = 0.75  # w_i = var_i ** this (picked by recall on the real 10 km² map)
_WIDTHS = (8, 4, 2, 1)  # digit widths, one block each, in this order in a row
_ALPHAS = np.geomspace(0.25, 8.0, 36)  # outer level / spread, tried for each width


@dataclass(frozen=True)
class BitCodec:
    """PCA rotation + per-component uniform quantizers: ``x ~ mean + basis @ (lo + step *
    code)`` (plus the row's list centroid); ``bits`` per component, all > 0."""

    mean: np.ndarray  # (D,) float32
    basis: np.ndarray  # (D, r) float32, the coded components
    bits: np.ndarray  # (r,) uint8, 1..16
    step: np.ndarray  # (r,) float32
    lo: np.ndarray  # (r,) float32, the lowest level

    @property
    def dims(self) -> int:
        return self.basis.shape[1]

    def project(self, x: np.ndarray) -> np.ndarray:
        return (unit(x) - self.mean) @ self.basis

    def layout(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
        """Per width (8, 4, 2, 1): the (component, shift) of each digit column; and the
        bytes the digits take (each block padded to whole bytes)."""
        cols: dict[int, list[tuple[int, int]]] = {w: [] for w in _WIDTHS}
        for i, b in enumerate(self.bits.tolist()):
            shift = b  # most significant digit first: 13 bits = 8 (shift 5), 4 (1), 1 (0)
            for w in [8] * (b // 8) + [w for w in (4, 2, 1) if b % 8 & w]:
                shift -= w
                cols[w].append((i, shift))
        out, nbytes = [], 0
        for w in _WIDTHS:
            a = np.array(cols[w], np.int64).reshape(-1, 2)
            out.append((a[:, 0], a[:, 1]))
            nbytes += -(-len(a) * w // 8)
        return out, nbytes

    def quantize(self, y: np.ndarray) -> np.ndarray:
        """(n, r) residual coordinates -> (n, r) int64 codes in ``0 .. 2^bits - 1``."""
        top = (1 << self.bits.astype(np.int64)) - 1
        return np.clip(np.rint((y - self.lo) / self.step), 0, top).astype(np.int64)

    def quantize_along(self, y, along, weights, cos: float, sweeps: int = 3) -> np.ndarray:
        """Anisotropic rounding (ScaNN's score-aware loss, for per-component codes): the
        codes of residuals ``y`` (n, r) whose error ``e`` minimises ``cos^2 (a . e)^2 + sum_i
        weights_i e_i^2`` per row, ``a`` (n, r) each row's own coordinates (``along``). A
        query at cosine ``cos`` to a row meets its error mostly along the row, so an error
        that cancels along it leaves the row's score alone where it decides top-1 (nearest
        rounding under-scores the rows that match a query best: their large residuals are
        clipped and shrunk). ``weights`` (r,): the query's spread across the row, summing to
        ``1 - cos^2``. Coordinate descent from nearest rounding: each step sets one component
        to the level nearest its continuous optimum given the others, which never raises the
        loss (a 1-D convex quadratic); ``sweeps`` passes over the components."""
        codes = self.quantize(y)
        if cos <= 0:
            return codes
        y, a = np.asarray(y, np.float32), np.asarray(along, np.float32)
        top = (1 << self.bits.astype(np.int64)) - 1
        err = self.lo + self.step * codes - y
        par = np.einsum("nr,nr->n", a, err)
        lam = np.float32(cos * cos)
        for _ in range(sweeps):
            for i in range(self.dims):
                ai = a[:, i]
                rest = par - ai * err[:, i]
                target = y[:, i] - lam * ai * rest / (weights[i] + lam * ai * ai)
                c = np.clip(np.rint((target - self.lo[i]) / self.step[i]), 0, top[i])
                err[:, i] = self.lo[i] + self.step[i] * c - y[:, i]
                par = rest + ai * err[:, i]
                codes[:, i] = c
        return codes

    def pack(self, codes: np.ndarray, row_bytes: int) -> np.ndarray:
        """(n, r) codes -> (n, row_bytes) uint8 rows of digit blocks (zero padded)."""
        out = np.zeros((len(codes), row_bytes), np.uint8)
        at = 0
        for w, (comp, shift) in zip(_WIDTHS, self.layout()[0], strict=True):
            d = (codes[:, comp] >> shift) & ((1 << w) - 1)
            per = 8 // w
            d = np.pad(d, ((0, 0), (0, -d.shape[1] % per))).reshape(len(d), -1, per)
            block = (d << (w * np.arange(per))).sum(2).astype(np.uint8)
            out[:, at : at + block.shape[1]] = block
            at += block.shape[1]
        return out

    @cached_property
    def columns(self) -> tuple[list[tuple[int, int, int]], np.ndarray]:
        """How :meth:`unpack` spreads a row into float columns, and the (columns, r) map
        ``M`` from per-component weights to column weights (``score = cols @ (M @ v)``).

        A byte of ``per = 8 / w`` digits ``d_0 .. d_{per-1}`` (low first) gives the columns
        ``byte >> (w j)`` for ``j < per``, unmasked: ``sum_j a_j (byte >> w j) = sum_j v_j
        d_j`` with ``a_j = v_j - 2^w v_{j-1}``, so unpacking is shifts only."""
        plan, mats, at = [], [], 0
        for w, (comp, shift) in zip(_WIDTHS, self.layout()[0], strict=True):
            per = 8 // w
            nb = -(-len(comp) // per)
            digit = np.zeros((nb * per, self.dims))  # digit k's weight per component
            digit[np.arange(len(comp)), comp] = np.exp2(shift)
            digit = digit.reshape(nb, per, self.dims)
            for j in range(per):
                carry = digit[:, j - 1] * 2.0**w if j else 0.0
                mats.append(digit[:, j] - carry)
                plan.append((at, nb, w * j))
            at += nb
        return plan, np.concatenate(mats).astype(np.float32)

    def unpack(self, planes: np.ndarray) -> np.ndarray:
        """(row_bytes, m) byte planes (packed rows, transposed) -> (columns, m) float32 (see
        :attr:`columns`): each block's shift and cast run over contiguous memory."""
        rows_t = np.asarray(planes)
        plan, mat = self.columns
        out = np.empty((len(mat), rows_t.shape[1]), np.float32)
        c = 0
        for at, nb, sh in plan:
            block = rows_t[at : at + nb]
            out[c : c + nb] = block >> sh if sh else block
            c += nb
        return out

    def weights(self, u: np.ndarray) -> np.ndarray:
        """(Q, r) query coordinates -> (Q, columns) weights: ``weights @ unpack(rows)`` is
        ``sum_i u_i step_i code_i`` per row."""
        return ((u * self.step) @ self.columns[1].T).astype(np.float32)

    def score(self, planes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(row_bytes, m) byte planes x :meth:`weights` -> (Q, m) ``sum_i u_i step_i code_i``."""
        return weights @ self.unpack(planes)

    def decode(self, planes: np.ndarray) -> np.ndarray:
        """(row_bytes, m) byte planes -> (m, r) residual coordinates ``lo + step * code``."""
        return self.lo + self.step * (self.unpack(planes).T @ self.columns[1])


def across_weights(var: np.ndarray, cos: float) -> np.ndarray:
    """(r,) float32 weights of :meth:`BitCodec.quantize_along`: a query's spread across its
    best row, per component (``var_i ** QUERY_WEIGHT_EXP`` as the bit allocation models it),
    summing to ``1 - cos^2``."""
    w = np.maximum(np.asarray(var, np.float64), 1e-30) ** QUERY_WEIGHT_EXP
    return (w / w.sum() * (1.0 - cos * cos)).astype(np.float32)


def fit_codec(fit_y: np.ndarray, var: np.ndarray, row_bytes: int) -> tuple[np.ndarray, ...]:
    """Bits, step and lowest level of every component for residuals ``fit_y`` (n, R) of
    components with row variance ``var`` (R,), so that the packed row fits ``row_bytes``."""
    d, step = _quantizer_tables(fit_y)
    d[0] = var  # a component left out loses its whole variance (the centroid's part too)
    cost = d * np.maximum(var, 1e-30) ** QUERY_WEIGHT_EXP  # (17, R) score error

    def choose(lam: float) -> np.ndarray:
        return (cost + lam * np.arange(MAX_BITS + 1)[:, None]).argmin(0)

    lo_lam, hi_lam = 1e-30, float(cost.max()) + 1.0  # hi: every component gets 0 bits
    for _ in range(200):
        mid = float(np.sqrt(lo_lam * hi_lam))
        if _bytes(choose(mid)) > row_bytes:
            lo_lam = mid
        else:
            hi_lam = mid
        if hi_lam / lo_lam < 1 + 1e-9:
            break
    bits = _top_up(choose(hi_lam), cost, row_bytes)
    if not bits.any():  # rows all alike (one row, say): nothing to spend on, but a code is
        bits[0] = 8  # needed; 8 bits fit any row (a byte)
    st = step[bits, np.arange(len(bits))]
    lo = -((2.0**bits) - 1) / 2 * st
    return bits.astype(np.uint8), st.astype(np.float32), lo.astype(np.float32)


def _digits(b: np.ndarray) -> np.ndarray:
    """(..., 4) digits of 8, 4, 2 and 1 bits of each bit count ``b``."""
    return np.stack([b // 8, (b >> 2) & 1, (b >> 1) & 1, b & 1], -1)


def _size(digits: np.ndarray) -> np.ndarray:
    """Packed bytes of digit counts (..., 4): each block padded to whole bytes."""
    return sum(-(-digits[..., i] * w // 8) for i, w in enumerate(_WIDTHS))


def _bytes(bits: np.ndarray) -> int:
    """Packed bytes of a row with these per-component bits."""
    return int(_size(_digits(np.asarray(bits, np.int64)).sum(0)))


def _top_up(bits: np.ndarray, cost: np.ndarray, row_bytes: int) -> np.ndarray:
    """Spend what the bisection left (packed size is not monotone in the bits: 8 bits fit a
    byte, 3 do not): raise, one at a time, the component whose raise lowers the score error
    most per bit among those that still fit."""
    bits = np.asarray(bits, np.int64).copy()
    every = np.arange(MAX_BITS + 1)
    idx = np.arange(len(bits))
    while True:
        counts = _digits(bits).sum(0)
        new = counts - _digits(bits)[:, None] + _digits(every)[None]  # (R, 17, 4)
        gain = (cost[bits, idx][:, None] - cost.T) / np.maximum(every[None] - bits[:, None], 1)
        ok = (_size(new) <= row_bytes) & (every[None] > bits[:, None]) & (gain > 0)
        if not ok.any():
            return bits
        i, b = np.unravel_index(np.where(ok, gain, -np.inf).argmax(), ok.shape)
        bits[i] = b


def _quantizer_tables(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(17, R) mean squared error and step of the best b-bit uniform quantizer (b = 0..16)
    of each column of ``y``: the outer level at the best of ``_ALPHAS`` x the column's
    spread (clipping), or at its largest magnitude from 9 bits on (rounding dominates)."""
    y = np.asarray(y, np.float32)
    r = y.shape[1]
    sd = np.sqrt((y**2).mean(0)) + 1e-12
    top = np.abs(y).max(0) + 1e-12
    d = np.zeros((MAX_BITS + 1, r))
    step = np.ones((MAX_BITS + 1, r))
    d[0] = (y.astype(np.float64) ** 2).mean(0)
    for b in range(1, MAX_BITS + 1):
        levels = (1 << b) - 1
        halves = _ALPHAS[:, None] * sd if b <= 8 else top[None]
        best = np.full(r, np.inf)
        for h in halves:
            st = np.maximum(2 * h / levels, 1e-12)  # 1 bit: the two levels are -h and h
            lo = -levels / 2 * st
            j = np.clip(np.rint((y - lo) / st), 0, levels)
            err = ((lo + j * st - y) ** 2).mean(0)
            better = err < best
            best[better], step[b, better] = err[better], st[better]
        d[b] = best
    return d, step
