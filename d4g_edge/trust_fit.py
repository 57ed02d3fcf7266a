"""Fitting a :class:`~d4g_edge.calibration.Calibration` on held-out geotagged queries
(:func:`fit`, run by ``d4g-edge calibrate``): per group a ``p_within_25m`` model, its ``ok``
threshold (:func:`ok_threshold_for`) and split-conformal radii per probability bin; the
``p_in_map`` model and thresholds; heading-error fits. :mod:`d4g_edge.trust` says why."""

from __future__ import annotations

from typing import Any

import numpy as np

from d4g_edge.calibration import Calibration, GroupFit
from d4g_edge.conformal import conformal_quantile, fit_heading
from d4g_edge.errors import BundleError
from d4g_edge.trust_features import FEATURES, GROUPS, HEADING_KINDS, PHOTO_GROUPS, WITHIN_M
from d4g_edge.trust_model import Model


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
    edges, radii = bin_radii(pw[in_map], err[in_map], coverage, max_radius_m, bins)
    return GroupFit(
        within=model,
        ok_threshold=ok_threshold_for(pw, right, ok_precision),
        bin_edges=tuple(float(e) for e in edges),
        radius=tuple(float(r) for r in radii),
        rows=len(f),
    )


def bin_radii(p, err, coverage: float, max_radius_m: float, bins: int):
    """(edges, radii): ``bins`` quantile bins of the in-map rows' probabilities ``p`` (the
    first edge 0) and each bin's split-conformal ``coverage`` radius of their errors
    ``err``, capped at ``max_radius_m`` and made monotone."""
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[:-1]))
    edges[0] = 0.0
    b = np.clip(np.searchsorted(edges, p, "right") - 1, 0, None)
    radii = np.array([conformal_quantile(err[b == i], coverage) for i in range(len(edges))])
    # a likelier answer never gets a wider radius than a less likely one
    return edges, np.maximum.accumulate(np.minimum(radii, max_radius_m)[::-1])[::-1]


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
