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

The code lives in four modules, all re-exported here: :mod:`d4g_edge.trust_features` (the
features, degenerate images, group names), :mod:`d4g_edge.trust_model` (logistic + isotonic
models), :mod:`d4g_edge.calibration` (:class:`Calibration`: judging, the file) and
:mod:`d4g_edge.trust_fit` (:func:`fit`).

Usage::

    from d4g_edge.trust import Calibration, features, image_problem
    cal = Calibration.from_bundle(bundle)            # None when the bundle has no fit
    f = features(scores, dist_m, far_m=90.0, heading_scores=None)
    verdict = cal.judge(f[None], prior_cap_m=None)    # p_within_25m, p_in_map, radius, status
"""

from __future__ import annotations

from d4g_edge.calibration import (
    FILE_RE,
    NO_PHOTO_FIT,
    SCHEMA,
    Calibration,
    GroupFit,
    Verdict,
)
from d4g_edge.conformal import (
    HeadingFit,
    conformal_quantile,
    fit_heading,
    normal_quantile,
    sigma_of_bound,
)
from d4g_edge.trust_features import (
    FEATURES,
    GROUPS,
    HEADING_KINDS,
    MAX_ASPECT,
    MIN_NEIGHBOUR_CORR,
    MIN_SIDE_PX,
    MIN_STD,
    PHOTO_GROUPS,
    PHOTO_PREFIX,
    STATUSES,
    TRUST_K,
    WITHIN_M,
    features,
    image_problem,
)
from d4g_edge.trust_fit import fit, ok_threshold_for
from d4g_edge.trust_model import Model, fit_logistic, isotonic

__all__ = [
    "FEATURES",
    "FILE_RE",
    "GROUPS",
    "HEADING_KINDS",
    "MAX_ASPECT",
    "MIN_NEIGHBOUR_CORR",
    "MIN_SIDE_PX",
    "MIN_STD",
    "NO_PHOTO_FIT",
    "PHOTO_GROUPS",
    "PHOTO_PREFIX",
    "SCHEMA",
    "STATUSES",
    "TRUST_K",
    "WITHIN_M",
    "Calibration",
    "GroupFit",
    "HeadingFit",
    "Model",
    "Verdict",
    "conformal_quantile",
    "features",
    "fit",
    "fit_heading",
    "fit_logistic",
    "image_problem",
    "isotonic",
    "normal_quantile",
    "ok_threshold_for",
    "sigma_of_bound",
]
