"""Does the answer's promise hold? Coverage, status rates, AUROC and risk-coverage (not a test).

Measures a calibrated bundle (``d4g-edge calibrate``) on query sets it was not fitted on:

- in the map: the world's VIGOR test panoramas (``--data``, 1,200), heading known, heading
  unknown (each panorama rolled by a random heading) and unknown under a random prior;
- out of the map: panoramas of fresh towns (``benchmarks.trust_data``'s ``report/outmap``);
- degenerate and wrong-view frames (``report/degenerate``).

Prints a table, writes JSON (``--json``), and draws a reliability diagram of
``p_within_25m`` and a risk-coverage curve (error of the answers kept against the fraction
kept, keeping the likeliest first) into ``--plots``.

Usage::

    python -m benchmarks.trust_data --data data/vigor --out data/trust
    d4g-edge calibrate d4g_edge/_default --queries data/trust/fit
    python -m benchmarks.bench_trust --bundle d4g_edge/_default --data data/vigor \\
        --trust data/trust --json runs/trust.json --plots docs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from d4g_edge.build.calibrate import query_files, random_prior, read_sidecar, turn_frame
from d4g_edge.geo import haversine_m
from d4g_edge.image import load_rgb
from d4g_edge.localizer import Localizer
from d4g_edge.log import logger, setup_logging
from d4g_edge.trust import WITHIN_M
from train.datasets.vigor import CROSS_CITIES, detect_layout


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney U)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    ranks[order] = np.arange(1, len(allv) + 1)
    for v in np.unique(allv):  # average ranks of ties
        tie = allv == v
        ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _record(fix, truth=None, kind="", condition="") -> dict:
    err = None if truth is None else float(haversine_m(fix.lat, fix.lon, *truth))
    return {
        "kind": kind,
        "condition": condition,
        "status": fix.status,
        "p_within_25m": fix.p_within_25m,
        "p_in_map": fix.p_in_map,
        "radius_m": fix.uncertainty_m,
        "score": fix.score,
        "error_m": err,
    }


def vigor_test(data: Path) -> list[tuple[Path, tuple[float, float]]]:
    out = []
    for city in CROSS_CITIES["test"]:
        _, pano_dir = detect_layout(data, city)
        for p in sorted(pano_dir.iterdir()):
            _, lat, lon, _ = p.name.split(",")
            out.append((p, (float(lat), float(lon))))
    return out


def measure(loc: Localizer, data: Path, trust: Path, limit: int | None, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    recs = []
    queries = vigor_test(data)[:limit]
    for i, (path, truth) in enumerate(queries):
        rgb = load_rgb(path)
        turned = turn_frame(rgb, loc.view, rng)
        recs.append(_record(loc.localize(rgb, heading=0.0), truth, "in map", "heading known"))
        recs.append(_record(loc.localize(turned), truth, "in map", "heading unknown"))
        prior = random_prior(rng, *truth)
        recs.append(_record(loc.localize(turned, prior=prior), truth, "in map", "prior"))
        if i % 200 == 0:
            logger.info("in-map %d / %d", i, len(queries))
    for sub, kind in (("outmap", "out of map"), ("degenerate", None)):
        for path in query_files(trust / "report" / sub)[:limit]:
            meta = read_sidecar(path)
            rgb = load_rgb(path)
            if min(rgb.shape[:2]) > 1 and kind is not None:
                rgb = turn_frame(rgb, loc.view, rng)
            recs.append(_record(loc.localize(rgb), None, kind or meta["kind"], "heading unknown"))
    return recs


def summarise(recs: list[dict]) -> dict:
    inmap = [r for r in recs if r["kind"] == "in map"]
    out = {"conditions": {}, "negatives": {}}
    for cond in ("heading known", "heading unknown", "prior"):
        rs = [r for r in inmap if r["condition"] == cond]
        err = np.array([r["error_m"] for r in rs])
        rad = np.array([np.inf if r["radius_m"] is None else r["radius_m"] for r in rs])
        right = err <= WITHIN_M
        ok = np.array([r["status"] == "ok" for r in rs])
        out["conditions"][cond] = {
            "queries": len(rs),
            "within_25m": float(right.mean()),
            "coverage": float((err <= rad).mean()),
            "median_radius_right_m": float(np.median(rad[right])) if right.any() else None,
            "ok_of_right": float(ok[right].mean()) if right.any() else None,
            "ok_share": float(ok.mean()),
            "error_of_ok_median_m": float(np.median(err[ok])) if ok.any() else None,
            "within_25m_of_ok": float(right[ok].mean()) if ok.any() else None,
            "p_within_mean": float(np.mean([r["p_within_25m"] for r in rs])),
        }
    neg_kinds = sorted({r["kind"] for r in recs if r["kind"] != "in map"})
    for kind in neg_kinds:
        rs = [r for r in recs if r["kind"] == kind]
        st = [r["status"] for r in rs]
        out["negatives"][kind] = {
            "frames": len(rs),
            "not_ok": float(np.mean([s != "ok" for s in st])),
            "not_in_map": float(np.mean([s == "not_in_map" for s in st])),
            "ok": int(sum(s == "ok" for s in st)),
        }
    # how well each signal tells in-map queries from out-of-map ones (both heading searched),
    # and right in-map answers from out-of-map ones
    unk = [r for r in inmap if r["condition"] == "heading unknown"]
    right = [r for r in unk if r["error_m"] <= WITHIN_M]
    ood = [r for r in recs if r["kind"] == "out of map"]
    signal = lambda rs, k: [r[k] if r[k] is not None else 0.0 for r in rs]  # noqa: E731
    for name, pos in (("auroc_in_vs_out", unk), ("auroc_right_vs_out", right)):
        out[name] = {
            k: auroc(signal(pos, k), signal(ood, k)) for k in ("score", "p_in_map", "p_within_25m")
        }
    return out


def plots(recs: list[dict], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    sets = (
        ("in-map answers (VIGOR test)", ("in map",)),
        ("in-map + out-of-map (as fitted)", ("in map", "out of map")),
    )
    for label, kinds in sets:
        rs = [r for r in recs if r["kind"] in kinds]
        p = np.array([r["p_within_25m"] or 0.0 for r in rs])
        right = np.array([r["error_m"] is not None and r["error_m"] <= WITHIN_M for r in rs])
        b = np.clip(np.digitize(p, np.linspace(0, 1, 11)) - 1, 0, 9)
        cells = [(p[b == i].mean(), right[b == i].mean(), (b == i).sum()) for i in range(10)]
        cells = [c for c in cells if c[2]]
        line = ax[0].plot([c[0] for c in cells], [c[1] for c in cells], "o-", label=label)
        for m, r, c in cells:
            ax[0].annotate(str(c), (m, r), fontsize=6, xytext=(3, -9), textcoords="offset points",
                           color=line[0].get_color())  # fmt: skip
    ax[0].set(xlabel="p_within_25m (stated)", ylabel="share within 25 m (observed)",
              title="Reliability of p_within_25m")  # fmt: skip
    ax[0].legend(loc="upper left")
    allq = [r for r in recs if r["kind"] in ("in map", "out of map")]
    order = np.argsort([-(r["p_within_25m"] or 0.0) for r in allq], kind="stable")
    wrong = np.array([r["error_m"] is None or r["error_m"] > WITHIN_M for r in allq])[order]
    kept = np.arange(1, len(order) + 1) / len(order)
    ax[1].plot(kept, np.cumsum(wrong) / np.arange(1, len(order) + 1))
    ax[1].set(xlabel="fraction of answers kept (likeliest first)",
              ylabel="share kept that is wrong (>25 m or not in map)",
              title="Risk-coverage (in-map + out-of-map queries)")  # fmt: skip
    fig.tight_layout()
    path = folder / "trust_reliability.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def format_table(s: dict) -> str:
    lines = [
        "| in-map condition | queries | within 25 m | radius coverage | median radius (right) "
        "| right answers 'ok' | 'ok' within 25 m |",
        "|---|---|---|---|---|---|---|",
    ]
    for cond, c in s["conditions"].items():
        lines.append(
            f"| {cond} | {c['queries']} | {c['within_25m']:.1%} | {c['coverage']:.1%} | "
            f"{c['median_radius_right_m']:.0f} m | {c['ok_of_right']:.1%} | "
            f"{c['within_25m_of_ok'] or 0:.1%} |"
        )
    lines += [
        "",
        "| negatives | frames | not 'ok' | 'not_in_map' | 'ok' |",
        "|---|---|---|---|---|",
    ]
    for kind, n in s["negatives"].items():
        lines.append(
            f"| {kind} | {n['frames']} | {n['not_ok']:.1%} | {n['not_in_map']:.1%} | {n['ok']} |"
        )
    for key, what in (("auroc_in_vs_out", "in-map"), ("auroc_right_vs_out", "right in-map")):
        a = s[key]
        lines.append(
            f"AUROC {what} vs out-of-map (heading searched): score {a['score']:.3f}, p_in_map "
            f"{a['p_in_map']:.3f}, p_within_25m {a['p_within_25m']:.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    p.add_argument("--bundle", type=Path, default=None)
    p.add_argument("--data", type=Path, required=True, help="the world in VIGOR layout")
    p.add_argument("--trust", type=Path, required=True, help="benchmarks.trust_data's folder")
    p.add_argument("--limit", type=int, default=None, help="at most N queries per set")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plots", type=Path, default=None)
    args = p.parse_args(argv)
    setup_logging()
    loc = Localizer(args.bundle, threads=1)
    recs = measure(loc, args.data, args.trust, args.limit, args.seed)
    s = summarise(recs)
    print(format_table(s))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": s, "records": recs}, indent=1))
    if args.plots:
        print("wrote", *plots(recs, args.plots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
