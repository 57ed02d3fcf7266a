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
  ``p_within_25m`` reaches the fitted threshold, else ``uncertain``;
- **heading error** (``heading_sigma_deg``) of a searched heading: a 1-sigma, the 95 %
  split-conformal bound of right answers' heading error per bin of ``lead_heading`` divided
  by 1.96 (:mod:`d4g_edge.conformal`), fitted apart for panoramas and photos; it promises
  nothing about wrong answers (their heading is as wrong as their place).

Groups: :data:`GROUPS` for panoramas (heading given, searched, under a prior) and
:data:`PHOTO_GROUPS`, the same three for photos (``fov_deg`` < 360). A calibration without
photo groups (fitted before them, or on too few frames) judges every photo by the
``heading_unknown`` group (``p_within_25m`` and radius, capped by a prior's disc): the widest
promise a panorama gets, since a photo's error is not smaller, and never calls it ``ok`` or
``not_in_map`` by ``p_in_map`` (both fitted on panoramas): ``uncertain``, with a reason to
refit.

The fit is a JSON file in the bundle (``calibration-<sha>.json``, named in the manifest's
``calibration`` entry and listed with its SHA-256 under ``files`` like every file), written
by ``d4g-edge calibrate`` (:mod:`d4g_edge.build.calibrate`) with the data and command that
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge.conformal import (  # noqa: F401  (conformal_quantile: public here too)
    HeadingFit,
    conformal_quantile,
    fit_heading,
    normal_quantile,
    sigma_of_bound,
)
from d4g_edge.errors import BundleError, BundleSchemaError

SCHEMA = "d4g-edge/calibration/1"
# calibration-<first 12 hex of its SHA-256>.json: a refit writes a new file, then swaps the
# manifest, so a crash between the two leaves the old fit in force, never a broken bundle
FILE_RE = re.compile(r"calibration-[0-9a-f]{12}\.json")
TRUST_K = 32  # rows (one per tile) behind every answer's features, whatever top_k asks
WITHIN_M = 25.0  # the "right answer" radius of p_within_25m (the field's within-25 m rate)
STATUSES = ("ok", "uncertain", "not_in_map")
# kinds of query fitted apart (Mondrian conformal prediction): each keeps its own promise
GROUPS = ("heading_known", "heading_unknown", "prior")  # panoramas; every calibration has them
PHOTO_PREFIX = "photo_"
PHOTO_GROUPS = tuple(PHOTO_PREFIX + g for g in GROUPS)  # photos, in calibrations fitted since
HEADING_KINDS = ("panorama", "photo")  # heading-error fits
NO_PHOTO_FIT = (
    "photo judged by a calibration without photo groups; refit it with d4g-edge calibrate "
    "(it adds photos cut from the calibration panoramas)"
)
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
    # a strided view of ~16k pixels: enough for both statistics, O(1) on any image size
    # (it runs on every query: the localize() fast path)
    step = max(1, int(np.sqrt(h * w / 16_384)))
    y = rgb[::step, ::step].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    std = float(y.std())
    if std < MIN_STD:
        return f"image is constant (luminance std {std:.2f} < {MIN_STD})"
    a, b = y[:, :-1].ravel(), y[:, 1:].ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a @ a) * (b @ b)))
    corr = float(a @ b) / denom if denom > 0 else 0.0
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
class Verdict:
    p_within_25m: float
    p_in_map: float
    uncertainty_m: float | None  # the radius at ``coverage``; None when not in the map
    status: str
    reason: str | None
    heading_sigma_deg: float | None = None  # 1-sigma of a searched heading (module docstring)


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

    def predict(self, f: np.ndarray) -> np.ndarray:
        x = (np.atleast_2d(f) - np.asarray(self.mean)) / np.asarray(self.scale)
        p = _sigmoid(np.hstack([x, np.ones((len(x), 1))]) @ np.asarray(self.weights))
        return np.interp(p, *self.knots) if self.knots else p


