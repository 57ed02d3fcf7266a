"""HNSW vs exact search at scale: recall@1 and ms per query on one thread (not a test).

Random unit vectors (D=512 by default) stand in for tile embeddings. Two query sets:
``near`` — a database vector mixed with orthogonal noise to cosine 0.8, like a ground query to
its true tile (the case the device meets); ``uniform`` — independent random unit vectors, the
worst case for any graph index (every neighbour is almost equally far; reported for
completeness, not a device scenario). Recall@1 is tie-aware against exact numpy search.
The graph is built with all cores; queries run one at a time on one thread, as on a device.

Usage::

    python -m benchmarks.bench_index --n 100000 1000000 --ef 64 128 256 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from d4g_edge._log import logger, setup_logging
from d4g_edge.bench import perturbed_queries
from d4g_edge.index import EmbeddingIndex, IndexParams


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # bounded temporaries
        x = rng.standard_normal((min(100_000, n - s), dim), dtype=np.float32)
        out[s : s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


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


def run(n: int, dim: int, M: int, ef_construction: int, efs, n_queries: int, seed: int) -> dict:
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
        "M": M,
        "ef_construction": ef_construction,
        "build_s": build_s,
        "build_threads": os.cpu_count(),
        "index_memory_mb": index.hnsw.element_count * (4 * dim + 8 * M + 16) / 2**20,
        "queries": {},
    }
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
    p.add_argument("--json", default=None)
    args = p.parse_args()
    setup_logging()
    logger.info("argv: %s; machine: %s, %d cores", vars(args), platform.processor(), os.cpu_count())
    results = [
        run(n, args.dim, args.M, args.ef_construction, args.ef, args.queries, args.seed)
        for n in args.n
    ]
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
