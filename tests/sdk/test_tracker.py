"""d4g_edge.tracker: on a synthetic similarity field with a known truth, the filter's error is
far below the single-frame error, with and without odometry."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.geo import GeoReference, haversine_m
from d4g_edge.tracker import Tracker

SPACING = 10.0
GRID = 40


def _field():
    ref = GeoReference(40.0, -88.0)
    e, n = np.meshgrid(np.arange(GRID) * SPACING, -np.arange(GRID) * SPACING)
    lat, lon = ref.metres_to_latlon(e.ravel(), n.ravel())
    return ref, np.stack([e.ravel(), n.ravel()], 1), lat, lon


def _scores(xy, truth, rng, noise=0.08, top_k=60):
    """Cosine-like scores: a bump at the truth plus noise that often wins on a single frame."""
    d2 = ((xy - truth) ** 2).sum(1)
    s = 0.5 + 0.2 * np.exp(-d2 / (2 * 15.0**2)) + rng.normal(0, noise, len(xy))
    ids = np.argsort(-s)[:top_k]
    return ids, s[ids]


@pytest.mark.parametrize("odometry", [True, False])
def test_tracked_error_well_below_single_frame(odometry):
    ref, xy, lat, lon = _field()
    rng = np.random.default_rng(0)
    tracker = Tracker(lat, lon, temperature=0.05, walk_sigma_m=12.0)
    truth = np.array([60.0, -200.0])
    step = np.array([8.0, 0.0]) if odometry else np.zeros(2)  # east, 8 m per frame
    single, tracked = [], []
    for k in range(30):
        if k:
            truth = truth + step
        ids, s = _scores(xy, truth, rng)
        fix = tracker.step(ids, s, odometry=(8.0, 90.0) if odometry else None)
        t_lat, t_lon = ref.metres_to_latlon(*truth)
        single.append(float(haversine_m(lat[ids[0]], lon[ids[0]], t_lat, t_lon)))
        tracked.append(float(haversine_m(fix.lat, fix.lon, t_lat, t_lon)))
    late_single, late_tracked = np.mean(single[10:]), np.mean(tracked[10:])
    assert late_single > 60.0, late_single  # the field is genuinely ambiguous per frame
    assert late_tracked < 15.0 and late_tracked < late_single / 4, (late_tracked, late_single)
    # the 95 % radius of a converged track: a few grid steps, not the whole grid
    assert fix.uncertainty_m < 60.0 and fix.steps == 30


def test_uniform_start_and_reset():
    _, _, lat, lon = _field()
    tr = Tracker(lat, lon)
    fix = tr.estimate()
    assert fix.uncertainty_m > 100  # nothing known yet: the whole grid
    tr.step(np.array([5]), np.array([0.9]))
    tr.reset()
    assert tr.steps == 0 and np.allclose(tr.p, 1 / len(lat))


def test_predict_moves_mass_by_the_odometry():
    _, _, lat, lon = _field()
    tr = Tracker(lat, lon, odometry_sigma_m=1.0, odometry_rel_sigma=0.0)
    start = 20 * GRID + 10
    tr.p[:] = 0
    tr.p[start] = 1.0
    tr.predict((30.0, 90.0))  # 30 m east = three columns
    assert int(np.argmax(tr.p)) == start + 3
    tr.predict((20.0, 180.0))  # 20 m south = two rows down
    assert int(np.argmax(tr.p)) == start + 3 + 2 * GRID
    assert tr.p.sum() == pytest.approx(1.0)
