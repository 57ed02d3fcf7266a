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

Usage::

    from d4g_edge.tracker import Tracker
    tr = Tracker.from_bundle(localizer.bundle)
    for frame, odo in stream:
        ids, scores, heading = localizer.retrieve(frame, top_k=100)
        fix = tr.step(ids[0], scores[0], odometry=odo)   # odo: (metres, heading_deg) or None
        fix.lat, fix.lon, fix.uncertainty_m
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d4g_edge.geo import GeoReference
from d4g_edge.tiles.base import TileTable

_CHUNK = 1 << 22  # kernel elements per block (16 MiB of float32)


@dataclass(frozen=True)
class TrackFix:
    lat: float
    lon: float
    uncertainty_m: float
    confidence: float  # posterior mass within 2 x the walk sigma of the estimate
    steps: int


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
    ) -> None:
        lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        self.ref = GeoReference(float(lat.mean()), float(lon.mean()))
        self.xy = np.stack(self.ref.latlon_to_metres(lat, lon), 1).astype(np.float32)
        self.walk_sigma_m = float(walk_sigma_m)
        self.odometry_sigma_m = float(odometry_sigma_m)
        self.odometry_rel_sigma = float(odometry_rel_sigma)
        self.temperature = float(temperature)
        self.support = int(support)
        self.reset()

    @classmethod
    def from_bundle(cls, bundle, **kw) -> Tracker:
        tiles: TileTable = bundle.tiles
        return cls(tiles.lat, tiles.lon, **kw)

    def reset(self) -> None:
        self.p = np.full(len(self.xy), 1.0 / len(self.xy))
        self.steps = 0

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

    def update(self, ids: np.ndarray, scores: np.ndarray) -> None:
        ids, scores = np.asarray(ids, np.int64), np.asarray(scores, np.float64)
        top = scores.max()
        like = np.full(len(self.p), np.exp((scores.min() - top) / self.temperature))
        like[ids] = np.exp((scores - top) / self.temperature)
        post = self.p * like
        total = post.sum()
        self.p = post / total if total > 0 and np.isfinite(total) else self.p
        self.steps += 1

    def step(self, ids, scores, odometry: tuple[float, float] | None = None) -> TrackFix:
        if self.steps:
            self.predict(odometry)
        self.update(ids, scores)
        return self.estimate()

    def estimate(self) -> TrackFix:
        best = int(np.argmax(self.p))
        d = np.linalg.norm(self.xy - self.xy[best], axis=1)
        near = d <= 2 * self.walk_sigma_m
        w = self.p[near] / self.p[near].sum()
        centre = (w[:, None] * self.xy[near]).sum(0)
        rms = float(np.sqrt((self.p * ((self.xy - centre) ** 2).sum(1)).sum()))
        lat, lon = self.ref.metres_to_latlon(centre[0], centre[1])
        return TrackFix(float(lat), float(lon), rms, float(self.p[near].sum()), self.steps)
