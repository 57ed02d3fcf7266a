"""Latency and search-quality figures of a bundle on this machine (``d4g-edge bench``).

Measures, on one query at a time: the ground encoder alone (preprocess + model), the index
search alone, and ``Localizer.localize`` end to end (known heading, one encoder call), as
p50/p90 wall ms and p50 CPU ms of the calling thread (steadier on a shared machine), all
three on the same picture (:func:`query_image`, which ``localize`` takes the whole way, trust
features and calibration included), the encoder and end to end in alternating blocks (their
ratio is the issue's target: both see the same load); the index's memory and the process's
RSS; and, for an approximate search, its recall@1 on queries made by perturbing tile
embeddings (cosine ~0.8 to their tile, like a real query to its true tile), tie-aware (an
answer that scores the same as the best counts as a hit), against what it approximates
(:func:`search_recall_at_1`). An exact search reports no recall: there is nothing
approximated to measure.

Usage::

    d4g-edge bench [--bundle DIR] [--queries 50] [--threads 1] [--json]

    from d4g_edge.cli.bench import bench
    report = bench(Localizer("bundles/town", threads=1), queries=100)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from d4g_edge.cli.args import positive_int
from d4g_edge.cli.output import dumps
from d4g_edge.localizer import Localizer


def add_parser(sub, bundle_help: str) -> None:
    bch = sub.add_parser(
        "bench", help="encoder / search / end-to-end latency, recall where the search approximates"
    )
    bch.add_argument("--bundle", type=Path, default=None, help=bundle_help)
    bch.add_argument(
        "--queries", type=positive_int, default=50, help="timed queries, >= 1 (default: 50)"
    )
    bch.add_argument(
        "--threads", type=positive_int, default=1, help="encoder threads, >= 1 (default: 1)"
    )
    bch.add_argument("--json", action="store_true", help="print the report as strict JSON")
    bch.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    report = bench(Localizer(args.bundle, threads=args.threads), queries=args.queries)
    print(dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _pct(ms: np.ndarray) -> dict[str, float]:
    """p50/p90 of the wall times (column 0) and p50 of the calling thread's CPU times
    (column 1) of timed calls."""
    return {
        "p50_ms": float(np.percentile(ms[:, 0], 50)),
        "p90_ms": float(np.percentile(ms[:, 0], 90)),
        "cpu_p50_ms": float(np.percentile(ms[:, 1], 50)),
    }


def _timed(fn, n: int, warmup: int = 3) -> np.ndarray:
    """(n, 2) ms of ``fn()``: wall time, and the calling thread's CPU time, which a shared
    machine's other processes do not lengthen (time spent waiting for a core is not in
    it). With ``--threads 1`` the encoder runs on the calling thread: the whole call."""
    for _ in range(warmup):
        fn()
    out = np.empty((n, 2))
    for i in range(n):
        t, c = time.perf_counter(), time.thread_time()
        fn()
        out[i] = (time.perf_counter() - t) * 1e3, (time.thread_time() - c) * 1e3
    return out


def _alternating(a, b, n: int, block: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_timed` of ``a`` and ``b``, ``n`` calls each, in alternating blocks of
    ``block``: a shared machine's load drifts over seconds, and a ratio of the two is fair
    only when both saw the same load. Each block starts with one untimed call, so that no
    timed call follows the other function (its data in the caches is then its own)."""
    out_a, out_b = [], []
    for start in range(0, n, block):
        m = min(block, n - start)
        out_a.append(_timed(a, m, warmup=1))
        out_b.append(_timed(b, m, warmup=1))
    return np.concatenate(out_a), np.concatenate(out_b)


def search_recall_at_1(index, queries: np.ndarray) -> tuple[float | None, str]:
    """Tie-aware recall@1 of ``index.search`` and what it is measured against, or None for
    an exact search (nothing approximated, nothing to measure).

    HNSW: exact search over the graph's own vectors. pca-int8: the exact cosines of its
    float16 store when it has one, else a scan of every code (the coarse lists' loss alone:
    the rows themselves are not in the bundle); None for a flat scan of the codes.
    """
    if index.exact:
        return None, "exact search: nothing approximated"
    ids, approx = index.search(queries, k=1)
    refine = getattr(index, "refine", None)
    if refine is not None:  # the float16 rows are there: score against them
        step = 65_536
        exact = np.concatenate(
            [
                queries @ np.asarray(refine[s : s + step], np.float32).T
                for s in range(0, len(refine), step)
            ],
            axis=1,
        ).max(1)
        got = np.einsum("qd,qd->q", queries, index.get_vectors(ids[:, 0]))
        return float((got >= exact - 1e-6).mean()), "exact cosines of the float16 rows"
    if index.hnsw is None and getattr(index, "lists", 1) <= 1:
        return None, (
            "every code scanned: the codes are the approximation, and the bundle keeps no "
            "rows to measure them against (benchmarks.bench_map does)"
        )
    _, exact = index.search_exact(queries, k=1)
    against = "exact search" if index.hnsw is not None else "a scan of every code"
    return float((approx[:, 0] >= exact[:, 0] - 1e-6).mean()), against


