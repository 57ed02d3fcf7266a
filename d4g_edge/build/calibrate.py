"""``d4g-edge calibrate``: fit a bundle's trust model on geotagged frames of the user's map.

A query folder holds images (``.jpg``, ``.jpeg``, ``.png``) each with an ``IMAGE.json``
sidecar: ``{"lat": .., "lon": ..}`` (optionally ``"heading_deg"``) for a frame taken at a
known place, or ``{"in_map": false}`` for a frame that shows no place of the map. A frame
whose lat/lon lies outside the bundle's tiles counts as out of the map by itself. For a
drone bundle, ``altitude_m`` and ``pitch_deg`` (from nadir) in the sidecar say where the
drone was (lat/lon are the drone's), as in ``d4g-edge follow``'s sidecars.

Each frame gives three rows of features (:mod:`d4g_edge.trust`): the heading searched on a
randomly rolled copy (what a device without a compass sees), the heading given (when the
sidecar has one), and the heading searched under a position prior of random radius around
a point near the truth (a random tile for out-of-map frames). Synthetic frames that pass the
degenerate-image rules (blurred noise, smooth fields, gradients) are added as out-of-map
rows. The fit is written into the bundle as ``calibration-<sha>.json`` (the manifest names it
and lists its SHA-256); a crash leaves the previous fit in force. The coverage it reached is
printed both on the rows it was fitted on and by 5-fold cross-validation.

Usage::

    d4g-edge calibrate my_bundle --queries geotagged_frames/ [--coverage 0.95]
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from d4g_edge import trust
from d4g_edge.errors import BundleError, D4GEdgeError
from d4g_edge.fileio import atomic_write, atomic_write_json
from d4g_edge.geo import haversine_m, offset_latlon
from d4g_edge.image import load_rgb
from d4g_edge.log import logger

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
PRIOR_RADII_M = (150.0, 3000.0)  # log-uniform radius of the simulated priors


@dataclass
class Rows:
    """Feature rows of a query set and what is true of each."""

    features: np.ndarray  # (N, len(FEATURES))
    error_m: np.ndarray  # (N,) inf where not in the map
    in_map: np.ndarray  # (N,) bool
    prior: np.ndarray  # (N,) bool
    kind: list[str]

    @classmethod
    def empty(cls) -> Rows:
        return cls(np.zeros((0, len(trust.FEATURES))), np.zeros(0), np.zeros(0, bool),
                   np.zeros(0, bool), [])  # fmt: skip

    def add(self, f, err, in_map, prior, kind) -> None:
        self.features = np.vstack([self.features, f[None]])
        self.error_m = np.append(self.error_m, err)
        self.in_map = np.append(self.in_map, in_map)
        self.prior = np.append(self.prior, prior)
        self.kind.append(kind)


def read_sidecar(image: Path) -> dict:
    """The frame's truth: {"lat", "lon", "heading_deg"?} or {"in_map": False}."""
    path = image.with_name(image.name + ".json")
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise D4GEdgeError(
            f"{image} has no sidecar {path.name}: calibration needs each frame's true "
            '{"lat": .., "lon": ..} (or {"in_map": false})'
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise D4GEdgeError(f"{path}: not a JSON object ({err})") from None
    if not isinstance(meta, dict):
        raise D4GEdgeError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("in_map") is False:
        return {"in_map": False, "kind": str(meta.get("kind", "out of map"))}
    try:
        lat, lon = float(meta["lat"]), float(meta["lon"])
        extra = {
            k: None if meta.get(k) is None else float(meta[k])
            for k in ("heading_deg", "altitude_m", "pitch_deg")
        }
    except (KeyError, TypeError, ValueError):
        raise D4GEdgeError(
            f'{path}: expected {{"lat": deg, "lon": deg, "heading_deg"?: deg}} or '
            f'{{"in_map": false}}, got {meta!r}'
        ) from None
    finite = all(v is None or np.isfinite(v) for v in extra.values())
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not finite:
        raise D4GEdgeError(f"{path}: lat/lon/heading out of range: {meta!r}")
    return {"lat": lat, "lon": lon, **extra, "kind": "geotagged"}


def query_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise D4GEdgeError(f"--queries {folder} is not a folder of geotagged frames")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in FRAME_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise D4GEdgeError(f"{folder} holds no .jpg/.jpeg/.png frames")
    return files


def turn_frame(rgb: np.ndarray, view: str, rng) -> np.ndarray:
    """What a device without a compass sees: a random turn of the frame."""
    if view == "drone":
        return np.ascontiguousarray(np.rot90(rgb, int(rng.integers(4))))
    return np.roll(rgb, int(rng.integers(rgb.shape[1])), axis=1)


def random_prior(rng, lat, lon) -> tuple[float, float, float]:
    radius = float(np.exp(rng.uniform(*np.log(PRIOR_RADII_M))))
    r, a = 0.7 * radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
    plat, plon = offset_latlon(lat, lon, r * np.sin(a), r * np.cos(a))
    return float(plat), float(plon), radius


class Collector:
    """Feature rows of frames through one :class:`~d4g_edge.localizer.Localizer`."""

    def __init__(self, loc, seed: int = 0) -> None:
        self.loc = loc
        self.rng = np.random.default_rng(seed)
        t = loc.bundle.tiles
        self.tiles = t
        # a point is in the map when a tile centre lies within 3/4 of a tile side of it
        self.in_map_m = 0.75 * float(np.nanmedian(t.footprint_m))

    def truth_in_map(self, lat: float, lon: float) -> bool:
        d = haversine_m(lat, lon, self.tiles.lat, self.tiles.lon)
        return bool(np.nanmin(d) <= self.in_map_m)

    def _row(self, rows: Rows, rgb, truth, heading, prior, kind, flight=None) -> None:
        obs = self.loc.observe(rgb, top_k=1, heading=heading, prior=prior, **(flight or {}))
        if obs.features is None:  # a degenerate image: not_in_map by rule, nothing to fit
            return
        in_map = truth is not None and self.truth_in_map(*truth)
        err = float(haversine_m(obs.fix.lat, obs.fix.lon, *truth)) if in_map else np.inf
        rows.add(obs.features, err, in_map, prior is not None, kind)

    def frame(self, rows: Rows, rgb: np.ndarray, meta: dict, kind: str | None = None) -> None:
        kind = kind or meta.get("kind", "geotagged")
        truth = (meta["lat"], meta["lon"]) if "lat" in meta else None
        flight = None
        if self.loc.view == "drone" and meta.get("altitude_m") is not None:
            # the drone's position: the answer is moved back from what the frame shows
            flight = {"altitude_m": meta["altitude_m"], "pitch_deg": meta.get("pitch_deg")}
        if meta.get("heading_deg") is not None:
            self._row(rows, rgb, truth, meta["heading_deg"], None, kind, flight)
        # an oblique drone frame cannot be turned (its offset follows the heading): the
        # device without a compass sees it as it is, heading searched
        oblique = flight is not None and bool(flight["pitch_deg"])
        turned = rgb if oblique else turn_frame(rgb, self.loc.view, self.rng)
        self._row(rows, turned, truth, None, None, kind, flight)
        if truth is not None and self.truth_in_map(*truth):
            prior = random_prior(self.rng, *truth)
        else:  # the user believes they are somewhere in the map; they are not
            i = int(self.rng.integers(len(self.tiles)))
            prior = random_prior(self.rng, float(self.tiles.lat[i]), float(self.tiles.lon[i]))
        try:
            self._row(rows, turned, truth, None, prior, kind, flight)
        except D4GEdgeError:  # no tile within a prior drawn at the map's edge
            pass

    def folder(self, folder: Path, rows: Rows | None = None) -> Rows:
        rows = rows or Rows.empty()
        for path in query_files(folder):
            meta = read_sidecar(path)
            try:
                rgb = load_rgb(path)
            except D4GEdgeError as err:
                logger.warning("skipping %s: %s", path, err)
                continue
            self.frame(rows, rgb, meta)
        return rows

    def synthetic(self, rows: Rows, n: int = 120, shape=(128, 512)) -> Rows:
        """Out-of-map rows from frames that show nothing yet pass the degenerate-image rules."""
        h, w = shape
        for i in range(n):
            kind = ("blurred noise", "smooth field", "gradient")[i % 3]
            if kind == "gradient":
                a, b = self.rng.integers(0, 256, 3), self.rng.integers(0, 256, 3)
                t = np.linspace(0, 1, w)[None, :, None] * self.rng.uniform(0.3, 1)
                img = np.broadcast_to(a + (b - a) * t, (h, w, 3)).astype(np.uint8)
                img = np.clip(img + self.rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
            else:
                small = (4, 16) if kind == "smooth field" else (h, w)
                noise = self.rng.integers(0, 256, (*small, 3), dtype=np.uint8)
                pil = Image.fromarray(noise).resize((w, h), Image.Resampling.BICUBIC)
                img = np.asarray(pil.filter(ImageFilter.GaussianBlur(self.rng.uniform(1, 6))))
            self.frame(rows, img, {"in_map": False}, kind)
        return rows


def coverage_of(cal: trust.Calibration, rows: Rows) -> tuple[float, float]:
    """Share of in-map rows whose error is within their radius, and share of right answers
    (within 25 m) that are ``ok``."""
    covered, ok = [], []
    for i in np.flatnonzero(rows.in_map):
        # a prior row is judged in the prior group; an infinite disc caps nothing
        v = cal.judge(rows.features[i], np.inf if rows.prior[i] else None)[0]
        covered.append(v.uncertainty_m is not None and rows.error_m[i] <= v.uncertainty_m)
        if rows.error_m[i] <= trust.WITHIN_M:
            ok.append(v.status == "ok")
    return float(np.mean(covered)), float(np.mean(ok)) if ok else 0.0


def cross_validated_coverage(rows: Rows, coverage: float, max_radius_m: float, folds=5):
    """:func:`coverage_of`, each row predicted by a fit on the other folds (the honest
    estimate of what the fit reaches on new frames)."""
    fold = np.random.default_rng(1).integers(folds, size=len(rows.error_m))
    covered, ok = [], []
    for k in range(folds):
        test = fold == k
        cal = trust.fit(
            rows.features[~test], rows.error_m[~test], rows.in_map[~test], rows.prior[~test],
            coverage=coverage, max_radius_m=max_radius_m,
        )  # fmt: skip
        held = Rows(rows.features[test], rows.error_m[test], rows.in_map[test],
                    rows.prior[test], [])  # fmt: skip
        c, o = coverage_of(cal, held)
        covered.append((c, int(held.in_map.sum())))
        ok.append((o, int((held.in_map & (held.error_m <= trust.WITHIN_M)).sum())))
    mean = lambda pairs: sum(v * n for v, n in pairs) / max(1, sum(n for _, n in pairs))  # noqa: E731
    return mean(covered), mean(ok)


def write_calibration(bundle_root: Path, cal: trust.Calibration) -> Path:
    """Write ``cal`` into the bundle: the new file first, then the manifest naming it."""
    from d4g_edge.bundle import MANIFEST, read_manifest

    manifest = read_manifest(bundle_root)
    data = (json.dumps(cal.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    sha = hashlib.sha256(data).hexdigest()
    name = f"calibration-{sha[:12]}.json"
    atomic_write(bundle_root / name, data)
    old = (manifest.get("calibration") or {}).get("file")
    files = dict(manifest["files"])
    if isinstance(old, str) and old != name:
        files.pop(old, None)
    files[name] = sha
    manifest = {
        **manifest,
        "files": files,
        "calibration": {
            "file": name,
            "sha256": sha,
            "coverage": cal.coverage,
            "fitted": cal.meta.get("fitted"),
            "queries": cal.meta.get("queries"),
        },
    }
    atomic_write_json(bundle_root / MANIFEST, manifest)
    if isinstance(old, str) and old != name and trust.FILE_RE.fullmatch(old):
        (bundle_root / old).unlink(missing_ok=True)
    return bundle_root / name


def calibrate(
    bundle: str | Path,
    queries: str | Path,
    *,
    coverage: float = 0.95,
    synthetic: int = 120,
    seed: int = 0,
    command: str | None = None,
) -> tuple[trust.Calibration, dict]:
    """Fit and write a bundle's trust model; returns it and what it reached."""
    from d4g_edge.localizer import Localizer

    if not 0.5 <= float(coverage) < 1.0:
        raise D4GEdgeError(f"--coverage must be in [0.5, 1), got {coverage}")
    bundle, queries = Path(bundle), Path(queries)
    files = query_files(queries)  # checked before the bundle loads
    loc = Localizer(bundle, threads=1)
    col = Collector(loc, seed)
    t0 = time.perf_counter()
    rows = col.folder(queries)
    col.synthetic(rows, synthetic)
    t = loc.bundle.tiles
    span = haversine_m(t.lat.min(), t.lon.min(), t.lat.max(), t.lon.max())
    extent_m = float(span) + float(np.nanmax(t.footprint_m))
    meta = {
        "fitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "queries": str(queries),
        "frames": len(files),
        "rows": len(rows.error_m),
        "rows_in_map": int(rows.in_map.sum()),
        "command": command,
        "seed": seed,
    }
    try:
        cal = trust.fit(rows.features, rows.error_m, rows.in_map, rows.prior,
                        coverage=coverage, max_radius_m=extent_m, meta=meta)  # fmt: skip
    except BundleError as err:
        raise D4GEdgeError(f"cannot calibrate on {queries}: {err}") from None
    cv_cov, cv_ok = cross_validated_coverage(rows, coverage, extent_m)
    fit_cov, _ = coverage_of(cal, rows)
    report = {
        "coverage_asked": coverage,
        "coverage_fit": fit_cov,
        "coverage_cv": cv_cov,
        "ok_rate_of_right_cv": cv_ok,
        "seconds": time.perf_counter() - t0,
        **meta,
    }
    # the tracker's margin is fitted on drives (benchmarks.bench_track): a refit of the
    # single-frame model keeps it
    old = loc.calibration.track if loc.calibration is not None else {}
    cal = replace(
        cal, track=dict(old), meta={**meta, "coverage_cv": cv_cov, "coverage_fit": fit_cov}
    )
    write_calibration(bundle, cal)
    return cal, report
