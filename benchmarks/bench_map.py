"""Map scale: every index kind on the same rows, as a device would use it (not a test).

For each kind (:mod:`benchmarks._map_kinds`: the SDK's float16 / hnswlib / pca-int8 and
faiss-cpu / usearch candidates) the table gives bytes per km², build time (all cores), open
time and the RSS it adds (in a fresh process, warm page cache), p50/p90 of one query on one
thread, recall@1 against exact float32 search (tie-aware), and end-to-end R@1: a query's
best tile (its rows deduplicated, as ``Localizer`` does) is its true tile, plus the share
whose best row lies within 25 m.

Rows (one of):

* ``--bundle DIR``: a real map's rows: a bundle that keeps them (``--storage float16``),
  e.g. ``python -m tools.build_index --world 7 --size-m 3200 ... --storage float16``, or
  several such towns built side by side (``--origin``) as one map (``--bundle A B ...``);
  queries are panoramas rendered in those worlds (``--queries FILE`` caches them), or a
  VIGOR-layout dataset's test panoramas (``--vigor-data DIR``, for the bundled default);
* ``--model N [N ...] --bundle DIR``: N rows modelled on that bundle's rows and queries
  (:class:`benchmarks._map_data.RowModel`), e.g. 10^6 and 10^7, drawn band by band to a
  float16 memory map under ``--work``; queries by ``--query-model``: ``real-residuals:1``
  (the default), a row plus a real query's residual vector as measured; ``real-residuals``
  and ``gaussian`` (independent noise per component), scaled to the real map's exact R@1.
  At 122,500 rows the default's recall matches the real queries' best (hnswlib / flat /
  ivf 0.983 / 0.976 / 0.862 against 0.993 / 0.927 / 0.920; the scaled models 0.94 /
  0.89 / 0.66-0.68), but its exact R@1 is far higher (88 % against 16.7 %): the modelled
  rows are less alike than real ones (a real row's best match beyond 45 m: median cosine
  0.96, a modelled row's 0.83), which no query model can make up for.

The reference is an exact float32 scan that streams the rows (all queries in one pass).
Where the rows as float32 exceed ``--max-ram-gb`` (10^7 x 512 x 4 = 20 GB), only the
compressed kinds that can be built chunk by chunk from the memory map are built
(``benchmarks._map_stream.STREAMED``); the others (exact float32, hnswlib, faiss, usearch,
the float16 re-rank store) are skipped and listed as such.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.bench_map --bundle runs/world10 \\
        --queries runs/world10_queries.npz --json runs/bench_map.json
    python -m benchmarks.bench_map --bundle runs/world10 --queries ... --model 1000000 \\
        --kinds "pca-int8 ivf" "hnswlib M16" --query-model real-residuals gaussian
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
    map_rows,
    towns_queries,
    truth_tiles,
    vigor_queries,
)
from benchmarks._map_kinds import KINDS
from benchmarks._map_stream import STREAMED, build_streamed, load_or_fit, modelled_map
from benchmarks._row_fields import exact_scan
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
    rows = np.load(spec["rows"], mmap_mode="r")  # float32, or float16 for modelled maps
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


def _rows_on_disk(work: Path, rows: np.ndarray) -> Path:
    path = work / "rows.npy"
    work.mkdir(parents=True, exist_ok=True)
    if not (isinstance(rows, np.memmap) and Path(rows.filename).resolve() == path.resolve()):
        np.save(path, rows)
    return path


def _reference(sub: Path, rows, tile_of_row, name, q, truth, latlon) -> dict:
    """Write one query set's files for the children; its exact float32 reference by a scan
    that streams the rows (every query in one pass)."""
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir(parents=True)
    np.save(sub / "queries.npy", q)
    t = time.perf_counter()
    best, at = exact_scan(rows, q)
    ref = {"set": name, "kind": "exact float32 scan", "rows": len(rows), "queries": len(q)}
    ref["scan_s"] = time.perf_counter() - t
    np.save(sub / "exact_best.npy", best)
    if truth is not None:
        np.save(sub / "truth_tile.npy", truth)
        np.save(sub / "tile_of_row.npy", tile_of_row)
        ref["r_at_1"] = 100.0 * float(np.mean(tile_of_row[at] == truth))
    if latlon is not None:
        np.save(sub / "row_latlon.npy", latlon[0])
        np.save(sub / "query_latlon.npy", latlon[1])
    logger.info("%s reference: %s", name, json.dumps(ref))
    return ref


def run_set(work, rows, tile_of_row, qsets, area_km2, per_tile, args):
    """Build every kind on ``rows`` once and measure it in a fresh process per query set.

    ``rows``: float32 in memory, or the float16 memory map ``work/rows.npy`` of a modelled
    map; ``qsets``: (name, queries, true tiles, (rows', queries' positions) or None for
    the within-25 m column). Kinds whose build takes the rows as float32 in memory are
    skipped when that exceeds ``--max-ram-gb``; the compressed kinds of
    ``_map_stream.STREAMED`` are then built chunk by chunk from the memory map instead."""
    rows_path = _rows_on_disk(work, rows)
    subs = [work / name.replace(" ", "_") for name, *_ in qsets]
    refs = [_reference(sub, rows, tile_of_row, *qs) for sub, qs in zip(subs, qsets, strict=True)]
    in_ram = len(rows) * rows.shape[1] * 4 <= args.max_ram_gb * 1e9
    rows32, results = None, []
    for kname in args.kinds:
        kind = KINDS[kname]
        try:
            for lib in kind.needs:
                __import__(lib)
        except ImportError:
            logger.warning("%s: %s is not installed, skipped", kname, kind.needs)
            continue
        if not in_ram and kname not in STREAMED:
            gb = len(rows) * rows.shape[1] * 4 / 1e9
            logger.warning(
                "%s: skipped at %d rows: its build takes the rows as float32 in memory "
                "(%.1f GB > --max-ram-gb %.1f)", kname, len(rows), gb, args.max_ram_gb,
            )  # fmt: skip
            for ref in refs:
                ref.setdefault("skipped", []).append(kname)
            continue
        folder = work / "index" / kname.replace(" ", "_").replace("+", "_")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        t = time.perf_counter()
        if in_ram:
            rows32 = np.asarray(rows, np.float32) if rows32 is None else rows32
            kind.build(rows32, folder)
        else:
            build_streamed(STREAMED[kname], rows, folder)
        build_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in folder.iterdir())
        for sub, (name, _, _, latlon) in zip(subs, qsets, strict=True):
            spec = {"kind": kname, "work": str(sub), "rows": str(rows_path)}
            spec |= {"folder": str(folder), "dim": rows.shape[1], "count": len(rows)}
            spec |= {"k": args.k, "per_tile": per_tile, "latlon": latlon is not None}
            r = {"set": name, "kind": kname, "library": kind.library, "what": kind.what}
            r |= {"rows": len(rows), "area_km2": area_km2, "bytes": size, "build_s": build_s}
            r["streamed_build"] = not in_ram
            r["mb_per_km2"] = size / 1e6 / area_km2
            r |= _child(spec)
            logger.info("%s %s: %s", name, kname, json.dumps(r))
            results.append(r)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return results, refs


def table(results: list[dict], refs: list[dict] = ()) -> str:
    head = (
        f"{'rows':>9} {'queries':16} {'kind':24} {'MB/km2':>7} {'MB':>8} {'build s':>8} "
        f"{'open ms':>8} "
        f"{'RSS MB':>7} {'p50 ms':>7} {'p90 ms':>7} {'R@1 vs f32':>10} {'R@1 %':>6} {'<=25m %':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['rows']:>9} {r['set'].split(' ', 1)[-1]:16} {r['kind']:24} "
            f"{r['mb_per_km2']:7.2f} {r['bytes'] / 1e6:8.1f} "
            f"{r['build_s']:8.1f} {r['open_s'] * 1e3:8.1f} {r['rss_after_search_mb']:7.1f} "
            f"{r['p50_ms']:7.3f} {r['p90_ms']:7.3f} {r['recall_at_1']:10.3f} "
            f"{r.get('r_at_1', float('nan')):6.2f} {r.get('within_25m', float('nan')):7.2f}"
        )
    for r in refs:
        lines.append(
            f"{r['set']}: exact float32 scan of {r['rows']} rows, {r['queries']} queries in one "
            f"pass: {r['scan_s']:.1f} s; R@1 {r.get('r_at_1', float('nan')):.2f} %"
            + (
                f"; skipped (too large as float32): {', '.join(r['skipped'])}"
                if "skipped" in r
                else ""
            )
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_map", description=__doc__.split("Usage")[0]
    )
    p.add_argument(
        "--bundle",
        type=Path,
        nargs="+",
        help="a map that keeps its rows (float16 storage), or towns built side by side "
        "(--origin) as one map",
    )
    p.add_argument("--queries", type=Path, help="world queries .npz (rendered when missing)")
    p.add_argument("--n-queries", type=int, default=300, help="world panoramas to render")
    p.add_argument(
        "--vigor-data", type=Path, help="queries: this VIGOR-layout dataset's test panoramas"
    )
    p.add_argument("--model", type=int, nargs="*", default=[], help="also N modelled rows")
    p.add_argument("--model-queries", type=int, default=300)
    p.add_argument(
        "--query-model",
        nargs="+",
        default=["real-residuals:1"],
        help="modelled queries: real-residuals:S (a row plus a real query's residual vector "
        "times S; 1, the default: as measured), real-residuals or gaussian (the residual "
        "vectors, or independent noise per component, scaled to the real map's exact R@1); "
        "several: one set each",
    )
    p.add_argument(
        "--max-ram-gb",
        type=float,
        default=8.0,
        help="modelled rows larger than this as float32 are only built by the streamed kinds",
    )
    p.add_argument(
        "--reuse-rows", action="store_true", help="reuse a modelled map drawn by an earlier run"
    )
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
    rows = map_rows(args.bundle) if args.bundle is not None else None
    queries = None
    if args.queries is not None and args.queries.is_file():
        with np.load(args.queries) as f:
            queries = {k: f[k] for k in f.files}
    elif rows is not None and args.vigor_data is not None:
        queries = vigor_queries(args.bundle[0], args.vigor_data)
        if args.queries is not None:
            np.savez(args.queries, **queries)
    elif rows is not None:
        queries = towns_queries(args.bundle, args.n_queries)
        if args.queries is not None:
            np.savez(args.queries, **queries)
    results, refs = [], []
    if not args.no_real:
        truth = truth_tiles(rows, queries["query_latlon"])
        qs = [("real", queries["query"], truth, (rows.latlon, queries["query_latlon"]))]
        res, ref = run_set(args.work, rows.vectors, rows.tile_of_row, qs, rows.area_km2,
                           rows.per_tile, args)  # fmt: skip
        results, refs = results + res, refs + ref
    if args.model:
        model = load_or_fit(args, rows, queries)
        for n in args.model:
            work = args.work / f"model{model.grid(n).count}"
            v, tile_of_row, make_q, draw = modelled_map(model, n, work, args.reuse_rows)
            qs = [
                (f"{work.name} {qm}", *make_q(args.model_queries, n + 1, qm)[:2], None)
                for qm in args.query_model
            ]
            res, ref = run_set(work, v, tile_of_row, qs, len(v) * model.km2_per_row,
                               model.per_tile, args)  # fmt: skip
            results, refs = results + res, refs + [r | draw for r in ref]
            del v
    print(table(results, refs))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "argv": argv,
                    "machine": platform.processor(),
                    "cores": os.cpu_count(),
                    "results": results,
                    "references": refs,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