@dataclass(frozen=True)
class GroupFit:
    """The fit of one kind of query (Mondrian conformal: each kind keeps its own promise)."""

    within: Model  # p_within_25m
    ok_threshold: float
    bin_edges: tuple[float, ...]  # of p_within_25m, ascending, first 0
    radius: tuple[float, ...]  # the coverage radius per bin (inf: cannot be promised)
    rows: int


@dataclass(frozen=True)
class Calibration:
    """A fitted trust model (see the module docstring); JSON-serialisable."""

    coverage: float
    max_radius_m: float  # the map's diameter: no answer is farther than that
    in_map: Model  # p_in_map, over every kind of query
    in_map_threshold: float
    groups: dict[str, GroupFit]
    ok_precision: float = 0.9
    features: tuple[str, ...] = FEATURES
    track: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    heading: dict[str, HeadingFit] = field(default_factory=dict)  # of HEADING_KINDS
    # p_in_map threshold of photos (their scores run lower): None = in_map_threshold
    photo_in_map_threshold: float | None = None

    # ---- prediction ---------------------------------------------------------------------

    @property
    def has_photo_groups(self) -> bool:
        return all(g in self.groups for g in PHOTO_GROUPS)

    @staticmethod
    def group_of(
        f: np.ndarray, prior: bool | np.ndarray, photo: bool | np.ndarray = False
    ) -> np.ndarray:
        """The group name of each row of features (:data:`GROUPS`, :data:`PHOTO_GROUPS`)."""
        known = np.atleast_2d(f)[:, FEATURES.index("heading_known")] > 0.5
        g = np.where(prior, "prior", np.where(known, "heading_known", "heading_unknown"))
        return np.where(photo, np.char.add(PHOTO_PREFIX, g), g).astype(str)

    def _fitted(self, groups: np.ndarray) -> np.ndarray:
        """The fitted group that judges each group: in a calibration without photo groups,
        ``heading_unknown`` judges every photo (measured on the bundled default's old fit:
        its heading_known radius held 65 % of FoV-90 photos with their heading given, its
        heading_unknown radius 98 %; benchmarks.bench_photo)."""
        if self.has_photo_groups:
            return groups
        g = np.asarray(groups, str)
        return np.where(np.char.startswith(g, PHOTO_PREFIX), "heading_unknown", g)

    def p_within(
        self, f: np.ndarray, prior: bool | np.ndarray = False, photo: bool | np.ndarray = False
    ) -> np.ndarray:
        f = np.atleast_2d(f)
        g = self._fitted(self.group_of(f, prior, photo))
        out = np.zeros(len(f))
        for name in np.unique(g):
            out[g == name] = self.groups[str(name)].within.predict(f[g == name])
        return out

    def heading_sigma(self, f: np.ndarray, photo: bool = False) -> float | None:
        """The calibrated 1-sigma (degrees) of a searched heading with features ``f``; None
        for a given heading or without a fit for this kind of query."""
        f = np.asarray(f, np.float64).ravel()
        fit = self.heading.get("photo" if photo else "panorama")
        if fit is None or f[FEATURES.index("heading_known")] > 0.5:
            return None
        return sigma_of_bound(fit.bound(float(f[FEATURES.index("lead_heading")])), self.coverage)

    def p_in_map(self, f: np.ndarray) -> np.ndarray:
        return self.in_map.predict(f)

    def radius(self, p_within: np.ndarray, group: str) -> np.ndarray:
        gf = self.groups[group]
        b = np.searchsorted(np.asarray(gf.bin_edges), np.asarray(p_within), "right") - 1
        r = np.asarray(gf.radius)[np.clip(b, 0, len(gf.radius) - 1)]
        return np.minimum(r, self.max_radius_m)

    def judge(
        self, f: np.ndarray, prior_cap_m: float | None = None, *, photo: bool = False
    ) -> list[Verdict]:
        """A verdict per row of features; ``prior_cap_m``: the farthest point of the prior's
        disc from the answer (the truth is promised to lie in it); None: no prior. ``photo``:
        the rows are photos (see the module docstring for a calibration without photo
        groups)."""
        f = np.atleast_2d(f)
        prior = prior_cap_m is not None
        groups = self._fitted(self.group_of(f, prior, photo))
        unfitted = photo and not self.has_photo_groups
        pw, pm = self.p_within(f, prior, photo), self.p_in_map(f)
        out = []
        in_threshold = self.in_map_threshold
        if photo and self.photo_in_map_threshold is not None:
            in_threshold = self.photo_in_map_threshold
        for row, a, b, g in zip(f, pw, pm, groups, strict=True):
            gf = self.groups[str(g)]
            r = float(self.radius(np.array([a]), str(g))[0])
            r = min(r, prior_cap_m) if prior else r
            sigma = self.heading_sigma(row, photo)
            if unfitted:  # no promise for photos: a radius, never ok, never not_in_map
                out.append(Verdict(float(a), float(b), r, "uncertain", NO_PHOTO_FIT, sigma))
            elif b < in_threshold:
                reason = f"p_in_map {b:.2f} < {in_threshold:.2f}"
                out.append(Verdict(float(a), float(b), None, "not_in_map", reason))
            elif a >= gf.ok_threshold:
                out.append(Verdict(float(a), float(b), r, "ok", None, sigma))
            else:
                reason = f"p_within_25m {a:.2f} < {gf.ok_threshold:.2f} ({g})"
                out.append(Verdict(float(a), float(b), r, "uncertain", reason, sigma))
        return out

    # ---- files --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA
        for g in d["groups"].values():  # JSON has no infinity: null
            g["radius"] = [v if np.isfinite(v) else None for v in g["radius"]]
            g["ok_threshold"] = g["ok_threshold"] if np.isfinite(g["ok_threshold"]) else None
        if not d["heading"]:  # the file of a fit without heading errors stays as it was
            del d["heading"]
        if d["photo_in_map_threshold"] is None:
            del d["photo_in_map_threshold"]
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str = "calibration") -> Calibration:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            got = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise BundleSchemaError(f"{source}: expected a {SCHEMA!r} object, got {got!r}")
        d = {k: v for k, v in data.items() if k != "schema"}
        try:
            d["in_map"] = _model(d["in_map"])
            d["groups"] = {
                str(name): GroupFit(
                    within=_model(g["within"]),
                    # null: no answer of this kind can be promised the precision of "ok"
                    ok_threshold=float("inf" if g["ok_threshold"] is None else g["ok_threshold"]),
                    bin_edges=tuple(float(v) for v in g["bin_edges"]),
                    radius=tuple(float("inf") if v is None else float(v) for v in g["radius"]),
                    rows=int(g["rows"]),
                )
                for name, g in d["groups"].items()
            }
            d["features"] = tuple(d.get("features", ()))
            d["heading"] = {  # absent in calibrations fitted before heading errors
                str(kind): HeadingFit(
                    bin_edges=tuple(float(v) for v in h["bin_edges"]),
                    bound_deg=tuple(float(v) for v in h["bound_deg"]),
                    rows=int(h["rows"]),
                )
                for kind, h in (d.get("heading") or {}).items()
            }
            if d.get("photo_in_map_threshold") is not None:
                d["photo_in_map_threshold"] = float(d["photo_in_map_threshold"])
            cal = cls(**d)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise BundleSchemaError(f"{source}: malformed calibration ({err!r})") from None
        n = len(FEATURES)
        models = [cal.in_map, *(g.within for g in cal.groups.values())]
        if cal.features != FEATURES or any(
            len(m.mean) != n or len(m.scale) != n or len(m.weights) != n + 1 for m in models
        ):
            raise BundleSchemaError(
                f"{source}: fitted on features {list(cal.features)}, this d4g-edge computes "
                f"{list(FEATURES)}; refit with d4g-edge calibrate"
            )
        if set(cal.groups) not in (set(GROUPS), set(GROUPS + PHOTO_GROUPS)):
            raise BundleSchemaError(
                f"{source}: groups {sorted(cal.groups)}, expected {GROUPS} (and, since photo "
                f"groups, {PHOTO_GROUPS})"
            )
        heads = cal.heading.values()
        if set(cal.heading) - set(HEADING_KINDS) or any(
            len(h.bin_edges) != len(h.bound_deg) or not h.bin_edges for h in heads
        ):
            raise BundleSchemaError(
                f"{source}: heading fits must be {HEADING_KINDS} with one bound per bin"
            )
        numbers = np.array(
            [v for m in models for v in (*m.mean, *m.scale, *m.weights)]
            + [cal.coverage, cal.max_radius_m, cal.in_map_threshold]
            + [v for g in cal.groups.values() for v in g.bin_edges]
            + [v for h in heads for v in (*h.bin_edges, *h.bound_deg)]
            + [cal.photo_in_map_threshold or 0.0]
        )
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


