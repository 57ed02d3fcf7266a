"""A fitted trust model and its file (:mod:`d4g_edge.trust` says what it promises).

:class:`Calibration` judges rows of :data:`~d4g_edge.trust_features.FEATURES` into a
:class:`Verdict` (``p_within_25m``, ``p_in_map``, the coverage radius, ``status``) and reads
and writes the bundle's ``calibration-<sha>.json``; :func:`d4g_edge.trust_fit.fit` fits one.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge.conformal import HeadingFit, sigma_of_bound
from d4g_edge.errors import BundleError, BundleSchemaError
from d4g_edge.trust_features import (
    FEATURES,
    GROUPS,
    HEADING_KINDS,
    PHOTO_GROUPS,
    PHOTO_PREFIX,
)
from d4g_edge.trust_model import Model

SCHEMA = "d4g-edge/calibration/1"
# calibration-<first 12 hex of its SHA-256>.json: a refit writes a new file, then swaps the
# manifest, so a crash between the two leaves the old fit in force, never a broken bundle
FILE_RE = re.compile(r"calibration-[0-9a-f]{12}\.json")
NO_PHOTO_FIT = (
    "photo judged by a calibration without photo groups; refit it with d4g-edge calibrate "
    "(it adds photos cut from the calibration panoramas)"
)
_KNOWN = {True: "heading_known", False: "heading_unknown"}  # group_of's names of the heading


@dataclass(frozen=True)
class Verdict:
    p_within_25m: float
    p_in_map: float
    uncertainty_m: float | None  # the radius at ``coverage``; None when not in the map
    status: str
    reason: str | None
    heading_sigma_deg: float | None = None  # 1-sigma of a searched heading (d4g_edge.trust)


@dataclass(frozen=True)
class GroupFit:
    """The fit of one kind of query (Mondrian conformal: each kind keeps its own promise)."""

    within: Model  # p_within_25m
    ok_threshold: float
    bin_edges: tuple[float, ...]  # of p_within_25m, ascending, first 0
    radius: tuple[float, ...]  # the coverage radius per bin (inf: cannot be promised)
    rows: int

    def radius_at(self, p_within: float) -> float:
        """The coverage radius of an answer whose p_within_25m is ``p_within``: its bin's
        (below the first edge: the first bin; past the last: the last)."""
        b = bisect.bisect_right(self.bin_edges, p_within) - 1
        return float(self.radius[min(max(b, 0), len(self.radius) - 1)])


@dataclass(frozen=True)
class Calibration:
    """A fitted trust model (see :mod:`d4g_edge.trust`); JSON-serialisable."""

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
        known = (np.atleast_2d(f)[:, FEATURES.index("heading_known")] > 0.5).tolist()
        prior, photo = (_per_row(v, len(known)) for v in (prior, photo))
        # in Python, not numpy's string functions: 20 us a localize() for one row
        names = [
            (PHOTO_PREFIX if ph else "") + ("prior" if pr else _KNOWN[kn])
            for kn, pr, ph in zip(known, prior, photo, strict=True)
        ]
        return np.array(names, dtype=str)

    def _fitted(self, groups: np.ndarray) -> np.ndarray:
        """The fitted group that judges each group: in a calibration without photo groups,
        ``heading_unknown`` judges every photo (measured on the bundled default's old fit:
        its heading_known radius held 65 % of FoV-90 photos with their heading given, its
        heading_unknown radius 98 %; benchmarks.bench_photo)."""
        if self.has_photo_groups:
            return groups
        g = [("heading_unknown" if n.startswith(PHOTO_PREFIX) else n) for n in groups]
        return np.array(g, dtype=str)

    def p_within(
        self, f: np.ndarray, prior: bool | np.ndarray = False, photo: bool | np.ndarray = False
    ) -> np.ndarray:
        f = np.atleast_2d(f)
        return self._p_within(f, self._fitted(self.group_of(f, prior, photo)))

    def _p_within(self, f: np.ndarray, g: np.ndarray) -> np.ndarray:
        """:meth:`p_within` of rows whose fitted groups are ``g``."""
        names = set(g.tolist())
        if len(names) == 1:  # one kind of query (a localize() call): no masks
            return self.groups[names.pop()].within.predict(f)
        out = np.zeros(len(f))
        for name in sorted(names):
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
        """The coverage radius of each ``p_within`` of ``group``'s answers (at most the map's
        diameter)."""
        gf = self.groups[group]
        r = [gf.radius_at(float(p)) for p in np.atleast_1d(p_within)]
        return np.minimum(np.array(r, np.float64), self.max_radius_m)

    def judge(
        self, f: np.ndarray, prior_cap_m: float | None = None, *, photo: bool = False
    ) -> list[Verdict]:
        """A verdict per row of features; ``prior_cap_m``: the farthest point of the prior's
        disc from the answer (the truth is promised to lie in it); None: no prior. ``photo``:
        the rows are photos (see :mod:`d4g_edge.trust` for a calibration without photo
        groups)."""
        f = np.atleast_2d(f)
        prior = prior_cap_m is not None
        groups = self._fitted(self.group_of(f, prior, photo))
        unfitted = photo and not self.has_photo_groups
        pw, pm = self._p_within(f, groups), self.p_in_map(f)
        out = []
        in_threshold = self.in_map_threshold
        if photo and self.photo_in_map_threshold is not None:
            in_threshold = self.photo_in_map_threshold
        for row, a, b, g in zip(f, pw, pm, groups, strict=True):
            gf = self.groups[str(g)]
            r = min(gf.radius_at(float(a)), self.max_radius_m)
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


def _per_row(value: bool | np.ndarray, n: int) -> list[bool]:
    """A flag for all ``n`` rows, or one per row, as a list of bools."""
    if np.ndim(value) == 0:
        return [bool(value)] * n
    return np.broadcast_to(np.asarray(value, bool), (n,)).tolist()
