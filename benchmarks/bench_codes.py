"""What limits the compressed kinds' recall: components kept, rounding, bytes a row, and the
lists probed (not a test). Reads the rows, queries and exact answers ``benchmarks.bench_map``
left in a set's work folder (``--keep`` not needed: those files stay).

* ``codes``: recall@1 against exact float32 of the rows' PCA reconstruction with r
  components, as floats, as int8 (the pca-int8 codes), and with int16 for the first 16;
* ``probe``: one pca-int8 ivf index searched with more and more lists (p50/p90 wall, p50
  of the thread's CPU time, recall);
* ``bits``: the pca-bits kind (:mod:`d4g_edge.bitindex`) at several ``--row-bytes``: its
  bit allocation, file bytes a row, build time, and per probe p50/p90 and recall, plus
  every code scanned.

Usage::

    python -m benchmarks.bench_codes codes runs/bench_map/real
    OMP_NUM_THREADS=1 python -m benchmarks.bench_codes probe runs/bench_map/model1221025
    OMP_NUM_THREADS=1 python -m benchmarks.bench_codes bits runs/bench_map/real \
        --row-bytes 64 72 76 96 --probes 16 32 [--lists 17680] [--aniso-cos 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from d4g_edge.index import EmbeddingIndex, IndexParams


def _load(work: Path):
    """Rows (the set's, or its map's one folder up: bench_map keeps one rows.npy per map and
    a folder per query set), queries and exact best scores."""
    at = work if (work / "rows.npy").is_file() else work.parent
    rows = np.load(at / "rows.npy", mmap_mode="r")
    return rows, np.load(work / "queries.npy"), np.load(work / "exact_best.npy")


def _recall(q, rows, exact, top) -> float:
    got = np.einsum("qd,qd->q", q, np.asarray(rows[np.asarray(top)], np.float32))
    return float((got >= exact - 1e-6).mean())


def codes(work: Path, dims=(64, 96, 128, 192, 512)) -> list[dict]:
    rows, q, exact = _load(work)
    x = np.asarray(rows, np.float32)
    mean = x.mean(0)
    xc = x - mean
    fit = xc[np.random.default_rng(0).choice(len(x), min(len(x), 65_536), replace=False)]
    basis = np.linalg.eigh(fit.T @ fit)[1][:, ::-1]
    out = []
    for r in dims:
        b = basis[:, :r]
        y = xc @ b
        scale = np.abs(y).max(0) / 127
        y8 = np.clip(np.rint(y / scale), -127, 127) * scale
        y16 = y8.copy()
        s16 = np.abs(y[:, :16]).max(0) / 32767
        y16[:, :16] = np.rint(y[:, :16] / s16) * s16
        res = {"components": r}
        for name, yy in (("float", y), ("int8", y8), ("int16 first 16", y16)):
            res[name] = _recall(q, rows, exact, np.argmax(q @ (mean + yy @ b.T).T, axis=1))
        print(json.dumps(res), flush=True)
        out.append(res)
    return out


def probe(work: Path, probes=(16, 32, 64, 128, 256), lists: int = 0) -> list[dict]:
    rows, q, exact = _load(work)
    params = IndexParams(storage="pca-int8", pca_dims=64, lists=lists, probe=probes[0])
    index = EmbeddingIndex.build(np.asarray(rows), params)
    return _probes(index, params, probes, rows, q, exact, {})


def _probes(index, params, probes, rows, q, exact, head: dict) -> list[dict]:
    """One query at a time (k = 10) per probe: p50/p90 and recall; then every code."""
    out = []
    for p in probes:
        index.params = dataclasses.replace(params, probe=p)
        for i in range(min(5, len(q))):
            index.search(q[i : i + 1], k=10)
        ms, cpu, top = [], [], []
        for i in range(len(q)):
            t, c = time.perf_counter(), time.thread_time()
            ids, _ = index.search(q[i : i + 1], k=10)
            ms.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.thread_time() - c) * 1e3)  # without the waits for a shared core
            top.append(ids[0, 0])
        res = head | {"lists": index.lists, "probe": p}
        res["recall_at_1"] = _recall(q, rows, exact, top)
        res |= {"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}
        res["cpu_p50_ms"] = float(np.median(cpu))
        print(json.dumps(res), flush=True)
        out.append(res)
    every = index.search_exact(q, k=1)[0][:, 0]
    res = head | {"probe": "every code", "recall_at_1": _recall(q, rows, exact, every)}
    print(json.dumps(res), flush=True)
    return [*out, res]


def bits(
    work: Path, row_bytes=(64, 72, 76, 96), probes=(16, 32), lists: int = 0, aniso_cos=0.9
) -> list[dict]:
    """The pca-bits kind at each ``row_bytes``: file bytes a row, bits, recall, latency.
    ``lists``: k-means lists (0: the kind's automatic count, 4 sqrt(rows)); ``aniso_cos``:
    the codes' rounding (0: nearest, as before 2026-12-05)."""
    rows, q, exact = _load(work)
    n, dim = rows.shape
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for rb in row_bytes:
            params = IndexParams(
                storage="pca-bits", row_bytes=rb, lists=lists, probe=probes[0], aniso_cos=aniso_cos
            )
            t = time.perf_counter()
            EmbeddingIndex.build(rows, params).save(Path(tmp) / "index.bin")  # streams
            build_s = time.perf_counter() - t
            size = (Path(tmp) / "index.bin").stat().st_size
            index = EmbeddingIndex.load(Path(tmp) / "index.bin", dim, n, params)
            b = index.codec.bits
            head = {
                "row_bytes": rb,
                "aniso_cos": aniso_cos,
                "file_bytes_per_row": size / n,
                "build_s": build_s,
                "components": len(b),
                "bits": np.bincount(b).tolist(),
            }
            out += _probes(index, params, probes, rows, q, exact, head)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_codes", description=__doc__)
    p.add_argument("what", choices=("codes", "probe", "bits"))
    p.add_argument("work", type=Path, help="a bench_map set folder (rows.npy, queries.npy, ...)")
    p.add_argument("--row-bytes", type=int, nargs="+", default=[64, 72, 76, 96])
    p.add_argument("--probes", type=int, nargs="+", help="lists probed (default per command)")
    p.add_argument("--lists", type=int, default=0, help="k-means lists (0: automatic)")
    p.add_argument(
        "--aniso-cos", type=float, default=0.9, help="bits: the codes' rounding (0: nearest)"
    )
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    if args.what == "codes":
        out = codes(args.work)
    elif args.what == "probe":
        out = probe(args.work, args.probes or (16, 32, 64, 128, 256), args.lists)
    else:
        out = bits(args.work, args.row_bytes, args.probes or (16, 32), args.lists, args.aniso_cos)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