def describe(index) -> str:
    """The search a bundle's index does, in words."""
    p = index.params
    if index.exact:
        return "exact" + (" (float16 rows)" if p.storage == "float16" else "")
    if p.storage == "pca-int8":
        parts = [f"{p.pca_dims} PCA components as int8"]
        lists = getattr(index, "lists", 1)
        parts.append(f"{lists} lists, probe {p.probe}" if lists > 1 else "every code scanned")
        if p.refine:
            parts.append(f"best {p.refine} re-ranked exactly")
        return "pca-int8 (" + ", ".join(parts) + ")"
    if p.storage == "pca-bits":
        lists = f"{index.lists} lists, probe {p.probe}" if index.lists > 1 else "every code"
        return f"pca-bits ({p.row_bytes} B a row, {index.codec.dims} components; {lists})"
    return f"hnsw(M={p.M}, ef={p.ef})"


def rss_mb() -> float | None:
    """This process's resident memory now (Linux), in MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def perturbed_queries(index, n: int, cosine: float = 0.8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    loaded = index.loaded_ids()
    v = index.get_vectors(loaded[rng.integers(0, len(loaded), n)])
    noise = rng.normal(size=v.shape).astype(np.float32)
    noise -= (noise * v).sum(1, keepdims=True) * v  # orthogonal to the tile vector
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = cosine * v + np.sqrt(1 - cosine**2) * noise
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def query_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A (h, w, 3) uint8 picture with the statistics of a photo (random colours, bilinearly
    upsampled 8x): :func:`d4g_edge.trust.image_problem` accepts it, so ``localize`` takes the
    path of a real query. i.i.d. noise (what the bench timed before) is refused as
    ``not_in_map`` before the trust features and the calibration, and times less."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR))


def bench(loc: Localizer, queries: int = 50, seed: int = 0) -> dict:
    enc, index = loc.encoder, loc.bundle.index
    h, w = enc.config.input().size
    img = query_image(h, w, seed)
    x = enc.preprocess(img)
    z = enc.embed_tensor(x)
    q = perturbed_queries(index, max(queries, 100), seed=seed)
    recall, against = search_recall_at_1(index, q)
    for _ in range(3):  # warm both before the alternating blocks
        enc.embed_tensor(enc.preprocess(img))
        loc.localize(img, heading=0.0)
    encoder, e2e = _alternating(
        lambda: enc.embed_tensor(enc.preprocess(img)),
        lambda: loc.localize(img, heading=0.0),
        queries,
    )
    report = {
        "tiles": index.count,
        "embed_dim": index.dim,
        "search": describe(index),
        "cells_loaded": len(getattr(index, "parts", [None])),
        "encoder": _pct(encoder),
        "search_only": _pct(_timed(lambda: index.search(z, k=5), queries)),
        "end_to_end": _pct(e2e),
        "end_to_end_unknown_heading": _pct(_timed(lambda: loc.localize(img), queries)),
        "index_memory_mb": index.memory_bytes() / 2**20,
        "rss_mb": rss_mb(),
        "search_recall_at_1": recall,  # None: an exact search
        "recall_against": against,
        # the old key, for readers of earlier reports: set only where an HNSW graph was
        # searched (it said 1.0 for an exact search, and pca-int8 has no graph)
        "hnsw_recall_at_1": recall if getattr(index, "hnsw", None) is not None else None,
    }
    e2e, encoder = report["end_to_end"], report["encoder"]
    report["end_to_end_over_encoder"] = e2e["p50_ms"] / encoder["p50_ms"]
    report["end_to_end_over_encoder_cpu"] = e2e["cpu_p50_ms"] / encoder["cpu_p50_ms"]
    return report


def format_report(r: dict) -> str:
    lines = [f"{r['tiles']} tiles, {r['embed_dim']}-d, search: {r['search']}"]
    for key in ("encoder", "search_only", "end_to_end", "end_to_end_unknown_heading"):
        lines.append(
            f"{key:28s} p50 {r[key]['p50_ms']:8.2f} ms   p90 {r[key]['p90_ms']:8.2f} ms   "
            f"cpu p50 {r[key]['cpu_p50_ms']:8.2f} ms"
        )
    lines.append(
        f"{'end-to-end / encoder (p50)':28s} {r['end_to_end_over_encoder']:.2f}x   "
        f"cpu {r['end_to_end_over_encoder_cpu']:.2f}x"
    )
    lines.append(f"{'index memory':28s} {r['index_memory_mb']:.1f} MiB")
    if r.get("rss_mb") is not None:
        lines.append(f"{'process RSS':28s} {r['rss_mb']:.1f} MiB")
    if r["search_recall_at_1"] is None:
        lines.append(f"{'search recall@1':28s} n/a: {r['recall_against']}")
    else:
        label = f"recall@1 vs {r['recall_against']}"
        lines.append(f"{label}: {r['search_recall_at_1']:.4f}")
    return "\n".join(lines)
