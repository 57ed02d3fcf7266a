"""What limits pca-int8's recall: components kept, int8 rounding, and the lists probed (not a
test). Reads the rows, queries and exact answers ``benchmarks.bench_map`` left in a set's
work folder (``--keep`` not needed: those three files stay).

* ``codes``: recall@1 against exact float32 of the rows' PCA reconstruction with r
  components, as floats, as int8 (the pca-int8 codes), and with int16 for the first 16;
* ``probe``: one pca-int8 ivf index searched with more and more lists (p50/p90, recall).

Usage::

    python -m benchmarks.bench_codes codes runs/bench_map/real
    OMP_NUM_THREADS=1 python -m benchmarks.bench_codes probe runs/bench_map/model1221025
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from d4g_edge.index import EmbeddingIndex, IndexParams


def _load(work: Path):
    rows = np.load(work / "rows.npy", mmap_mode="r")
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


def probe(work: Path, probes=(16, 32, 64, 128, 256)) -> list[dict]:
    rows, q, exact = _load(work)
    params = IndexParams(storage="pca-int8", pca_dims=64, probe=probes[0])
    index = EmbeddingIndex.build(np.asarray(rows), params)
    out = []
    for p in probes:
        index.params = dataclasses.replace(params, probe=p)
        for i in range(min(5, len(q))):
            index.search(q[i : i + 1], k=10)
        ms, top = [], []
        for i in range(len(q)):
            t = time.perf_counter()
            ids, _ = index.search(q[i : i + 1], k=10)
            ms.append((time.perf_counter() - t) * 1e3)
            top.append(ids[0, 0])
        res = {"lists": index.lists, "probe": p, "recall_at_1": _recall(q, rows, exact, top)}
        res |= {"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}
        print(json.dumps(res), flush=True)
        out.append(res)
    every = index.search_exact(q, k=1)[0][:, 0]
    print(json.dumps({"probe": "every code", "recall_at_1": _recall(q, rows, exact, every)}))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_codes", description=__doc__)
    p.add_argument("what", choices=("codes", "probe"))
    p.add_argument("work", type=Path, help="a bench_map set folder (rows.npy, queries.npy, ...)")
    args = p.parse_args(argv)
    (codes if args.what == "codes" else probe)(args.work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
