"""What an answer promises: a calibrated radius, P(within 25 m), and ``ok`` / ``uncertain`` /
``not_in_map``.

A retrieval system ranks tiles; it does not know when it is wrong. This module turns the
shape of a query's retrieval into numbers a navigation engineer can use, the way a GNSS
receiver reports ``hAcc`` and says "no fix":

- **features** of one query (:func:`features`), independent of the caller's ``top_k``: the best
  cosine score, its lead over the 2nd row and over the ``TRUST_K``-th, its lead over the best
  tile *far* from it (two tile strides away: a ratio test against another place), the
  score-weighted spatial spread of the top rows, and when the heading was searched the lead
  of the best heading over the best one at least 90 degrees away;
- two logistic models fitted on held-out geotagged queries (:func:`fit`): ``p_within_25m``,
  the probability that the answer lies within 25 m of the truth (out-of-map and degenerate
  frames count as misses), and ``p_in_map``, the probability that the query shows a place the
  bundle holds;
- the **radius**: a split-conformal quantile of the error, per bin of ``p_within_25m``
  (Mondrian conformal prediction), so that the radius holds the truth with probability
  ``coverage`` (default 0.95) in every bin; bins are fitted separately with and without a
  position prior, and a prior's disc caps the radius;
- **status**: ``not_in_map`` for degenerate images (:func:`image_problem`: tiny, extreme aspect
  ratio, constant, noise-like) and for ``p_in_map`` below a threshold, ``ok`` when
  ``p_within_25m`` reaches the fitted threshold, else ``uncertain``.

The fit is a JSON file in the bundle (``calibration-<sha>.json``, named in the manifest's
``calibration`` entry and listed with its SHA-256 under ``files`` like every file), written
by ``d4g-edge calibrate`` (:mod:`d4g_edge.calibrate`) with the data and command that
produced it. A bundle without one answers ``uncertain`` with an
uncalibrated spread, and says so once in the log.

Usage::

    from d4g_edge.trust import Calibration, features, image_problem
    cal = Calibration.from_bundle(bundle)            # None when the bundle has no fit
    f = features(scores, dist_m, far_m=90.0, heading_scores=None)
    verdict = cal.judge(f[None], prior_radius=None)   # p_within_25m, p_in_map, radius, status
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge.errors import BundleError, BundleSchemaError

SCHEMA = "d4g-edge/calibration/1"
# calibration-<first 12 hex of its SHA-256>.json: a refit writes a new file, then swaps the
# manifest, so a crash between the two leaves the old fit in force, never a broken bundle
FILE_RE = re.compile(r"calibration-[0-9a-f]{12}\.json")
TRUST_K = 32  # rows (one per tile) behind every answer's features, whatever top_k asks
WITHIN_M = 25.0  # the "right answer" radius of p_within_25m (the field's within-25 m rate)
STATUSES = ("ok", "uncertain", "not_in_map")
FEATURES = (
    "score",
    "lead_2",
    "lead_k",
    "lead_far",
    "spread_m",
    "lead_heading",
    "heading_known",
)
# degenerate images (image_problem): thresholds on 8-bit values, documented in docs/trust.md
MIN_SIDE_PX = 16
MAX_ASPECT = 16.0
MIN_STD = 2.0  # luminance standard deviation of a constant (or nearly) frame
MIN_NEIGHBOUR_CORR = 0.25  # adjacent-pixel correlation: natural images > 0.6, i.i.d. noise ~0


def image_problem(rgb: np.ndarray) -> str | None:
    """Why an (H, W, 3) uint8 image cannot be a photo of a place, or None."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE_PX:
        return f"image is {w}x{h} px, below {MIN_SIDE_PX} px on a side"
    if max(h, w) / min(h, w) > MAX_ASPECT:
        return f"image aspect ratio {w}:{h} is beyond 1:{MAX_ASPECT:.0f}"
    # a strided view keeps this O(1e5) pixels on any image size
    step = max(1, int(np.sqrt(h * w / 250_000)))
    y = rgb[::step, ::step].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if float(y.std()) < MIN_STD:
        return f"image is constant (luminance std {float(y.std()):.2f} < {MIN_STD})"
    a, b = y[:, :-1].ravel(), y[:, 1:].ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.size > 1 else 0.0
    if not np.isfinite(corr) or corr < MIN_NEIGHBOUR_CORR:
        return f"image looks like noise (adjacent-pixel correlation {corr:.2f})"
    return None


