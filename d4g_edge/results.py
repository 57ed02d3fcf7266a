"""What :class:`d4g_edge.localizer.Localizer` answers: a :class:`Localization` (position,
heading, the trust verdict of :mod:`d4g_edge.trust`) with its :class:`Candidate` tiles, and
a tracker's :class:`Observation`; and how one is built from a retrieval with its verdict,
calibrated or not (:func:`answer`).

Trust (:mod:`d4g_edge.trust`). Every answer carries ``status`` (``"ok"``, ``"uncertain"``,
``"not_in_map"``), ``p_within_25m`` (the calibrated probability that it lies within 25 m of
the truth) and ``uncertainty_m``, the radius that holds the true position with probability
``coverage`` (0.95), fitted on held-out geotagged queries (``d4g-edge calibrate``) and stored
in the bundle. Degenerate images (tiny, constant, noise) and places the bundle does not show
are ``not_in_map`` with ``uncertainty_m`` None: no fix. These do not depend on ``top_k``: the
features behind them always come from the best ``TRUST_K`` tiles. A bundle without a fit
answers ``uncertain`` with the score-weighted spread of the top tiles as an uncalibrated
``uncertainty_m``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from d4g_edge import drone, ground_query
from d4g_edge.calibration import Calibration
from d4g_edge.geo import haversine_m
from d4g_edge.ground_query import refine_heading
from d4g_edge.trust_features import features


@dataclass(frozen=True)
class Candidate:
    tile_id: int
    lat: float
    lon: float
    score: float
    distance_m: float  # from the best candidate


@dataclass(frozen=True)
class Localization:
    lat: float
    lon: float
    score: float
    heading_deg: float | None
    uncertainty_m: float | None  # radius holding the truth with probability `coverage`
    candidates: tuple[Candidate, ...]
    status: str = "uncertain"  # "ok", "uncertain" or "not_in_map" (see d4g_edge.trust)
    p_within_25m: float | None = None  # calibrated P(error <= 25 m); None without a fit
    p_in_map: float | None = None  # calibrated P(the place is in the bundle)
    coverage: float | None = None  # the probability uncertainty_m is fitted to
    heading_known: bool = False  # given by the caller (else estimated by the search)
    reason: str | None = None  # why not "ok"
    # 1-sigma of heading_deg, calibrated on right answers (d4g_edge.trust); None when the
    # heading was given, or the calibration has no heading fit
    heading_sigma_deg: float | None = None
    fov_deg: float | None = None  # ground bundles: the field of view read (360: a panorama)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Observation:
    """One frame's retrieval: top rows and scores (best heading's), that heading, and the
    single-frame answer with its status."""

    ids: np.ndarray
    scores: np.ndarray
    heading_deg: float
    fix: Localization
    features: np.ndarray | None = None  # d4g_edge.trust.FEATURES; None for a degenerate image


def answer(
    tiles,
    ids: np.ndarray,
    scores: np.ndarray,
    heading: float,
    flight,
    heading_scores: np.ndarray | None,
    problem: str | None,
    prior,
    top_k: int,
    *,
    photo_query: bool,
    heading_known: bool,
    fov_deg: float | None,
    far_m: float,
    calibration: Calibration | None,
    temperature: float,
    grid_step_m: float,
) -> tuple[Localization, np.ndarray | None]:
    """One image's :class:`Localization` and trust features from its best roll's rows
    (``ids``, best first, one per tile, at least ``TRUST_K`` when the bundle has them) and
    ``scores`` in ``tiles``; ``problem``: why the image cannot show a place (then
    ``not_in_map``, no features). The answer is built once, with every field, rather than
    copied field by field (it runs on every query)."""
    # the tiles show where the camera looks; the drone is behind that point
    lat, lon = drone.camera_to_drone(tiles.lat[ids], tiles.lon[ids], flight, heading)
    dist = haversine_m(lat[0], lon[0], lat, lon)
    fields = {
        "lat": float(lat[0]),
        "lon": float(lon[0]),
        "score": float(scores[0]),
        "heading_deg": float(heading),
        "uncertainty_m": None,
        "candidates": candidates(tiles.tile_id, ids, lat, lon, scores, dist, top_k),
        "heading_known": heading_known,
        "fov_deg": fov_deg,
    }
    if problem is not None:
        return Localization(**fields, status="not_in_map", reason=problem), None
    step = 360.0 / len(heading_scores) if heading_scores is not None else 45.0
    f = features(scores, dist, far_m, heading_scores, step)
    if calibration is None:
        fields |= _spread(scores, dist, top_k, temperature, grid_step_m)
    else:
        fields |= _verdict(fields["lat"], fields["lon"], f, calibration, prior, photo_query)
    return Localization(**fields), f


def observation(
    ids, scores, hs, h_in, flight, problem, fov, prior, top_k, *, tiles, ground, **judging
) -> Observation:
    """One image's :class:`Observation` from the rows and scores of its rolls (headings
    ``hs``; ``h_in``: the heading given, None when searched): the best roll's answer, its
    heading refined when it was searched; ``judging``: :func:`answer`'s ``far_m``,
    ``calibration``, ``temperature`` and ``grid_step_m``."""
    best = int(np.argmax(scores[:, 0]))
    searched = h_in is None and len(hs) > 1
    h = float(h_in) % 360.0 if h_in is not None else float(hs[best])
    if searched and ground and ground_query.REFINE_HEADING:
        h = (h + refine_heading(scores[:, 0], best) * 360.0 / len(hs)) % 360.0
    fix, f = answer(
        tiles,
        ids[best],
        scores[best],
        h,
        flight,
        scores[:, 0] if searched else None,
        problem,
        prior,
        top_k,
        photo_query=ground and fov is not None and fov < 360.0,
        heading_known=h_in is not None,
        fov_deg=fov,
        **judging,
    )
    return Observation(ids[best][:top_k], scores[best][:top_k], float(h), fix, f)


def candidates(tile_id, ids, lat, lon, scores, dist, top_k: int) -> tuple[Candidate, ...]:
    """The top ``top_k`` rows as candidates (``lat`` / ``lon`` / ``dist`` per row)."""
    # tolist(): the same Python floats and ints as float() / int() of each element
    return tuple(
        map(
            Candidate,
            tile_id[ids[:top_k]].tolist(),
            lat[:top_k].tolist(),
            lon[:top_k].tolist(),
            scores[:top_k].tolist(),
            dist[:top_k].tolist(),
        )
    )


def _spread(scores, dist, top_k: int, temperature: float, grid_step_m: float) -> dict:
    """The fields of an answer from a bundle without a calibration: ``uncertain`` with the
    score-weighted spread of the top-k, plus half the grid step, as its radius."""
    w = np.exp((scores[:top_k] - scores[0]) / temperature)
    spread2 = float((w * dist[:top_k] ** 2).sum() / w.sum())
    half = grid_step_m / 2
    return {
        "uncertainty_m": float(np.sqrt(spread2 + half**2)),
        "reason": "the bundle has no calibration (d4g-edge calibrate)",
    }


def _verdict(lat: float, lon: float, f, cal: Calibration, prior, photo_query: bool) -> dict:
    """The fields of the calibration's verdict on features ``f`` of an answer at
    ``lat``/``lon``; a ``prior``'s disc (lat, lon, radius_m) caps the radius."""
    cap = None
    if prior is not None:
        p_lat, p_lon, p_radius = (float(v) for v in prior)
        cap = float(haversine_m(lat, lon, p_lat, p_lon)) + p_radius
    v = cal.judge(f[None], cap, photo=photo_query)[0]
    return {
        "uncertainty_m": v.uncertainty_m,
        "status": v.status,
        "p_within_25m": v.p_within_25m,
        "p_in_map": v.p_in_map,
        "coverage": cal.coverage,
        "reason": v.reason,
        "heading_sigma_deg": v.heading_sigma_deg,
    }
