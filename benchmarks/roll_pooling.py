"""Can the heading search be rescued by scoring its rolls differently? (issue 23; not a test)

Each of ``--queries`` VIGOR test panoramas is turned by a seeded random heading, embedded at
the SDK's searched rolls (:meth:`d4g_edge.Localizer.embed` with ``heading=None``), and scored
against every row of the bundle. The answer is then picked by several poolings over the rolls
of each row: the SDK's best (roll, row) pair, a soft maximum (log-sum-exp), averages over
neighbouring rolls, the mean of the best three rolls; and, for reference, the panorama with
its true heading. Prints the share of answers within 25 m per pooling and writes JSON.

Usage::

    python -m benchmarks.roll_pooling --bundle d4g_edge/_default --data data/vigor \\
        --queries 300 --json runs/roll_pooling.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.bench_trust import vigor_test
from d4g_edge.build.calibration_rows import turn_frame_by
from d4g_edge.geo import haversine_m
from d4g_edge.image import load_rgb
from d4g_edge.localizer import DEFAULT_BUNDLE, Localizer
from d4g_edge.trust import WITHIN_M


def poolings(s: np.ndarray) -> dict[str, np.ndarray]:
    """(queries, rolls, rows) scores -> the row each pooling answers, per query."""
    out = {"best roll (the SDK)": s.max(1).argmax(1)}
    m = s.max(1, keepdims=True)
    for t in (0.005, 0.01, 0.02, 0.04):
        lse = m[:, 0] + t * np.log(np.exp((s - m) / t).sum(1))
        out[f"log-sum-exp over rolls, T={t}"] = lse.argmax(1)
    for w in (1, 2, 3):
        smooth = sum(np.roll(s, k, axis=1) for k in range(-w, w + 1)) / (2 * w + 1)
        out[f"mean of {2 * w + 1} neighbouring rolls"] = smooth.max(1).argmax(1)
    out["mean of the best 3 rolls"] = np.sort(s, 1)[:, -3:].mean(1).argmax(1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    p.add_argument("--data", type=Path, required=True, help="the world's VIGOR layout")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    loc = Localizer(args.bundle, threads=1)
    index = loc.bundle.index
    rows = index.get_vectors(np.arange(index.count)).astype(np.float32)
    lat, lon = loc.bundle.tiles.lat, loc.bundle.tiles.lon
    queries = vigor_test(args.data)
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(queries), min(args.queries, len(queries)), replace=False)
    scores, known, truth = [], [], []
    for i in pick:
        path, t = queries[i]
        rgb = load_rgb(path)
        turned, _ = turn_frame_by(rgb, "ground", rng)
        scores.append(loc.embed(turned, heading=None) @ rows.T)
        known.append(loc.embed(rgb, heading=0.0)[0] @ rows.T)
        truth.append(t)
    truth = np.asarray(truth)

    def within(best: np.ndarray) -> float:
        err = haversine_m(lat[best], lon[best], truth[:, 0], truth[:, 1])
        return float(np.mean(err <= WITHIN_M))

    table = {"heading known (reference)": within(np.argmax(np.asarray(known), 1))}
    table |= {name: within(best) for name, best in poolings(np.asarray(scores)).items()}
    print(f"{len(pick)} panoramas at random headings, {np.asarray(scores).shape[1]} rolls")
    for name, v in table.items():
        print(f"{name:40s} within {WITHIN_M:.0f} m {100 * v:5.1f} %")
    if args.json:
        report = {"queries": len(pick), "within_25m": table}
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