def _model(d: dict) -> Model:
    return Model(
        tuple(float(v) for v in d["mean"]),
        tuple(float(v) for v in d["scale"]),
        tuple(float(v) for v in d["weights"]),
        tuple(tuple(float(v) for v in k) for k in d.get("knots", ())),
    )


def ok_threshold_for(
    p: np.ndarray, right: np.ndarray, precision: float, min_rows: int = 20
) -> float:
    """The lowest threshold on ``p`` whose kept rows (``p >= threshold``, at least
    ``min_rows`` of them) are right at least ``precision`` of the time: 'ok' promises that
    share of right answers. Rows of equal ``p`` are kept or dropped together (an isotonic map
    has long plateaus: one lucky row must not make a whole plateau 'ok')."""
    order = np.argsort(-p, kind="stable")
    ps = np.asarray(p, np.float64)[order]
    hits = np.cumsum(np.asarray(right, bool)[order]) / np.arange(1, len(order) + 1)
    ends = np.r_[ps[1:] != ps[:-1], True]  # the last row of each group of equal p
    ends[: min_rows - 1] = False
    good = np.flatnonzero(ends & (hits >= precision))
    return float(ps[good[-1]]) if good.size else float("inf")


def _group_fit(f, err, right, in_map, coverage, max_radius_m, ok_precision, bins) -> GroupFit:
    """One group's p_within_25m model, 'ok' threshold and per-bin conformal radii."""
    model = Model.fit(f, right)
    pw = model.predict(f)
    edges = np.unique(np.quantile(pw[in_map], np.linspace(0, 1, bins + 1)[:-1]))
    edges[0] = 0.0
    b = np.clip(np.searchsorted(edges, pw[in_map], "right") - 1, 0, None)
    radii = np.array([conformal_quantile(err[in_map][b == i], coverage) for i in range(len(edges))])
    # a likelier answer never gets a wider radius than a less likely one
    radii = np.maximum.accumulate(np.minimum(radii, max_radius_m)[::-1])[::-1]
    return GroupFit(
        within=model,
        ok_threshold=ok_threshold_for(pw, right, ok_precision),
        bin_edges=tuple(float(e) for e in edges),
        radius=tuple(float(r) for r in radii),
        rows=len(f),
    )


