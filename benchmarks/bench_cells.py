"""Cell-sharded bundles loaded by prior, at 10^6 rows and more (not a test).

Draws a map modelled on a real one (:class:`benchmarks._map_data.RowModel`, fitted by
``benchmarks.bench_map --model-file``), writes it as a cell-sharded bundle (``--cells``: one
index per ~1.1 km cell, ``d4g_edge.cells``), then opens it twice in fresh processes: whole,
and only the cells within ``--radius-m`` of a prior (``Bundle.load(region=...)``). For each:
open time, RSS, and one-thread p50 of a search restricted to the prior (what a tracker with
a position does).

Usage::

    python -m benchmarks.bench_cells --model-file runs/world10_model.npz \\
        --like runs/world10 --rows 1225000 --out runs/cells_1m --json runs/bench_cells.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._map_data import RowModel
from d4g_edge.bundle import write_bundle
from d4g_edge.geo import offset_latlon
from d4g_edge.index import IndexParams
from d4g_edge.log import logger, setup_logging
from d4g_edge.tiletable import TileTable


def write_map(model: RowModel, rows: int, like: Path, out: Path, spacing_m: float) -> dict:
    """The modelled map as a cell-sharded pca-int8 bundle; returns queries near its middle."""
    v, tile_of_row, side, make_q = model.draw(rows, seed=rows)
    b = round(float(np.sqrt(model.per_tile)))
    tiles_side = side // b
    # grid position of each (tile-major) row -> metres east / south of the map's corner
    t = np.arange(len(v))
    tile, k = t // model.per_tile, t % model.per_tile
    gi = (tile // tiles_side) * b + k // b
    gj = (tile % tiles_side) * b + k % b
    lat, lon = offset_latlon(
        np.full(len(v), 40.0), np.full(len(v), -88.0), gj * spacing_m, -gi * spacing_m
    )
    table = TileTable.from_rows(tile_of_row, lat, lon, np.full(len(v), 90.0))
    manifest = json.loads((like / "manifest.json").read_text())
    params = IndexParams(storage="pca-int8", pca_dims=64, probe=16)
    t0 = time.perf_counter()
    write_bundle(out, v, table, manifest["models"]["satellite"], params=params, cells=True)
    build_s = time.perf_counter() - t0
    q, _, where = make_q(50, rows + 1)
    mid = np.abs(where - side / 2).max(1) < side / 8  # near the middle: a full disc of cells
    qlat, qlon = offset_latlon(
        np.full(len(q), 40.0),
        np.full(len(q), -88.0),
        where[:, 1] * spacing_m,
        -where[:, 0] * spacing_m,
    )
    np.savez(out.with_suffix(".queries.npz"), query=q[mid], lat=qlat[mid], lon=qlon[mid])
    return {"rows": len(v), "build_s": build_s, "bytes": _bytes(out)}


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(spec: dict) -> dict:
    """In a fresh process: open the bundle (whole or by region), search with the prior."""
    from d4g_edge.bundle import Bundle

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    out = Path(spec["out"])
    with np.load(out.with_suffix(".queries.npz")) as f:
        q, lat, lon = f["query"], f["lat"], f["lon"]
    base = rss()
    t = time.perf_counter()
    region = (float(lat[0]), float(lon[0]), spec["radius_m"]) if spec["region"] else None
    b = Bundle.load(out, region=region)
    open_s = time.perf_counter() - t
    rss_open = rss() - base
    t = time.perf_counter()
    cand = b.tiles.within(float(lat[0]), float(lon[0]), spec["radius_m"] * 0.5)
    within_ms = (time.perf_counter() - t) * 1e3
    ms = []
    for i in range(len(q)):
        t = time.perf_counter()
        b.index.search(q[i : i + 1], k=10, candidates=cand)
        ms.append((time.perf_counter() - t) * 1e3)
    return {
        "region": spec["region"],
        "cells_loaded": len(getattr(b.index, "parts", [])),
        "prior_rows": len(cand),
        "tiles_within_ms": within_ms,
        "open_s": open_s,
        "rss_open_mb": rss_open,
        "rss_after_search_mb": rss() - base,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_cells", description=__doc__)
    p.add_argument("--model-file", type=Path, required=True)
    p.add_argument("--like", type=Path, required=True, help="the real map (its satellite model)")
    p.add_argument("--rows", type=int, default=1_225_000)
    p.add_argument("--spacing-m", type=float, default=9.0, help="distance between centres")
    p.add_argument("--radius-m", type=float, default=1000.0, help="the prior's radius")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", type=Path)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return 0
    setup_logging()
    model = RowModel.load(args.model_file)
    built = write_map(model, args.rows, args.like, args.out, args.spacing_m)
    logger.info("wrote %s: %s", args.out, built)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    results = []
    for region in (False, True):
        spec = {"out": str(args.out), "region": region, "radius_m": args.radius_m}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_cells",
                "--model-file",
                "-",
                "--like",
                "-",
                "--out",
                "-",
                "--child",
                json.dumps(spec),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        logger.info("%s", results[-1])
    report = {"argv": sys.argv[1:] if argv is None else argv, **built, "loads": results}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
