"""Scoring :mod:`benchmarks.bench_flight`'s flights: per-frame errors against the drone's true
position, per-flight summaries, and the published ``horiz_accuracy`` against the true error."""

from __future__ import annotations

from collections import Counter

import numpy as np

from benchmarks.bench_track import SIGMA_OF_R95
from d4g_edge.geo import haversine_m, offset_latlon


def stats(e) -> dict:
    e = np.asarray(e)
    return {
        "mean_m": float(e.mean()),
        "median_m": float(np.median(e)),
        "p90_m": float(np.percentile(e, 90)),
        "within_25m": float((e <= 25).mean()),
        "within_50m": float((e <= 50).mean()),
    }


def accuracy_table(recs: list[dict], bins: int = 4) -> list[dict]:
    """Published horiz_accuracy (usable frames) against the true error: ``bins`` bins of
    about equal counts, each frame in exactly one (ties can leave a bin larger), labelled by
    the range of horiz_accuracy the bin holds."""
    rows = [r for r in recs if r["locked"] and np.isfinite(r["radius_m"])]
    if not rows:
        return []
    acc = np.array([r["radius_m"] / SIGMA_OF_R95 for r in rows])
    err = np.array([r["error_m"] for r in rows])
    q = np.quantile(acc, np.linspace(0, 1, bins + 1))
    edges = [q[0]]
    for v in q[1:]:  # quantiles closer than 5 cm (ties at the radius floor) are one edge
        if v - edges[-1] > 0.05:
            edges.append(v)
    edges = np.array([*edges, q[-1]] if len(edges) == 1 else [*edges[:-1], q[-1]])
    b = np.clip(np.searchsorted(edges, acc, "right") - 1, 0, len(edges) - 2)
    out = []
    for i in range(len(edges) - 1):
        sel = b == i
        if sel.any():
            out.append({
                "horiz_accuracy_m": f"{acc[sel].min():.1f}-{acc[sel].max():.1f}",
                "frames": int(sel.sum()),
                "error_median_m": float(np.median(err[sel])),
                "error_p95_m": float(np.percentile(err[sel], 95)),
                "within_r95": float((err[sel] <= acc[sel] * SIGMA_OF_R95).mean()),
            })  # fmt: skip
    return out


def score_flight(records, flight: dict, georef) -> list[dict]:
    """Per frame: the single-frame and tracked errors against the drone, radius, lock."""
    recs = []
    for rec, pos, offset in zip(records, flight["path"], flight["offsets"], strict=True):
        lat, lon = georef.metres_to_latlon(*pos)
        # the single-frame answer: the best tile, moved back to the drone like the fix
        back_lat, back_lon = offset_latlon(
            rec["single_frame_lat"], rec["single_frame_lon"], *(-offset)
        )
        radius = rec["uncertainty_m"]
        recs.append({
            "single_m": float(haversine_m(back_lat, back_lon, lat, lon)),
            "error_m": float(haversine_m(rec["lat"], rec["lon"], lat, lon)),
            "radius_m": float("inf") if radius is None else float(radius),
            "locked": bool(rec["usable"]),
            "frame_status": rec["frame_status"],
        })  # fmt: skip
    return recs


def flight_summary(recs: list[dict], skip: int = 10) -> dict:
    single = np.array([r["single_m"] for r in recs])
    err = np.array([r["error_m"] for r in recs])
    radius = np.array([r["radius_m"] for r in recs])
    locked = np.array([r["locked"] for r in recs])
    ok = np.array([r["frame_status"] == "ok" for r in recs])
    late = np.array([r["error_m"] for r in recs if r.get("k", skip) >= skip])

    def on(mask, f):
        return float(f(mask)) if mask.any() else None

    return {
        "frames": len(recs),
        "single_frame": stats(single),
        "single_ok_share": float(ok.mean()),
        "single_ok_within_25m": on(ok, lambda s: (single[s] <= 25).mean()),
        "tracked": stats(err),
        "tracked_after_10": stats(late) if late.size else None,
        "usable_share": float(locked.mean()),
        "coverage_usable": on(locked, lambda s: (err[s] <= radius[s]).mean()),
        "median_radius_usable_m": on(locked, lambda s: np.median(radius[s])),
        "error_usable_median_m": on(locked, lambda s: np.median(err[s])),
        "error_usable_p95_m": on(locked, lambda s: np.percentile(err[s], 95)),
        "coverage_all_frames": float((err <= radius).mean()),
        "frame_status": dict(Counter(r["frame_status"] for r in recs)),
    }
