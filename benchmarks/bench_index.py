"""HNSW vs exact search at scale: recall@1 and ms per query on one thread (not a test).

Two databases (``--data``):

* ``tiles`` (default) — a country-sized grid of tile embeddings modelled on a real bundle's:
  the principal components of the ``--like`` bundle's vectors (the bundled default: 90 % of
  the variance in 9 of 512 dimensions), each component a smooth random field over the grid
  whose correlation length (``--corr-steps`` grid steps) makes neighbouring tiles alike as
  overlapping tiles are, with the bundle's mean vector and per-component variance, plus the
  residual variance as white noise. Queries are embeddings at random off-grid positions
  (bilinear between four tiles) with the same spectrum-shaped noise again, so their exact
  nearest neighbour is a nearby tile but not a given one.
* ``uniform`` — independent random unit vectors: the worst case for any graph index (every
  point almost equally far from every other; greedy search has no gradient to follow). Real
  embeddings are nothing like it; reported for completeness.

Recall@1 is tie-aware against exact numpy search. The graph is built with all cores; queries
run one at a time on one thread, as on a device.

Usage::

    python -m benchmarks.bench_index --n 1000000 --M 16 --ef-construction 100 \\
        --ef 32 64 128 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from d4g_edge.cli.bench import perturbed_queries
from d4g_edge.index import EmbeddingIndex, IndexParams
from d4g_edge.localizer import DEFAULT_BUNDLE
from d4g_edge.log import logger, setup_logging


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # bounded temporaries
        x = rng.standard_normal((min(100_000, n - s), dim), dtype=np.float32)
        out[s : s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def tile_field(n: int, like: Path, corr_steps: float, seed: int):
    """(n, D) tile embeddings on a sqrt(n) x sqrt(n) grid, and a function giving queries
    at off-grid positions (see the module docstring)."""
    from scipy import ndimage

    from d4g_edge.bundle import Bundle

    b = Bundle.load(like)
    rows = np.arange(b.index.count)
    real = np.asarray(b.index.get_vectors(rows), np.float64)
    mean = real.mean(0)
    _, sv, basis = np.linalg.svd(real - mean, full_matrices=False)
    var = sv**2 / len(real)
    k = int(np.searchsorted(np.cumsum(var) / var.sum(), 0.99)) + 1  # 99 % in k fields
    resid = float(var[k:].sum() / real.shape[1])
    side = int(np.ceil(np.sqrt(n)))
    rng = np.random.default_rng(seed)
    coef = np.empty((side, side, k), np.float32)
    for j in range(k):  # one smooth unit-variance field per component
        f = ndimage.gaussian_filter(rng.standard_normal((side, side)), corr_steps, mode="wrap")
        coef[..., j] = f / f.std() * np.sqrt(var[j])
    basis_k = basis[:k].astype(np.float32)
    out = np.empty((n, real.shape[1]), np.float32)
    flat = coef.reshape(-1, k)
    for s in range(0, n, 100_000):
        e = min(s + 100_000, n)
        x = mean + flat[s:e] @ basis_k
        x += rng.normal(0, np.sqrt(resid), x.shape)
        out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)

    def queries(m: int, qseed: int) -> np.ndarray:
        r = np.random.default_rng(qseed)
        y, x = r.uniform(0, side - 1, m), r.uniform(0, side - 1, m)
        y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
        fy, fx = (y - y0)[:, None], (x - x0)[:, None]
        c = (
            coef[y0, x0] * (1 - fy) * (1 - fx)
            + coef[y0 + 1, x0] * fy * (1 - fx)
            + coef[y0, x0 + 1] * (1 - fy) * fx
            + coef[y0 + 1, x0 + 1] * fy * fx
        )
        c = c + r.standard_normal(c.shape) * np.sqrt(var[:k]) * 0.3  # the query's own view
        q = mean + c @ basis_k + r.normal(0, np.sqrt(resid), (m, real.shape[1]))
        return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)

    logger.info(
        "tile field: %d x %d grid, %d components (99 %% of %s's variance), corr %.1f steps",
        side,
        side,
        k,
        like,
        corr_steps,
    )
    return out, queries


def measure(index: EmbeddingIndex, queries: np.ndarray, exact_scores: np.ndarray, ef: int):
    index.hnsw.set_ef(ef)
    ms, hits = [], 0
    for i in range(len(queries)):
        q = queries[i : i + 1]
        t = time.perf_counter()
        _, dist = index.hnsw.knn_query(q, k=1, num_threads=1)
        ms.append((time.perf_counter() - t) * 1e3)
        hits += (1.0 - dist[0, 0]) >= exact_scores[i] - 1e-6
    return {
        "ef": ef,
        "recall_at_1": hits / len(queries),
        "ms_p50": float(np.median(ms)),
        "ms_mean": float(np.mean(ms)),
        "ms_p90": float(np.percentile(ms, 90)),
    }


def run(n: int, dim: int, M: int, ef_construction: int, efs, n_queries: int, seed: int, args):
    if args.data == "tiles":
        vectors, make_queries = tile_field(n, args.like, args.corr_steps, seed)
        dim = vectors.shape[1]
    else:
        vectors = random_unit(n, dim, seed)
    t = time.perf_counter()
    params = IndexParams(M=M, ef_construction=ef_construction, ef=max(efs), exact_threshold=0)
    index = EmbeddingIndex.build(vectors, params, threads=-1)
    build_s = time.perf_counter() - t
    logger.info("built n=%d in %.0f s", n, build_s)
    index.vectors = vectors  # exact reference search over the same vectors, without get_items
    result = {
        "n": n,
        "dim": dim,
        "data": args.data,
        "M": M,
        "ef_construction": ef_construction,
        "build_s": build_s,
        "build_threads": os.cpu_count(),
        "index_memory_mb": index.hnsw.element_count * (4 * dim + 8 * M + 16) / 2**20,
        "queries": {},
    }
    if args.data == "tiles":
        sets = {"tiles": make_queries(n_queries, seed + 3)}
    else:
        sets = {
            "near": perturbed_queries(index, n_queries, 0.8, seed + 1),
            "uniform": random_unit(n_queries, dim, seed + 2),
        }
    for name, q in sets.items():
        t = time.perf_counter()
        _, exact = index.search_exact(q, k=1)
        exact_ms = (time.perf_counter() - t) * 1e3 / len(q)
        rows = [measure(index, q, exact[:, 0], ef) for ef in efs]
        result["queries"][name] = {"exact_ms_per_query_batched": exact_ms, "hnsw": rows}
        for r in rows:
            logger.info(
                "n=%d %s ef=%d recall@1 %.4f  %.3f ms/query (p90 %.3f)",
                n,
                name,
                r["ef"],
                r["recall_at_1"],
                r["ms_p50"],
                r["ms_p90"],
            )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    p.add_argument("--n", type=int, nargs="+", default=[100_000])
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--M", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", choices=("tiles", "uniform"), default="tiles")
    p.add_argument("--like", type=Path, default=DEFAULT_BUNDLE, help="bundle to model tiles on")
    p.add_argument("--corr-steps", type=float, default=2.0, help="field correlation (steps)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    setup_logging()
    logger.info("argv: %s; machine: %s, %d cores", vars(args), platform.processor(), os.cpu_count())
    results = [
        run(n, args.dim, args.M, args.ef_construction, args.ef, args.queries, args.seed, args)
        for n in args.n
    ]
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
