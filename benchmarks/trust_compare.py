"""Which retrieval signals would make ``ok`` keep more right answers? (issue 20; not a test)

Heading given, the bundled default: the fit set's panoramas (``data/trust/fit``: in the map and
in unmapped towns) fit each candidate, the report set (the world's 1,200 VIGOR test panoramas
and ``data/trust/report/outmap``) measures it, as ``d4g-edge calibrate`` and
``benchmarks.bench_trust`` do. Candidates: the SDK's seven :data:`~d4g_edge.trust.FEATURES`
with its logistic model and isotonic map; the same plus statistics of the query's scores over
*every* row of the map (z-score of the best, a soft count of near-best rows, the best row's
lead over its 9 m neighbours, over the best row 200 m away and over the mean of the best
100, the mean and spread of all scores); and gradient-boosted trees (scikit-learn, when
installed) on either, their isotonic map fitted on 5-fold out-of-fold predictions. Per
candidate: right answers (within 25 m) called ``ok`` at the fit's 90 % precision threshold,
``ok`` precision in the map, out-of-map panoramas called ``ok``, coverage of the 95 % radius
(ten probability bins) and the median radius of right answers.

Usage::

    python -m benchmarks.trust_compare --data data/vigor --trust data/trust \\
        --cache runs/trust_compare.npz --json runs/trust_compare.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.bench_trust import vigor_test
from d4g_edge.build.calibrate import query_files, read_sidecar
from d4g_edge.geo import haversine_m
from d4g_edge.image import load_rgb
from d4g_edge.localizer import DEFAULT_BUNDLE, Localizer
from d4g_edge.trust_fit import bin_radii, ok_threshold_for
from d4g_edge.trust_model import Model, isotonic

EXTRA = ("zscore", "soft_count", "lead_9m", "lead_200m", "lead_top100", "mean_all", "std_all")


def frames(data: Path, trust: Path, which: str):
    """(path, truth or None, in the map) of the fit or report set."""
    if which == "report":
        yield from ((p, t, True) for p, t in vigor_test(data))
        yield from ((p, None, False) for p in query_files(trust / "report" / "outmap"))
        return
    for sub in ("inmap", "outmap"):
        for p in query_files(trust / "fit" / sub):
            meta = read_sidecar(p)
            yield p, ((meta["lat"], meta["lon"]) if "lat" in meta else None), sub == "inmap"


def collect(loc: Localizer, data: Path, trust: Path, which: str) -> dict:
    """SDK features, query embeddings and errors of one set, heading given (north-up)."""
    f, z, err, in_map = [], [], [], []
    for path, truth, inside in frames(data, trust, which):
        rgb = load_rgb(path)
        obs = loc.observe(rgb, heading=0.0)
        f.append(obs.features)
        z.append(loc.embed(rgb, heading=0.0)[0])
        err.append(haversine_m(obs.fix.lat, obs.fix.lon, *truth) if truth else np.inf)
        in_map.append(inside)
    return {"f": np.array(f), "z": np.array(z), "err": np.array(err), "in_map": np.array(in_map)}


def extra_features(z: np.ndarray, rows: np.ndarray, lat: np.ndarray, lon: np.ndarray):
    """:data:`EXTRA` per query, from its scores over every row of the map."""
    out = []
    for s in z @ rows.T:
        best = int(np.argmax(s))
        top = s[best]
        d = haversine_m(lat[best], lon[best], lat, lon)
        near = (d > 0.5) & (d < 13.0)
        out.append([
            (top - s.mean()) / s.std(),
            0.01 * np.log(np.exp((s - top) / 0.01).sum()),
            top - (s[near].mean() if near.any() else top),
            top - s[d > 200.0].max(),
            top - np.sort(s)[-100:].mean(),
            s.mean(),
            s.std(),
        ])  # fmt: skip
    return np.array(out)


def judge(p_fit, p_rep, fit: dict, rep: dict) -> dict:
    """The ok / radius figures of probabilities fitted on ``fit``, measured on ``rep``."""
    ef, er = (np.where(d["in_map"], d["err"], np.inf) for d in (fit, rep))
    yf, yr, inf_, inr = ef <= 25, er <= 25, fit["in_map"], rep["in_map"]
    ok = p_rep >= ok_threshold_for(p_fit, yf, 0.9)
    edges, radii = bin_radii(p_fit[inf_], ef[inf_], 0.95, 5e6, 10)
    r = radii[np.clip(np.searchsorted(edges, p_rep, "right") - 1, 0, None)]
    return {
        "right_ok": float(ok[yr].mean()),
        "ok_precision_in_map": float(yr[ok & inr].mean()) if (ok & inr).any() else None,
        "out_of_map_ok": float(ok[~inr].mean()),
        "radius_coverage": float(np.mean(er[inr] <= r[inr])),
        "median_radius_right_m": float(np.median(r[yr])),
    }


def candidates(fit: dict, rep: dict) -> dict:
    yf = np.where(fit["in_map"], fit["err"], np.inf) <= 25
    sets = {"SDK features": (fit["f"], rep["f"]),
            "SDK + whole-map score statistics": (np.hstack([fit["f"], fit["x"]]),
                                                 np.hstack([rep["f"], rep["x"]]))}  # fmt: skip
    out = {}
    for name, (ff, fr) in sets.items():
        m = Model.fit(ff, yf)
        out[f"logistic + isotonic: {name}"] = judge(m.predict(ff), m.predict(fr), fit, rep)
        try:
            from sklearn.ensemble import HistGradientBoostingClassifier
            from sklearn.model_selection import cross_val_predict
        except ImportError:
            continue
        for leaves in (3, 7, 15):
            gb = HistGradientBoostingClassifier(
                max_iter=150, learning_rate=0.05, max_leaf_nodes=leaves, min_samples_leaf=30
            )
            oof = cross_val_predict(gb, ff, yf, cv=5, method="predict_proba")[:, 1]
            knots = isotonic(oof, yf)
            pr = gb.fit(ff, yf).predict_proba(fr)[:, 1]
            key = f"boosted trees ({leaves} leaves): {name}"
            out[key] = judge(np.interp(oof, *knots), np.interp(pr, *knots), fit, rep)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--trust", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=None, help="reuse/keep the encoded sets here")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    loc = Localizer(args.bundle, threads=1)
    if args.cache is not None and args.cache.is_file():
        with np.load(args.cache) as c:
            sets = {w: {k[len(w) + 1 :]: c[k] for k in c.files if k.startswith(w + "_")}
                    for w in ("fit", "report")}  # fmt: skip
    else:
        sets = {w: collect(loc, args.data, args.trust, w) for w in ("fit", "report")}
        if args.cache is not None:
            np.savez(args.cache, **{f"{w}_{k}": v for w, d in sets.items() for k, v in d.items()})
    index = loc.bundle.index
    rows = index.get_vectors(np.arange(index.count)).astype(np.float32)
    for d in sets.values():
        d["x"] = extra_features(d["z"], rows, loc.bundle.tiles.lat, loc.bundle.tiles.lon)
    table = candidates(sets["fit"], sets["report"])
    cols = list(next(iter(table.values())))
    print("candidate".ljust(62) + " ".join(c[:14].rjust(14) for c in cols))
    for name, r in table.items():
        vals = " ".join(("-" if r[c] is None else f"{r[c]:.3f}").rjust(14) for c in cols)
        print(name[:62].ljust(62) + vals)
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
