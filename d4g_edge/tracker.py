"""Fuse a stream of frames into one track: a discrete Bayes (histogram) filter over tiles.

The state is a probability per tile centre. Each step *predicts* (the mass moves by the
odometry, metres and heading, and blurs by a Gaussian whose sigma grows with the distance
moved; without odometry it only blurs by ``walk_sigma_m``) and *updates* with the frame's
retrieval scores: the likelihood of tile ``j`` is ``exp((s_j - s_max) / temperature)`` for the
retrieved top-k, and for every other tile that of the lowest retrieved score (an upper bound
on theirs). The estimate is the posterior mean around the most probable tile, its
uncertainty the posterior's RMS distance from that estimate.

The prediction is dense over the ``support`` most probable tiles times all tiles (chunked),
fine for the tens of thousands of tiles of a town; larger areas should use a prior to load
the cells near the flight.

Trust. A position source must say "no fix" when it has none. Fed the frames' single-frame
answers (:meth:`Tracker.track` with a :class:`~d4g_edge.localizer.Observation`):

- a ``not_in_map`` frame (degenerate image, a place the bundle does not hold) is no evidence:
  the filter only predicts; ``lost_after`` of them in a row lose the lock;
- other frames update with a likelihood tempered by their calibrated ``p_in_map``;
- the track is **locked** only once ``lock_frames`` of the last ``window`` confident (``ok``)
  single-frame answers agree with it (lie within its radius, at least ``agree_m``) and its
  radius is at most ``lock_radius_m``;
- a **jump** (the vehicle carried elsewhere): ``jump_frames`` confident answers in a row that
  disagree with a locked track reset the filter and lose the lock.

``uncertainty_m`` is the radius around the estimate holding ``coverage`` (0.95) of the
posterior mass plus the bundle calibration's ``track.margin_m``: a histogram filter with
sharp likelihoods is over-confident (its mass sits on a few rows while the model's error is
metres), so the margin is the split-conformal ``coverage`` quantile of (error - posterior
radius) over the locked frames of held-out drives (``benchmarks.bench_track --fit-drives``),
never below half the grid step. Only a locked fix
should reach an autopilot (``d4g-edge follow`` publishes no fix otherwise).

Usage::

    from d4g_edge.tracker import Tracker
    tr = Tracker.from_bundle(localizer.bundle)
    for frame, odo in stream:
        obs = localizer.observe(frame, top_k=100)
        fix = tr.track(obs, odometry=odo)   # odo: (metres, heading_deg) or None
        fix.lat, fix.lon, fix.uncertainty_m, fix.locked
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from d4g_edge.errors import SearchError
from d4g_edge.geo import GeoReference, haversine_m
from d4g_edge.tiletable import TileTable

_CHUNK = 1 << 22  # kernel elements per block (16 MiB of float32)


@dataclass(frozen=True)
class TrackFix:
    lat: float
    lon: float
    uncertainty_m: float  # radius holding `coverage` of the posterior (scaled, see above)
    confidence: float  # posterior mass within 2 x the walk sigma of the estimate
    steps: int
    locked: bool = False  # frames agree: the only state in which to publish a fix
    status: str = "uncertain"  # "ok" (locked), "uncertain", "not_in_map" (lost)
    coverage: float = 0.95
    reason: str | None = None  # why not locked
    posterior_radius_m: float | None = None  # the filter's own radius, before the margin


class Tracker:
    def __init__(
        self,
        lat: np.ndarray,
        lon: np.ndarray,
        *,
        walk_sigma_m: float = 10.0,
        odometry_sigma_m: float = 3.0,
        odometry_rel_sigma: float = 0.1,
        temperature: float = 0.02,
        support: int = 2048,
        coverage: float = 0.95,
        track_scale: float = 1.0,
        margin_m: float = 0.0,
        floor_m: float = 0.0,
        lock_frames: int = 3,
        window: int = 5,
        lock_radius_m: float = 100.0,
        agree_m: float = 50.0,
        jump_frames: int = 3,
        lost_after: int = 3,
    ) -> None:
        for name, v in (("temperature", temperature), ("walk_sigma_m", walk_sigma_m)):
            if not (np.isfinite(v) and v > 0):
                raise SearchError(f"{name} must be a finite number > 0, got {v}")
        lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        self.ref = GeoReference(float(lat.mean()), float(lon.mean()))
        self.xy = np.stack(self.ref.latlon_to_metres(lat, lon), 1).astype(np.float32)
        self.walk_sigma_m = float(walk_sigma_m)
        self.odometry_sigma_m = float(odometry_sigma_m)
        self.odometry_rel_sigma = float(odometry_rel_sigma)
        self.temperature = float(temperature)
        self.support = int(support)
        self.coverage, self.track_scale, self.floor_m = coverage, track_scale, floor_m
        self.margin_m = margin_m
        self.lock_frames, self.window, self.jump_frames = lock_frames, window, jump_frames
        self.lock_radius_m, self.agree_m, self.lost_after = lock_radius_m, agree_m, lost_after
        self.reset()

    @classmethod
    def from_bundle(cls, bundle, calibration=None, **kw) -> Tracker:
        """A tracker over the bundle's tiles, with its calibration's track margin if any
        (``calibration``: the bundle's, when already loaded, e.g. ``Localizer.calibration``)."""
        from d4g_edge.trust import Calibration

        tiles: TileTable = bundle.tiles
        cal = calibration if calibration is not None else Calibration.from_bundle(bundle)
        defaults = {"floor_m": bundle.grid_step_m / 2}
        if cal is not None:
            defaults |= {
                "coverage": cal.coverage,
                "track_scale": float(cal.track.get("scale", 1.0)),
                "margin_m": float(cal.track.get("margin_m", 0.0)),
            }
        return cls(tiles.lat, tiles.lon, **(defaults | kw))

    def reset(self) -> None:
        self.p = np.full(len(self.xy), 1.0 / len(self.xy))
        self.steps = 0
        self.locked = False
        self.agree: deque[bool] = deque(maxlen=self.window)  # confident frames: agreed?
        self.disagree_run = 0
        self.miss_run = 0

    # ---- filter -------------------------------------------------------------------------

    def predict(self, odometry: tuple[float, float] | None = None) -> None:
        if odometry is None:
            shift, sigma = np.zeros(2, np.float32), self.walk_sigma_m
        else:
            dist, heading = float(odometry[0]), np.radians(float(odometry[1]))
            shift = np.array([dist * np.sin(heading), dist * np.cos(heading)], np.float32)
            sigma = float(np.hypot(self.odometry_sigma_m, self.odometry_rel_sigma * dist))
        src = np.flatnonzero(self.p > self.p.max() * 1e-9)
        if src.size > self.support:
            src = src[np.argpartition(-self.p[src], self.support)[: self.support]]
        new = np.zeros_like(self.p)
        rows = max(1, _CHUNK // len(self.xy))
        for start in range(0, src.size, rows):
            s = src[start : start + rows]
            moved = self.xy[s] + shift
            d2 = ((moved[:, None, :] - self.xy[None, :, :]) ** 2).sum(-1)
            k = np.exp(-d2 / (2 * sigma**2))
            k /= np.maximum(k.sum(1, keepdims=True), 1e-30)  # each source keeps its mass
            new += self.p[s] @ k
        self.p = new / new.sum()

    def update(self, ids: np.ndarray, scores: np.ndarray, weight: float = 1.0) -> None:
        """Bayes update; ``weight`` in [0, 1] tempers the likelihood (0: no evidence)."""
        ids, scores = np.asarray(ids, np.int64), np.asarray(scores, np.float64)
        top = scores.max()
        like = np.full(len(self.p), np.exp((scores.min() - top) / self.temperature))
        like[ids] = np.exp((scores - top) / self.temperature)
        post = self.p * like ** float(np.clip(weight, 0.0, 1.0))
        total = post.sum()
        self.p = post / total if total > 0 and np.isfinite(total) else self.p
        self.steps += 1

    def step(self, ids, scores, odometry: tuple[float, float] | None = None, fix=None) -> TrackFix:
        """Predict by ``odometry`` and update with a frame's top rows and scores. ``fix``: the
        frame's single-frame :class:`~d4g_edge.localizer.Localization`; without it the track
        is never locked (nothing says the frame shows a place of the map)."""
        odometry = _odometry(odometry)
        if self.steps:
            self.predict(odometry)
        if fix is not None and fix.status == "not_in_map":
            self.miss_run += 1
            self.steps += 1
            if self.miss_run >= self.lost_after:
                self.locked = False
            return self.estimate(lost=self.miss_run >= self.lost_after)
        self.miss_run = 0
        before = self.estimate() if fix is not None and fix.status == "ok" else None
        weight = 1.0 if fix is None or fix.p_in_map is None else fix.p_in_map
        self.update(ids, scores, weight)
        if before is not None:
            self._vote(before, fix, ids, scores, odometry)
        return self.estimate()

    def track(self, obs, odometry: tuple[float, float] | None = None) -> TrackFix:
        """:meth:`step` with a :class:`~d4g_edge.localizer.Observation`."""
        return self.step(obs.ids, obs.scores, odometry, fix=obs.fix)

    def _vote(self, before: TrackFix, fix, ids, scores, odometry) -> None:
        """Lock, keep or lose the lock by whether a confident frame agrees with the track."""
        d = float(haversine_m(before.lat, before.lon, fix.lat, fix.lon))
        agrees = d <= max(before.uncertainty_m, self.agree_m)
        self.agree.append(agrees)
        self.disagree_run = 0 if agrees else self.disagree_run + 1
        if self.locked and self.disagree_run >= self.jump_frames:
            # carried somewhere else: start again from this frame alone
            self.reset()
            self.update(ids, scores)
            self.steps = 1
            return
        now = self.estimate()
        if sum(self.agree) >= self.lock_frames and now.uncertainty_m <= self.lock_radius_m:
            self.locked = True

    def posterior_radius(self, centre: np.ndarray) -> float:
        """Radius around ``centre`` (metres east/north) holding ``coverage`` of the mass."""
        d = np.linalg.norm(self.xy - centre, axis=1)
        order = np.argsort(d)
        mass = np.cumsum(self.p[order])
        i = min(int(np.searchsorted(mass, self.coverage)), len(order) - 1)
        return float(d[order[i]])

    def estimate(self, lost: bool = False) -> TrackFix:
        best = int(np.argmax(self.p))
        d = np.linalg.norm(self.xy - self.xy[best], axis=1)
        near = d <= 2 * self.walk_sigma_m
        w = self.p[near] / self.p[near].sum()
        centre = (w[:, None] * self.xy[near]).sum(0)
        raw = self.posterior_radius(centre)
        radius = max(raw * self.track_scale + self.margin_m, self.floor_m)
        lat, lon = self.ref.metres_to_latlon(centre[0], centre[1])
        locked = self.locked and not lost
        if locked:
            status, reason = "ok", None
        elif lost:
            status, reason = "not_in_map", f"{self.miss_run} frames in a row show no mapped place"
        else:
            n = sum(self.agree)
            status = "uncertain"
            reason = f"acquiring: {n} of {self.lock_frames} confident frames agree"
        return TrackFix(
            float(lat), float(lon), radius, float(self.p[near].sum()), self.steps, locked,
            status, self.coverage, reason, raw,
        )  # fmt: skip


def _odometry(odometry) -> tuple[float, float] | None:
    """(metres, heading_deg), finite, or None; anything else is a typed error."""
    if odometry is None:
        return None
    try:
        dist, heading = (float(v) for v in odometry)
    except (TypeError, ValueError):
        raise SearchError(f"odometry must be (metres, heading_deg), got {odometry!r}") from None
    if not (np.isfinite(dist) and np.isfinite(heading)) or dist < 0:
        raise SearchError(f"odometry must be finite (metres >= 0, heading_deg), got {odometry!r}")
    return dist, heading
