"""``python -m train.evaluate --dataset ... --bundle DIR``: localize a split's queries through
the device SDK (:class:`d4g_edge.localizer.Localizer`, heading known) against a bundle of the
split's tiles, and score the returned candidates with :func:`train.metrics.summarize`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm import tqdm

from train.datasets import CrossViewSplit
from train.metrics import DEFAULT_KS, QueryRanks, RetrievalMetrics, position_error, summarize

__all__ = ["evaluate_bundle"]

_BATCH = 16  # queries localized at once


def evaluate_bundle(
    bundle: Path, split: CrossViewSplit, *, ks: tuple[int, ...] = DEFAULT_KS
) -> RetrievalMetrics:
    """Localize every query of ``split`` against ``bundle``; a query's rank is the position of
    its true tile among the returned candidates (top ``max(ks)``), the position error that of
    the SDK's fix."""
    from d4g_edge.localizer import Localizer

    loc = Localizer(bundle)
    top_k = max(ks)
    rank = np.full(len(split), top_k, dtype=np.int64)
    top1 = np.zeros(len(split), dtype=np.int64)
    fixes = np.zeros((len(split), 2))
    row_of = {int(r): k for k, r in enumerate(split.reference_ids)}
    for start in tqdm(range(0, len(split), _BATCH), desc="localize", leave=False):
        paths = split.query_paths[start : start + _BATCH]
        found = loc.localize_batch(list(paths), top_k=top_k, heading=0.0)
        for j, fix in enumerate(found):
            i = start + j
            ids = [c.tile_id for c in fix.candidates]
            truth = int(split.query_ids[i])
            rank[i] = ids.index(truth) if truth in ids else top_k
            top1[i] = row_of[ids[0]]
            fixes[i] = fix.lat, fix.lon
    metrics = summarize(
        QueryRanks(rank=rank, top1=top1, hit=None),
        split.num_references,
        ks=tuple(k for k in ks if k <= top_k),
    )
    if split.query_latlon is not None:
        metrics = dataclasses.replace(metrics, position=position_error(split.query_latlon, fixes))
    return metrics
