"""Phone photos and unknown heading through the SDK (issue 23): recall, metres, heading error,
cost and the trust promise, per field of view (not a test).

Queries: ``python -m train.synth.photos`` output (``--photos``): one photo per VIGOR test
panorama and FoV, all FoVs of a panorama at one seeded heading recorded in ``photos.csv``
(FoV 360: the panorama rolled to that heading). Each is localized through the SDK
(:class:`d4g_edge.Localizer`: the bundle's int8 ONNX query model, its pca-int8 index, one
thread) with the heading known (``heading=`` the recorded one) and unknown (searched).

* heading unknown, for every ``N`` of ``--headings``: the union of their heading grids is
  encoded and searched once per query and each ``N`` reads its own subset, through the same
  code as ``Localizer.localize`` (``Localizer._answer``: best roll, trust features, status);
  the heading is reported plain (the best roll's) and refined (a parabola through the best
  roll's score and its neighbours', :func:`d4g_edge.ground_query.refine_heading`). The cost is
  timed apart: ``Localizer(headings=N).localize`` on the first ``--time-queries`` queries of
  each FoV (one thread), whose answers must equal the union path's (``sdk_mismatches``).
* R@1 / R@10 are tile-level as ``python -m train.evaluate --bundle`` counts them: the rank of
  the query's true tile (``split.query_ids``) among the answer's candidate tile ids.
* within 25 m and the median error are of the answer's position (the best row's centre).
* heading error: the absolute circular difference to the recorded heading (degrees).
* trust (a bundle with a calibration): coverage of ``uncertainty_m`` (a ``not_in_map`` answer
  covers nothing), the share of ``ok`` answers within 25 m (``ok`` precision) and of answers
  that are ``ok``, and the coverage of ``heading_deg +- 1.96 heading_sigma_deg`` on right
  answers. Photos judged by a calibration without photo groups are marked ``uncalibrated``
  (the panorama group's radius, never ``ok``).

Another query model against the same index (the satellite side does not change):
``--swap-query NEW.onnx`` copies ``--bundle`` to ``--swap-out`` (default: a temporary folder)
with its query model replaced (same file name, the manifest's entry and checksum rewritten)
and without its calibration (fitted for the old model; refit the copy with ``d4g-edge
calibrate COPY --queries ...`` and pass ``--bundle COPY``), then benchmarks the copy.

Usage::

    python -m train.synth.photos --data data/vigor --out data/vigor_photos \\
        --fov 360 180 120 90 60 --split test
    python -m benchmarks.bench_photo --bundle d4g_edge/_default --photos data/vigor_photos \\
        --headings 8 16 24 36 72 --json runs/bench_photo.json
    python -m benchmarks.bench_photo --bundle d4g_edge/_default --photos data/vigor_photos \\
        --swap-query weights/edge-s-vigor-photo/ground_int8.onnx --json runs/photo_new.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from d4g_edge import ground_query as sdk
from d4g_edge import localizer
from d4g_edge.bundle import MANIFEST, Bundle
from d4g_edge.errors import D4GEdgeError
from d4g_edge.fileio import atomic_write_json, sha256_file
from d4g_edge.geo import haversine_m
from d4g_edge.ground_query import circular_error, heading_grid, refine_heading
from d4g_edge.image import load_rgb
from d4g_edge.localizer import Localizer
from d4g_edge.log import logger, setup_logging
from d4g_edge.trust import TRUST_K, WITHIN_M

FOVS = (360.0, 180.0, 120.0, 90.0, 60.0)
TOP_K = 10  # R@10 needs the first 10 candidates


# ---- queries ---------------------------------------------------------------------------------


def photo_queries(photos: Path, data: Path | None, fov: float):
    """(split of the photos at ``fov``, their poses) of a ``train.synth.photos`` folder."""
    from train.datasets import load
    from train.synth._photos import photo_split

    info = json.loads((photos / "photos_info.json").read_text())
    data = Path(data or info["data"])
    split = load(info.get("dataset", "vigor"), data, info.get("split", "test"),
                 **({"mode": info.get("mode", "cross")} if info.get("dataset", "vigor") == "vigor"
                    else {}))  # fmt: skip
    return photo_split(split, photos / "photos.csv", fov_deg=fov)


def subset(n: int, queries: int, seed: int) -> np.ndarray:
    """A seeded subset of ``queries`` of ``n`` (all when 0), in order."""
    if not queries or queries >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, queries, replace=False))


# ---- one query ---------------------------------------------------------------------------------


def record(fix, truth_tile: int, truth_ll, true_heading: float) -> dict:
    tiles = [c.tile_id for c in fix.candidates]
    err = float(haversine_m(fix.lat, fix.lon, *truth_ll))
    rank = tiles.index(truth_tile) if truth_tile in tiles else TOP_K
    return {
        "rank": rank,
        "error_m": err,
        "heading_error_deg": float(circular_error(fix.heading_deg, true_heading)),
        "status": fix.status,
        "radius_m": fix.uncertainty_m,
        "p_within_25m": fix.p_within_25m,
        "heading_sigma_deg": fix.heading_sigma_deg,
        "reason": fix.reason,
    }


def unknown_records(loc: Localizer, img, fov, ns, truth_tile, truth_ll, true_heading) -> dict:
    """{N: record} of one query with its heading searched over ``heading_grid(N)`` for each
    ``N``, from one encoding of the union of the grids (plus the plain heading's error)."""
    grid = np.unique(np.round(np.concatenate([heading_grid(n) for n in ns]), 9))
    x, hs, problem, fov_read = loc._queries(img, None, None, fov, grid=grid)
    z = loc.encoder.embed_tensor(x)
    ids, scores = loc._search(z, max(TOP_K, TRUST_K), None)
    out = {}
    for n in ns:
        sub = np.searchsorted(grid, np.round(heading_grid(n), 9))
        obs = loc._answer(ids[sub], scores[sub], hs[sub], None, None, problem, fov_read, None,
                          TOP_K)  # fmt: skip
        best = int(np.argmax(scores[sub, 0]))
        plain = float(hs[sub][best])
        refined = (plain + refine_heading(scores[sub, 0], best) * 360.0 / n) % 360.0
        rec = record(obs.fix, truth_tile, truth_ll, true_heading)
        rec["heading_plain_error_deg"] = float(circular_error(plain, true_heading))
        rec["heading_refined_error_deg"] = float(circular_error(refined, true_heading))
        rec["answer"] = (int(obs.ids[0]), round(obs.heading_deg, 6))
        out[n] = rec
    return out


# ---- summaries ---------------------------------------------------------------------------------


def summarize(recs: list[dict], photo: bool, cal) -> dict:
    rank = np.array([r["rank"] for r in recs])
    err = np.array([r["error_m"] for r in recs])
    right = err <= WITHIN_M
    out = {
        "queries": len(recs),
        "r1": float((rank < 1).mean() * 100),
        "r10": float((rank < 10).mean() * 100),
        "within_25m": float(right.mean() * 100),
        "median_m": float(np.median(err)),
    }
    for key in ("heading_error_deg", "heading_plain_error_deg", "heading_refined_error_deg"):
        if key in recs[0]:
            h = np.array([r[key] for r in recs])
            out[key.replace("_error_deg", "_median_deg")] = float(np.median(h))
            out[key.replace("_error_deg", "_within_10")] = float((h <= 10).mean() * 100)
    if cal is not None:
        # a not_in_map answer has no radius (nan): it covers nothing
        radius = np.array([np.nan if r["radius_m"] is None else r["radius_m"] for r in recs])
        covered = err <= radius
        ok = np.array([r["status"] == "ok" for r in recs])
        out["coverage"] = float(covered.mean() * 100)
        out["ok_rate"] = float(ok.mean() * 100)
        out["ok_precision"] = float(right[ok].mean() * 100) if ok.any() else None
        out["ok_of_right"] = float(ok[right].mean() * 100) if right.any() else None
        out["median_radius_right_m"] = (
            float(np.median(radius[right & np.isfinite(radius)])) if right.any() else None
        )
        sig = np.array([np.nan if r["heading_sigma_deg"] is None else r["heading_sigma_deg"]
                        for r in recs])  # fmt: skip
        has = right & np.isfinite(sig)
        if has.any() and "heading_error_deg" in recs[0]:
            h = np.array([r["heading_error_deg"] for r in recs])
            out["heading_sigma_coverage"] = float((h[has] <= 1.96 * sig[has]).mean() * 100)
            out["heading_sigma_median_deg"] = float(np.median(sig[has]))
        out["uncalibrated"] = bool(photo and not cal.has_photo_groups)
    return out


def _f(v, spec=".1f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(results: list[dict]) -> str:
    lines = [
        "| FoV | heading | N | R@1 | R@10 | within 25 m | median m | heading err (plain / "
        "refined) | ms/query | coverage | ok | ok precision |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        head = (
            f"{_f(r.get('heading_plain_median_deg'))} / {_f(r.get('heading_refined_median_deg'))}"
            if r["heading"] == "unknown"
            else "-"
        )
        cov = _f(r.get("coverage")) + (" (uncal.)" if r.get("uncalibrated") else "")
        lines.append(
            f"| {r['fov']:.0f} | {r['heading']} | {r.get('headings') or '-'} | {r['r1']:.1f} | "
            f"{r['r10']:.1f} | {r['within_25m']:.1f} | {r['median_m']:.1f} | {head} | "
            f"{_f(r.get('ms_per_query'), '.0f')} | {cov} | {_f(r.get('ok_rate'))} | "
            f"{_f(r.get('ok_precision'))} |"
        )
    return "\n".join(lines)


# ---- the benchmark -----------------------------------------------------------------------------


def bench_fov(loc: Localizer, photos: Path, data, fov: float, args) -> tuple[list, dict]:
    split, poses = photo_queries(photos, data, fov)
    rows = subset(len(split.query_paths), args.queries, args.seed)
    fov_arg = None if fov >= 360 else fov  # a panorama as today's callers pass it
    known, unknown = [], {n: [] for n in args.headings}
    t_known = []
    t0 = time.perf_counter()
    for j, i in enumerate(rows):
        img = load_rgb(split.query_paths[i])
        truth_tile, truth_ll = int(split.query_ids[i]), tuple(split.query_latlon[i])
        h_true = float(poses["heading_deg"][i])
        t = time.perf_counter()
        fix = loc.localize(img, top_k=TOP_K, heading=h_true, fov_deg=fov_arg)
        t_known.append(time.perf_counter() - t)
        known.append(record(fix, truth_tile, truth_ll, h_true))
        for n, rec in unknown_records(
            loc, img, fov_arg, args.headings, truth_tile, truth_ll, h_true
        ).items():
            unknown[n].append(rec)
        if (j + 1) % 100 == 0:
            logger.info("FoV %g: %d/%d queries, %.0f s", fov, j + 1, len(rows),
                        time.perf_counter() - t0)  # fmt: skip
    photo = fov < 360
    cal = loc.calibration
    ms_known = float(np.median(t_known) * 1000)
    results = [{"fov": fov, "heading": "known", "headings": None, "ms_per_query": ms_known,
                **summarize(known, photo, cal)}]  # fmt: skip
    timed = rows[: args.time_queries]
    for n in args.headings:
        ms, mismatches = [], 0
        old = loc.headings, loc.photo_headings
        loc.headings = loc.photo_headings = n
        try:
            for j, i in enumerate(timed):
                img = load_rgb(split.query_paths[i])
                t = time.perf_counter()
                obs = loc.observe(img, top_k=TOP_K, fov_deg=fov_arg)
                ms.append(time.perf_counter() - t)
                tile, heading = unknown[n][j]["answer"]
                mismatches += int(obs.ids[0]) != tile or abs(obs.heading_deg - heading) > 1e-4
        finally:
            loc.headings, loc.photo_headings = old
        s = summarize(unknown[n], photo, cal)
        s["heading_median_deg"] = s.get(
            "heading_refined_median_deg" if sdk.REFINE_HEADING else "heading_plain_median_deg"
        )
        results.append({"fov": fov, "heading": "unknown", "headings": n,
                        "ms_per_query": float(np.median(ms) * 1000) if ms else None,
                        "timed_queries": len(ms), "sdk_mismatches": mismatches, **s})  # fmt: skip
    per_query = {
        "query": [str(split.query_paths[i]) for i in rows],
        "known": known,
        "unknown": {str(n): [{k: v for k, v in r.items() if k != "answer"} for r in recs]
                    for n, recs in unknown.items()},
    }  # fmt: skip
    return results, per_query


def swap_query(bundle: Path, model: Path, out: Path) -> Path:
    """A copy of ``bundle`` at ``out`` whose query model is ``model`` (same file name; the
    manifest's entry and checksum rewritten), without the calibration, verified by loading."""
    from d4g_edge._manifest import query_keys, read_manifest
    from d4g_edge.runtime import open_encoder

    manifest = read_manifest(bundle)
    key, extra = query_keys(manifest["models"])
    entry = dict(manifest["models"][key])
    cfg = open_encoder(model).config
    if out.exists():
        raise D4GEdgeError(f"--swap-out {out} exists; remove it or choose another folder")
    shutil.copytree(bundle, out)
    name = entry["file"]
    shutil.copyfile(model, out / name)
    files = dict(manifest["files"])
    for dropped in manifest["models"].get(extra, []) or []:  # the old model's other formats
        for f in (dropped["file"], dropped["file"] + ".json"):
            files.pop(f, None)
            (out / f).unlink(missing_ok=True)
    cal = (manifest.get("calibration") or {}).get("file")
    if cal:
        files.pop(cal, None)
        (out / cal).unlink(missing_ok=True)
    files[name] = sha256_file(out / name)
    entry.update(config=cfg.to_dict(), sha256=files[name], source=str(model),
                 model_id=cfg.model_id)  # fmt: skip
    models = {k: v for k, v in manifest["models"].items() if k != extra}
    models[key] = entry
    new = {k: v for k, v in manifest.items() if k != "calibration"}
    new.update(models=models, files=files)
    atomic_write_json(out / MANIFEST, new)
    Bundle.load(out)  # every checksum and the pairing, as a Localizer will
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    p.add_argument("--bundle", type=Path, default=None, help="default: the bundled default")
    p.add_argument("--photos", type=Path, required=True, help="train.synth.photos output")
    p.add_argument("--data", type=Path, default=None, help="default: photos_info.json's")
    p.add_argument("--fov", type=float, nargs="+", default=list(FOVS))
    p.add_argument("--headings", type=int, nargs="+", default=[sdk.DEFAULT_HEADINGS])
    p.add_argument("--queries", type=int, default=0, help="seeded subset per FoV (0: all)")
    p.add_argument("--time-queries", type=int, default=20, help="timed SDK calls per FoV and N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--swap-query", type=Path, default=None, help="another query model (.onnx)")
    p.add_argument("--swap-out", type=Path, default=None, help="where the swapped copy goes")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    setup_logging()
    args.headings = sorted(set(args.headings))
    bundle = args.bundle or localizer.default_bundle_path()
    tmp = None
    try:
        if args.swap_query is not None:
            if args.swap_out is None:
                tmp = tempfile.TemporaryDirectory(prefix="bench_photo_")
                args.swap_out = Path(tmp.name) / "bundle"
            bundle = swap_query(bundle, args.swap_query, args.swap_out)
            print(f"benchmarking {bundle}: {args.bundle or 'the default'} with {args.swap_query}")
        loc = Localizer(bundle, threads=args.threads)
        results, per_query = [], {}
        for fov in args.fov:
            r, q = bench_fov(loc, args.photos, args.data, float(fov), args)
            results += r
            per_query[f"{fov:g}"] = q
            print(format_table(r), flush=True)
    except D4GEdgeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(format_table(results))
    if args.json:
        cal = loc.calibration
        report = {
            "bundle": str(args.bundle or "default"),
            "query_model": str(args.swap_query or loc.bundle.query_path),
            "photos": str(args.photos),
            "headings": args.headings,
            "refine_heading": sdk.REFINE_HEADING,
            "calibration": None if cal is None else {
                "photo_groups": cal.has_photo_groups, "heading_fits": sorted(cal.heading)},
            "command": "python -m benchmarks.bench_photo " + " ".join(argv or sys.argv[1:]),
            "results": results,
            "per_query": per_query,
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
