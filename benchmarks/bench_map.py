"""Map scale: every index kind on the same rows, as a device would use it (not a test).

For each kind (:mod:`benchmarks._map_kinds`: the SDK's float16 / hnswlib / pca-int8 and
faiss-cpu / usearch candidates) the table gives bytes per km², build time (all cores), open
time and the RSS it adds (in a fresh process, warm page cache), p50/p90 of one query on one
thread, recall@1 against exact float32 search (tie-aware), and end-to-end R@1: a query's
best tile (its rows deduplicated, as ``Localizer`` does) is its true tile, plus the share
whose best row lies within 25 m.

Rows (one of):

* ``--bundle DIR``: a real map's rows: a bundle that keeps them (``--storage float16``),
  e.g. ``python -m tools.build_index --world 7 --size-m 3200 ... --storage float16``;
  queries are panoramas rendered in that world (``--queries FILE`` caches them), or a
  VIGOR-layout dataset's test panoramas (``--vigor-data DIR``, for the bundled default);
* ``--model N [N ...] --bundle DIR``: N rows modelled on that bundle's rows and queries
  (:class:`benchmarks._map_data.RowModel`), e.g. 10^6 and 10^7.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.bench_map --bundle runs/world10 \\
        --queries runs/world10_queries.npz --json runs/bench_map.json
    python -m benchmarks.bench_map --bundle runs/world10 --queries ... --model 1000000 \\
        --kinds "pca-int8 ivf" "hnswlib M16"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._map_data import (
    RowModel,
    bundle_rows,
    truth_tiles,
    vigor_queries,
    world_queries,
)
from benchmarks._map_kinds import KINDS
from d4g_edge.log import logger, setup_logging

E2E_TILES = 10  # end-to-end: rows for this many tiles are asked for, as train.evaluate


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(spec: dict) -> dict:
    """In a fresh process (``--child``): open one kind, time it, its recall and R@1."""
    kind = KINDS[spec["kind"]]
    for lib in kind.needs:  # the library's own import is not the index's RSS
        __import__(lib)
    work, folder = Path(spec["work"]), Path(spec["folder"])
    q = np.load(work / "queries.npy")
    base = _rss_mb()
    t = time.perf_counter()
    searcher = kind.open(folder, spec["dim"], spec["count"])
    open_s = time.perf_counter() - t
    rss_open = _rss_mb() - base
    for i in range(min(5, len(q))):  # warm-up
        kind.search(searcher, q[i : i + 1], spec["k"])
    ms, top1 = [], []
    for i in range(len(q)):
        t = time.perf_counter()
        ids, _ = kind.search(searcher, q[i : i + 1], spec["k"])
        ms.append((time.perf_counter() - t) * 1e3)
        top1.append(int(ids[0, 0]))
    rss_search = _rss_mb() - base
    rows = np.load(work / "rows.npy", mmap_mode="r")
    got = np.einsum("qd,qd->q", q, np.asarray(rows[np.asarray(top1)], np.float32))
    exact = np.load(work / "exact_best.npy")
    out = {
        "open_s": open_s,
        "rss_open_mb": rss_open,
        "rss_after_search_mb": rss_search,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "recall_at_1": float((got >= exact - 1e-6).mean()),
    }
    if (work / "truth_tile.npy").is_file():
        tile_of_row = np.load(work / "tile_of_row.npy", mmap_mode="r")
        truth = np.load(work / "truth_tile.npy")
        per_tile = spec["per_tile"]
        hits, near = 0, 0
        row_latlon = np.load(work / "row_latlon.npy", mmap_mode="r") if spec["latlon"] else None
        qll = np.load(work / "query_latlon.npy") if spec["latlon"] else None
        for i in range(len(q)):
            ids, _ = kind.search(searcher, q[i : i + 1], E2E_TILES * per_tile)
            hits += int(tile_of_row[ids[0, 0]] == truth[i])
            if row_latlon is not None:
                from d4g_edge.geo import haversine_m

                lat, lon = row_latlon[ids[0, 0]]
                near += int(haversine_m(qll[i, 0], qll[i, 1], lat, lon) <= 25.0)
        out["r_at_1"] = 100.0 * hits / len(q)
        if row_latlon is not None:
            out["within_25m"] = 100.0 * near / len(q)
    return out


def _child(spec: dict) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_map", "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['kind']}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _exact_best(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    best = np.full(len(q), -np.inf, np.float32)
    for s in range(0, len(rows), 262_144):
        best = np.maximum(best, (q @ rows[s : s + 262_144].T).max(1))
    return best


def run_set(name, rows, tile_of_row, q, truth, area_km2, per_tile, args, row_latlon=None, qll=None):
    """Build every kind on ``rows`` and measure each in a fresh process."""
    work = args.work / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    np.save(work / "rows.npy", rows)
    np.save(work / "queries.npy", q)
    np.save(work / "exact_best.npy", _exact_best(rows, q))
    if truth is not None:
        np.save(work / "truth_tile.npy", truth)
        np.save(work / "tile_of_row.npy", tile_of_row)
    if row_latlon is not None:
        np.save(work / "row_latlon.npy", row_latlon)
        np.save(work / "query_latlon.npy", qll)
    results = []
    for kname in args.kinds:
        kind = KINDS[kname]
        try:
            for lib in kind.needs:
                __import__(lib)
        except ImportError:
            logger.warning("%s: %s is not installed, skipped", kname, kind.needs)
            continue
        folder = work / kname.replace(" ", "_").replace("+", "_")
        folder.mkdir()
        t = time.perf_counter()
        kind.build(rows, folder)
        build_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in folder.iterdir())
        spec = {
            "kind": kname,
            "work": str(work),
            "folder": str(folder),
            "dim": rows.shape[1],
            "count": len(rows),
            "k": args.k,
            "per_tile": per_tile,
            "latlon": row_latlon is not None,
        }
        r = {"set": name, "kind": kname, "library": kind.library, "what": kind.what}
        r |= {"rows": len(rows), "area_km2": area_km2, "bytes": size, "build_s": build_s}
        r["mb_per_km2"] = size / 1e6 / area_km2
        r |= _child(spec)
        logger.info("%s %s: %s", name, kname, json.dumps(r))
        results.append(r)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return results


def table(results: list[dict]) -> str:
    head = (
        f"{'rows':>9} {'kind':24} {'MB/km2':>7} {'MB':>8} {'build s':>8} {'open ms':>8} "
        f"{'RSS MB':>7} {'p50 ms':>7} {'p90 ms':>7} {'R@1 vs f32':>10} {'R@1 %':>6} {'<=25m %':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['rows']:>9} {r['kind']:24} {r['mb_per_km2']:7.2f} {r['bytes'] / 1e6:8.1f} "
            f"{r['build_s']:8.1f} {r['open_s'] * 1e3:8.1f} {r['rss_after_search_mb']:7.1f} "
            f"{r['p50_ms']:7.3f} {r['p90_ms']:7.3f} {r['recall_at_1']:10.3f} "
            f"{r.get('r_at_1', float('nan')):6.2f} {r.get('within_25m', float('nan')):7.2f}"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_map", description=__doc__.split("Usage")[0]
    )
    p.add_argument("--bundle", type=Path, help="a map that keeps its rows (float16 storage)")
    p.add_argument("--queries", type=Path, help="world queries .npz (rendered when missing)")
    p.add_argument("--n-queries", type=int, default=300, help="world panoramas to render")
    p.add_argument(
        "--vigor-data", type=Path, help="queries: this VIGOR-layout dataset's test panoramas"
    )
    p.add_argument("--model", type=int, nargs="*", default=[], help="also N modelled rows")
    p.add_argument("--model-queries", type=int, default=300)
    p.add_argument("--model-file", type=Path, help="the fitted model (.npz): reused if present")
    p.add_argument("--no-real", action="store_true", help="only the modelled sets")
    p.add_argument("--kinds", nargs="+", default=sorted(KINDS), choices=sorted(KINDS))
    p.add_argument("--k", type=int, default=10, help="neighbours per timed search")
    p.add_argument("--work", type=Path, default=Path("runs/bench_map"), help="index files")
    p.add_argument("--keep", action="store_true", help="keep the index files")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return 0
    setup_logging()
    if args.bundle is None and (args.model_file is None or not args.no_real):
        parser().error("--bundle is required (the real map, or the one --model is fitted on)")
    argv = sys.argv[1:] if argv is None else argv
    logger.info("argv: %s; %s, %d cores", argv, platform.processor(), os.cpu_count())
    rows = bundle_rows(args.bundle) if args.bundle is not None else None
    queries = None
    if args.queries is not None and args.queries.is_file():
        with np.load(args.queries) as f:
            queries = {k: f[k] for k in f.files}
    elif rows is not None and args.vigor_data is not None:
        queries = vigor_queries(args.bundle, args.vigor_data)
        if args.queries is not None:
            np.savez(args.queries, **queries)
    elif rows is not None:
        queries = world_queries(args.bundle, args.n_queries)
        if args.queries is not None:
            np.savez(args.queries, **queries)
    results = []
    if not args.no_real:
        truth = truth_tiles(rows, queries["query_latlon"])
        results += run_set(
            "real",
            rows.vectors,
            rows.tile_of_row,
            queries["query"],
            truth,
            rows.area_km2,
            rows.per_tile,
            args,
            rows.latlon,
            queries["query_latlon"],
        )
    if args.model:
        if args.model_file is not None and args.model_file.is_file():
            model = RowModel.load(args.model_file)
        else:
            model = RowModel.fit(rows, queries)
            if args.model_file is not None:
                model.save(args.model_file)
        km2_per_row = model.km2_per_row
        for n in args.model:
            v, tile_of_row, _, make_q = model.draw(n, seed=n)
            q, tile, _ = make_q(args.model_queries, n + 1)
            results += run_set(
                f"model{len(v)}",
                v,
                tile_of_row,
                q,
                tile,
                len(v) * km2_per_row,
                model.per_tile,
                args,
            )
            del v
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "argv": argv,
                    "machine": platform.processor(),
                    "cores": os.cpu_count(),
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
