"""Latency and search-quality figures of a bundle on this machine (``d4g-edge bench``).

Measures, on one query at a time: the ground encoder alone, the index search alone, and
``Localizer.localize`` end to end (known heading, one encoder call), as p50/p90 in ms; the
index's memory; and HNSW recall@1 against exact search on queries made by perturbing tile
embeddings (cosine ~0.8 to their tile, like a real query to its true tile), tie-aware (an
HNSW answer that scores the same as the exact best counts as a hit).

Usage::

    from d4g_edge.bench import bench
    report = bench(Localizer("bundles/town", threads=1), queries=100)
"""

from __future__ import annotations

import time

import numpy as np

from d4g_edge.localizer import Localizer


def _pct(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90))}


def _timed(fn, n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def hnsw_recall_at_1(index, queries: np.ndarray) -> float:
    """Tie-aware recall@1 of ``index.search`` (HNSW when large) against exact search."""
    if index.exact:
        return 1.0
    _, approx = index.search(queries, k=1)
    _, exact = index.search_exact(queries, k=1)
    return float((approx[:, 0] >= exact[:, 0] - 1e-6).mean())


def perturbed_queries(index, n: int, cosine: float = 0.8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    loaded = index.loaded_ids()
    v = index.get_vectors(loaded[rng.integers(0, len(loaded), n)])
    noise = rng.normal(size=v.shape).astype(np.float32)
    noise -= (noise * v).sum(1, keepdims=True) * v  # orthogonal to the tile vector
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = cosine * v + np.sqrt(1 - cosine**2) * noise
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def bench(loc: Localizer, queries: int = 50, seed: int = 0) -> dict:
    enc, index = loc.encoder, loc.bundle.index
    h, w = enc.config.input().size
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    x = enc.preprocess(img)
    z = enc.embed_tensor(x)
    q = perturbed_queries(index, max(queries, 100), seed=seed)
    report = {
        "tiles": index.count,
        "embed_dim": index.dim,
        "search": "exact" if index.exact else f"hnsw(M={index.params.M}, ef={index.params.ef})",
        "cells_loaded": len(getattr(index, "parts", [None])),
        "encoder": _pct(_timed(lambda: enc.embed_tensor(enc.preprocess(img)), queries)),
        "search_only": _pct(_timed(lambda: index.search(z, k=5), queries)),
        "end_to_end": _pct(_timed(lambda: loc.localize(img, heading=0.0), queries)),
        "end_to_end_unknown_heading": _pct(_timed(lambda: loc.localize(img), queries)),
        "index_memory_mb": index.memory_bytes() / 2**20,
        "hnsw_recall_at_1": hnsw_recall_at_1(index, q),
    }
    report["end_to_end_over_encoder"] = report["end_to_end"]["p50_ms"] / report["encoder"]["p50_ms"]
    return report


def format_report(r: dict) -> str:
    lines = [f"{r['tiles']} tiles, {r['embed_dim']}-d, search: {r['search']}"]
    for key in ("encoder", "search_only", "end_to_end", "end_to_end_unknown_heading"):
        lines.append(f"{key:28s} p50 {r[key]['p50_ms']:8.2f} ms   p90 {r[key]['p90_ms']:8.2f} ms")
    lines.append(f"{'end-to-end / encoder (p50)':28s} {r['end_to_end_over_encoder']:.2f}x")
    lines.append(f"{'index memory':28s} {r['index_memory_mb']:.1f} MiB")
    lines.append(f"{'HNSW recall@1 vs exact':28s} {r['hnsw_recall_at_1']:.4f}")
    return "\n".join(lines)