def _photo_groups(group, right, photo) -> tuple[bool, str]:
    """Whether the photo groups can be fitted, and what ``meta["photo_groups"]`` says."""
    if not photo.any():
        return False, "no photo rows"
    short = [
        f"{g} has {int(right[group == g].sum())} and {int((~right[group == g]).sum())}"
        for g in PHOTO_GROUPS
        if right[group == g].sum() < 20 or (~right[group == g]).sum() < 20
    ]
    if short:
        need = f"not fitted: each needs 20 answers within {WITHIN_M:.0f} m and 20 others; "
        return False, need + "; ".join(short)
    return True, "fitted"


def _heading_fits(f, right, photo, heading_error_deg, coverage, photos: bool) -> dict:
    """:class:`HeadingFit` per kind of query with enough right answers whose searched
    heading's truth is known (photos only with photo groups: else they promise nothing)."""
    if heading_error_deg is None:
        return {}
    h_err = np.asarray(heading_error_deg, np.float64)
    searched = f[:, FEATURES.index("heading_known")] < 0.5
    lead = f[:, FEATURES.index("lead_heading")]
    out = {}
    for kind, is_photo in zip(HEADING_KINDS, (False, True), strict=True):
        if is_photo and not photos:
            continue
        sel = right & searched & np.isfinite(h_err) & (photo == is_photo)
        h = fit_heading(lead[sel], h_err[sel], coverage)
        if h is not None:
            out[kind] = h
    return out