def features(
    scores: np.ndarray,
    dist_m: np.ndarray,
    far_m: float,
    heading_scores: np.ndarray | None = None,
    heading_step_deg: float = 45.0,
    spread_temperature: float = 0.02,
) -> np.ndarray:
    """The :data:`FEATURES` of one query: ``scores`` of its top rows (one per tile, best
    first, at least 2), ``dist_m`` of each from the best, ``heading_scores`` the best score
    of each searched heading (None when the heading was given)."""
    s = np.asarray(scores, np.float64)
    d = np.asarray(dist_m, np.float64)
    k = min(len(s), TRUST_K)
    s, d = s[:k], d[:k]
    far = s[d > far_m]
    lead_far = s[0] - (far[0] if far.size else s[-1])
    w = np.exp((s - s[0]) / spread_temperature)
    spread = float(np.sqrt((w * d**2).sum() / w.sum()))
    if heading_scores is None or len(heading_scores) < 2:
        lead_heading, known = 0.0, 1.0
    else:
        hs = np.asarray(heading_scores, np.float64)
        best = int(np.argmax(hs))
        steps = np.abs((np.arange(len(hs)) - best + len(hs) // 2) % len(hs) - len(hs) // 2)
        away = hs[steps * heading_step_deg >= 90.0]
        lead_heading, known = float(hs[best] - (away.max() if away.size else hs.min())), 0.0
    lead_2 = s[0] - s[1] if k > 1 else 0.0
    return np.array([s[0], lead_2, s[0] - s[-1], lead_far, np.log1p(spread), lead_heading, known])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _recalibrate(p: np.ndarray, knots) -> np.ndarray:
    return np.interp(p, knots[0], knots[1]) if knots else p


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


def conformal_quantile(errors: np.ndarray, coverage: float) -> float:
    """The split-conformal ``coverage`` quantile: the ceil((n + 1) coverage)-th smallest
    error, infinite when there are too few (the radius then cannot be promised)."""
    e = np.sort(np.asarray(errors, np.float64))
    rank = int(np.ceil((len(e) + 1) * coverage))
    return float(e[rank - 1]) if 1 <= rank <= len(e) else float("inf")


@dataclass(frozen=True)
class Verdict:
    p_within_25m: float
    p_in_map: float
    uncertainty_m: float | None  # the radius at ``coverage``; None when not in the map
    status: str
    reason: str | None


@dataclass(frozen=True)
class Calibration:
    """A fitted trust model (see the module docstring); JSON-serialisable."""

    coverage: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    w_within: tuple[float, ...]
    w_in_map: tuple[float, ...]
    ok_threshold: float
    in_map_threshold: float
    # radius per bin of p_within_25m: edges (ascending) and a radius per bin, per prior mode
    bin_edges: tuple[float, ...]
    radius_free: tuple[float, ...]
    radius_prior: tuple[float, ...]
    max_radius_m: float  # the map's diameter: no answer is farther than that
    features: tuple[str, ...] = FEATURES
    # isotonic recalibration of each logistic output: (x knots, y knots); () = identity
    within_knots: tuple[tuple[float, ...], ...] = ()
    in_map_knots: tuple[tuple[float, ...], ...] = ()
    track: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- prediction ---------------------------------------------------------------------

    def _x(self, f: np.ndarray) -> np.ndarray:
        x = (np.atleast_2d(f) - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.hstack([x, np.ones((len(x), 1))])

    def p_within(self, f: np.ndarray) -> np.ndarray:
        return _recalibrate(_sigmoid(self._x(f) @ np.asarray(self.w_within)), self.within_knots)

    def p_in_map(self, f: np.ndarray) -> np.ndarray:
        return _recalibrate(_sigmoid(self._x(f) @ np.asarray(self.w_in_map)), self.in_map_knots)

    def radius(self, p_within: np.ndarray, prior: bool) -> np.ndarray:
        table = np.asarray(self.radius_prior if prior else self.radius_free)
        b = np.clip(np.searchsorted(np.asarray(self.bin_edges), p_within, "right") - 1, 0, None)
        r = table[np.minimum(b, len(table) - 1)]
        return np.minimum(r, self.max_radius_m)

    def judge(self, f: np.ndarray, prior_cap_m: float | None = None) -> list[Verdict]:
        """A verdict per row of features; ``prior_cap_m``: the farthest point of the prior's
        disc from the answer (the truth is promised to lie in it)."""
        pw, pm = self.p_within(f), self.p_in_map(f)
        r = self.radius(pw, prior_cap_m is not None)
        if prior_cap_m is not None:
            r = np.minimum(r, prior_cap_m)
        out = []
        for a, b, c in zip(pw, pm, r, strict=True):
            if b < self.in_map_threshold:
                reason = f"p_in_map {b:.2f} < {self.in_map_threshold:.2f}"
                out.append(Verdict(float(a), float(b), None, "not_in_map", reason))
            elif a >= self.ok_threshold:
                out.append(Verdict(float(a), float(b), float(c), "ok", None))
            else:
                reason = f"p_within_25m {a:.2f} < {self.ok_threshold:.2f}"
                out.append(Verdict(float(a), float(b), float(c), "uncertain", reason))
        return out

    # ---- files --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA
        for k in ("radius_free", "radius_prior"):  # JSON has no infinity
            d[k] = [v if np.isfinite(v) else None for v in d[k]]
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str = "calibration") -> Calibration:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            got = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise BundleSchemaError(f"{source}: expected a {SCHEMA!r} object, got {got!r}")
        d = {k: v for k, v in data.items() if k != "schema"}
        try:
            for k in ("radius_free", "radius_prior"):
                d[k] = tuple(float("inf") if v is None else float(v) for v in d[k])
            for k in ("mean", "scale", "w_within", "w_in_map", "bin_edges", "features"):
                d[k] = tuple(d[k])
            for k in ("within_knots", "in_map_knots"):
                d[k] = tuple(tuple(float(v) for v in knots) for knots in d.get(k, ()))
            cal = cls(**d)
        except (KeyError, TypeError, ValueError) as err:
            raise BundleSchemaError(f"{source}: malformed calibration ({err})") from None
        n = len(FEATURES)
        if cal.features != FEATURES or len(cal.mean) != n or len(cal.w_within) != n + 1:
            raise BundleSchemaError(
                f"{source}: fitted on features {list(cal.features)}, this d4g-edge computes "
                f"{list(FEATURES)}; refit with d4g-edge calibrate"
            )
        numbers = np.array([*cal.mean, *cal.scale, *cal.w_within, *cal.w_in_map, *cal.bin_edges])
        if not np.isfinite(numbers).all() or not 0 < cal.coverage < 1:
            raise BundleSchemaError(f"{source}: non-finite weights or coverage out of (0, 1)")
        return cal

    @classmethod
    def from_bundle(cls, bundle) -> Calibration | None:
        """The bundle's fit (its file is checksummed with the others at load), or None."""
        entry = bundle.manifest.get("calibration")
        if entry is None:
            return None
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not FILE_RE.fullmatch(name):
            raise BundleSchemaError(
                f"{bundle.root}/manifest.json: calibration must be {{'file': "
                f"'calibration-<12 hex>.json', ...}}, got {entry!r}; rerun d4g-edge calibrate"
            )
        files = bundle.manifest.get("files")
        if not isinstance(files, dict) or name not in files:
            raise BundleSchemaError(
                f"{bundle.root}/manifest.json lists no checksum for {name}; rerun d4g-edge "
                "calibrate"
            )
        path = Path(bundle.root) / name
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BundleError(f"cannot read {path}: {err}") from None
        return cls.from_dict(data, str(path))


def fit(
    f: np.ndarray,
    error_m: np.ndarray,
    in_map: np.ndarray,
    prior: np.ndarray,
    *,
    coverage: float = 0.95,
    max_radius_m: float,
    ok_recall: float = 0.92,
    in_map_recall: float = 0.99,
    bins: int = 10,
    meta: dict[str, Any] | None = None,
) -> Calibration:
    """Fit on rows of features ``f`` with their true ``error_m`` (ignored where not
    ``in_map``) and whether a prior was used. ``ok_recall``: the share of in-map answers
    within 25 m that must stay ``ok``; ``in_map_recall``: of in-map queries that must not be
    called ``not_in_map``."""
    f = np.asarray(f, np.float64)
    in_map = np.asarray(in_map, bool)
    prior = np.asarray(prior, bool)
    err = np.where(in_map, np.asarray(error_m, np.float64), np.inf)
    right = in_map & (err <= WITHIN_M)
    if right.sum() < 20 or (~right).sum() < 20:
        raise BundleError(
            f"calibration needs at least 20 answers within {WITHIN_M:.0f} m and 20 others; "
            f"got {int(right.sum())} and {int((~right).sum())}: add geotagged frames"
        )
    mean, scale = f.mean(0), f.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    x = (f - mean) / scale
    w_within = fit_logistic(x, right.astype(np.float64))
    w_in = fit_logistic(x, in_map.astype(np.float64))
    xb = np.hstack([x, np.ones((len(x), 1))])
    knots = [
        tuple(tuple(float(v) for v in k) for k in isotonic(_sigmoid(xb @ w), label))
        for w, label in ((w_within, right), (w_in, in_map))
    ]
    cal = Calibration(
        coverage, tuple(mean), tuple(scale), tuple(w_within), tuple(w_in), 0.5, 0.0,
        (0.0,), (float("inf"),), (float("inf"),), float(max_radius_m),
        within_knots=knots[0], in_map_knots=knots[1],
    )  # fmt: skip
    pw, pm = cal.p_within(f), cal.p_in_map(f)
    ok_threshold = float(np.quantile(pw[right], 1.0 - ok_recall))
    in_threshold = float(np.quantile(pm[in_map], 1.0 - in_map_recall)) if in_map.any() else 0.0
    # bins of p_within_25m with equal counts of in-map rows; their radii per prior mode
    edges = np.unique(np.quantile(pw[in_map], np.linspace(0, 1, bins + 1)[:-1]))
    edges[0] = 0.0
    tables = []
    for mode in (False, True):
        rows = in_map & (prior == mode)
        b = np.clip(np.searchsorted(edges, pw[rows], "right") - 1, 0, None)
        radii = np.array(
            [conformal_quantile(err[rows][b == i], coverage) for i in range(len(edges))]
        )
        # a likelier answer never gets a wider radius than a less likely one
        radii = np.maximum.accumulate(np.minimum(radii, max_radius_m)[::-1])[::-1]
        tables.append(tuple(float(r) for r in radii))
    return Calibration(
        coverage=float(coverage),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        w_within=tuple(float(v) for v in w_within),
        w_in_map=tuple(float(v) for v in w_in),
        ok_threshold=ok_threshold,
        in_map_threshold=in_threshold,
        bin_edges=tuple(float(e) for e in edges),
        radius_free=tables[0],
        radius_prior=tables[1],
        max_radius_m=float(max_radius_m),
        within_knots=knots[0],
        in_map_knots=knots[1],
        meta=dict(meta or {}),
    )
