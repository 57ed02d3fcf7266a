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
a point near the truth (a random tile for out-of-map frames). For a ground bundle, each
panorama (an image at least 2:1) also gives a phone photo cut from it
(:func:`d4g_edge.photo.pano_to_pinhole`: a seeded random FoV uniform in 60-180 degrees,
a random heading, level, 4:3, as many columns per degree as the panorama) and its three
rows (heading given when the sidecar has the panorama's, searched, searched under a prior),
localized with ``fov_deg``: the photo groups of :mod:`d4g_edge.trust`. Synthetic frames that
pass the degenerate-image rules (blurred noise, smooth fields, gradients) are added as
out-of-map rows.

The heading error of every searched heading whose truth is known (the sidecar's
``heading_deg``, turned by the random roll or the photo's heading) is kept for the heading
fit (``heading_sigma_deg``); without ``heading_deg`` in the sidecars there is none.

The fit is written into the bundle as ``calibration-<sha>.json`` (the manifest names it
and lists its SHA-256); a crash leaves the previous fit in force. The coverage it reached is
printed both on the rows it was fitted on and by 5-fold cross-validation, for panoramas and
photos apart.

Usage::

    d4g-edge calibrate my_bundle --queries geotagged_frames/ [--coverage 0.95]
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from d4g_edge import trust
from d4g_edge.build.calibration_rows import (  # noqa: F401  (public here too, as before)
    Collector,
    Rows,
    query_files,
    random_prior,
    read_sidecar,
    turn_frame,
)
from d4g_edge.errors import BundleError, D4GEdgeError
from d4g_edge.fileio import atomic_write, atomic_write_json
from d4g_edge.geo import haversine_m
from d4g_edge.log import logger


def coverage_of(cal: trust.Calibration, rows: Rows) -> tuple[float, float]:
    """Share of in-map rows whose error is within their radius, and share of right answers
    (within 25 m) that are ``ok``."""
    covered, ok = [], []
    for i in np.flatnonzero(rows.in_map):
        # a prior row is judged in the prior group; an infinite disc caps nothing
        v = cal.judge(rows.features[i], np.inf if rows.prior[i] else None, photo=rows.photo[i])
        v = v[0]
        covered.append(v.uncertainty_m is not None and rows.error_m[i] <= v.uncertainty_m)
        if rows.error_m[i] <= trust.WITHIN_M:
            ok.append(v.status == "ok")
    return float(np.mean(covered)) if covered else float("nan"), float(np.mean(ok)) if ok else 0.0


def heading_coverage(cal: trust.Calibration, rows: Rows) -> float:
    """Share of right answers with a searched, known-truth heading whose error is within
    1.96 ``heading_sigma_deg`` (the 95 % bound; NaN when none has a sigma)."""
    hits = []
    for i in np.flatnonzero(
        rows.in_map & (rows.error_m <= trust.WITHIN_M) & np.isfinite(rows.heading_error_deg)
    ):
        sigma = cal.heading_sigma(rows.features[i], photo=bool(rows.photo[i]))
        if sigma is not None:
            bound = sigma * trust.normal_quantile(cal.coverage)
            hits.append(rows.heading_error_deg[i] <= bound)
    return float(np.mean(hits)) if hits else float("nan")


def _fit(rows: Rows, coverage: float, max_radius_m: float, meta=None) -> trust.Calibration:
    return trust.fit(
        rows.features, rows.error_m, rows.in_map, rows.prior, coverage=coverage,
        max_radius_m=max_radius_m, meta=meta, photo=rows.photo,
        heading_error_deg=rows.heading_error_deg,
    )  # fmt: skip


def cross_validated_coverage(rows: Rows, coverage: float, max_radius_m: float, folds=5):
    """:func:`coverage_of` (panoramas, photos) and :func:`heading_coverage`, each row
    predicted by a fit on the other folds (the honest estimate of what the fit reaches on new
    frames): a dict of weighted means."""
    fold = np.random.default_rng(1).integers(folds, size=len(rows.error_m))
    parts: dict[str, list[tuple[float, int]]] = {}

    def add(key, value, n):
        if n and np.isfinite(value):
            parts.setdefault(key, []).append((value, n))

    for k in range(folds):
        test = fold == k
        cal = _fit(rows.take(~test), coverage, max_radius_m)
        held = rows.take(test)
        for name, sel in (("", ~held.photo), ("_photo", held.photo)):
            part = held.take(sel)
            c, o = coverage_of(cal, part)
            add("coverage" + name, c, int(part.in_map.sum()))
            add("ok_rate_of_right" + name, o,
                int((part.in_map & (part.error_m <= trust.WITHIN_M)).sum()))  # fmt: skip
        right = held.in_map & (held.error_m <= trust.WITHIN_M)
        add("heading_coverage", heading_coverage(cal, held),
            int((right & np.isfinite(held.heading_error_deg)).sum()))  # fmt: skip
    return {k: sum(v * n for v, n in p) / sum(n for _, n in p) for k, p in parts.items()}


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
    photos: bool = True,
) -> tuple[trust.Calibration, dict]:
    """Fit and write a bundle's trust model; returns it and what it reached. ``photos``: add
    the photo rows (ground bundles; without them photos are judged as the module says)."""
    from d4g_edge.localizer import DEFAULT_HEADINGS, PHOTO_HEADINGS, Localizer

    if not 0.5 <= float(coverage) < 1.0:
        raise D4GEdgeError(f"--coverage must be in [0.5, 1), got {coverage}")
    bundle, queries = Path(bundle), Path(queries)
    files = query_files(queries)  # checked before the bundle loads
    loc = Localizer(bundle, threads=1)
    col = Collector(loc, seed, photos=photos)
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
        "rows_photo": int(rows.photo.sum()),
        "headings": {"panorama": loc.headings, "photo": loc.photo_headings},
        "command": command,
        "seed": seed,
    }
    if (loc.headings, loc.photo_headings) != (DEFAULT_HEADINGS, PHOTO_HEADINGS):
        logger.warning("calibrating at %s headings, not the SDK's defaults", meta["headings"])
    try:
        cal = _fit(rows, coverage, extent_m, meta)
    except BundleError as err:
        raise D4GEdgeError(f"cannot calibrate on {queries}: {err}") from None
    if cal.meta["photo_groups"] != "fitted" and rows.photo.any():
        logger.warning("photo groups %s", cal.meta["photo_groups"])
    cv = cross_validated_coverage(rows, coverage, extent_m)
    fit_cov, _ = coverage_of(cal, rows.take(~rows.photo))
    report = {
        "coverage_asked": coverage,
        "coverage_fit": fit_cov,
        "coverage_cv": cv.get("coverage", float("nan")),
        "ok_rate_of_right_cv": cv.get("ok_rate_of_right", float("nan")),
        "coverage_cv_photo": cv.get("coverage_photo"),
        "ok_rate_of_right_cv_photo": cv.get("ok_rate_of_right_photo"),
        "heading_coverage_cv": cv.get("heading_coverage"),
        "photo_groups": cal.meta["photo_groups"],
        "heading_fits": {
            k: {"rows": h.rows, "bound_deg": list(h.bound_deg)} for k, h in cal.heading.items()
        },
        "seconds": time.perf_counter() - t0,
        **meta,
    }
    # the tracker's margin is fitted on drives (benchmarks.bench_track): a refit of the
    # single-frame model keeps it
    old = loc.calibration.track if loc.calibration is not None else {}
    cal = replace(
        cal,
        track=dict(old),
        meta={**cal.meta, "coverage_cv": report["coverage_cv"], "coverage_fit": fit_cov,
              "coverage_cv_photo": report["coverage_cv_photo"],
              "heading_coverage_cv": report["heading_coverage_cv"]},
    )  # fmt: skip
    write_calibration(bundle, cal)
    return cal, report