def fit(
    f: np.ndarray,
    error_m: np.ndarray,
    in_map: np.ndarray,
    prior: np.ndarray,
    *,
    coverage: float = 0.95,
    max_radius_m: float,
    ok_precision: float = 0.9,
    in_map_recall: float = 0.99,
    bins: int = 10,
    meta: dict[str, Any] | None = None,
    photo: np.ndarray | None = None,
    heading_error_deg: np.ndarray | None = None,
) -> Calibration:
    """Fit on rows of features ``f`` with their true ``error_m`` (ignored where not
    ``in_map``) and whether a prior was used. ``ok_precision``: the share of ``ok`` answers
    (of the fit rows, each group) that lie within 25 m; ``in_map_recall``: of in-map queries
    that must not be called ``not_in_map``. ``photo``: which rows are photos (None: none);
    the :data:`PHOTO_GROUPS` are fitted when every one of them has enough rows, else left out
    (``meta["photo_groups"]`` says why). ``heading_error_deg``: the error of each row's
    searched heading (NaN where the heading was given or its truth is unknown)."""
    f = np.asarray(f, np.float64)
    in_map = np.asarray(in_map, bool)
    prior = np.asarray(prior, bool)
    photo = np.zeros(len(f), bool) if photo is None else np.asarray(photo, bool)
    err = np.where(in_map, np.asarray(error_m, np.float64), np.inf)
    right = in_map & (err <= WITHIN_M)
    group = Calibration.group_of(f, prior, photo)
    for g in GROUPS:
        sel = group == g
        if right[sel].sum() < 20 or (~right[sel]).sum() < 20:
            raise BundleError(
                f"calibration needs, for every kind of query ({', '.join(GROUPS)}), at least 20 "
                f"answers within {WITHIN_M:.0f} m and 20 others; {g} has "
                f"{int(right[sel].sum())} and {int((~right[sel]).sum())}: add geotagged frames"
            )
    photos, photo_note = _photo_groups(group, right, photo)
    in_model = Model.fit(f, in_map)
    pm = in_model.predict(f)

    def recall_threshold(sel: np.ndarray) -> float:
        return float(np.quantile(pm[sel], 1.0 - in_map_recall)) if sel.any() else 0.0

    groups = {
        g: _group_fit(f[group == g], err[group == g], right[group == g], in_map[group == g],
                      coverage, max_radius_m, ok_precision, bins)
        for g in GROUPS + (PHOTO_GROUPS if photos else ())
    }  # fmt: skip
    return Calibration(
        coverage=float(coverage),
        max_radius_m=float(max_radius_m),
        in_map=in_model,
        # apart for panoramas and photos: adding photos (lower scores) must not loosen the
        # panoramas' not_in_map threshold
        in_map_threshold=recall_threshold(in_map & ~photo),
        groups=groups,
        ok_precision=float(ok_precision),
        meta={**(meta or {}), "photo_groups": photo_note},
        heading=_heading_fits(f, right, photo, heading_error_deg, coverage, photos),
        photo_in_map_threshold=recall_threshold(in_map & photo) if photos else None,
    )
