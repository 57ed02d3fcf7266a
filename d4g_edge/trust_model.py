"""The statistics behind :mod:`d4g_edge.trust`'s probabilities: an L2-regularised logistic
regression (:func:`fit_logistic`) recalibrated by an isotonic map (:func:`isotonic`), stored
as a :class:`Model` on standardised features."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # minimum/maximum, not np.clip: its dispatch was most of a one-row prediction
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(z, -40.0), 40.0)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression, by Newton's method."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    reg = np.full(xb.shape[1], l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(iters):
        p = _sigmoid(xb @ w)
        grad = xb.T @ (p - y) + reg * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def isotonic(x: np.ndarray, y: np.ndarray, knots: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A non-decreasing map from ``x`` to the rate of ``y`` (pool-adjacent-violators), as at
    most ``knots`` (x, y) points for :func:`numpy.interp`: it recalibrates a logistic
    model's probabilities where the model's shape is wrong (a reliability-diagram fix)."""
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    vals, wts, ends = [], [], []
    for i, v in enumerate(ys):
        vals.append(v)
        wts.append(1.0)
        ends.append(i)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w = wts[-2] + wts[-1]
            vals[-2] = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w
            wts[-2] = w
            ends[-2] = ends[-1]
            del vals[-1], wts[-1], ends[-1]
    fitted = np.repeat(vals, np.asarray(wts, int))
    pick = np.unique(np.linspace(0, len(xs) - 1, knots).round().astype(int))
    kx, ky = xs[pick], fitted[pick]
    kx, first = np.unique(kx, return_index=True)
    return kx, ky[first]


@dataclass(frozen=True)
class Model:
    """A logistic regression on standardised features, recalibrated by isotonic knots."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]  # bias last
    knots: tuple[tuple[float, ...], ...] = ()  # (x, y) for numpy.interp; () = identity

    @classmethod
    def fit(cls, f: np.ndarray, y: np.ndarray) -> Model:
        mean, scale = f.mean(0), f.std(0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        w = fit_logistic((f - mean) / scale, y.astype(np.float64))
        raw = cls(tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, w)))
        knots = isotonic(raw.predict(f), y)
        return replace(raw, knots=tuple(tuple(float(v) for v in k) for k in knots))

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """The fields as arrays, converted once: every localize() predicts with them (the
        tuples' conversion was most of a one-row prediction)."""
        knots = tuple(np.asarray(k, np.float64) for k in self.knots)
        return np.asarray(self.mean), np.asarray(self.scale), np.asarray(self.weights), knots

    def predict(self, f: np.ndarray) -> np.ndarray:
        mean, scale, weights, knots = self._arrays
        x = (np.atleast_2d(f) - mean) / scale
        p = _sigmoid(x @ weights[:-1] + weights[-1])
        return np.interp(p, *knots) if knots else p
