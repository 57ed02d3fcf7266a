"""Recall of a (possibly quantized) encoder pair on a dataset's test split.

The fp32 student, a converted PT2E graph and a loaded ``.pt2`` program are all callables
``(N, 3, H, W) -> (N, D)``; :func:`embed_view` runs one over a view's images as the
EncoderConfig says (size, polar, mean/std), :func:`pair_recall` scores ground against
satellite with the metrics of :mod:`train.metrics` (Sample4Geo's).

Usage::

    split = load("cvusa", root, "test")
    q = embed_view(ground_model, ground_cfg, split, "ground")
    r = embed_view(sat_model, sat_cfg, split, "satellite")
    metrics = pair_recall(q, r, split)          # RetrievalMetrics; metrics.recall_at(1)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from d4g_edge.config import EncoderConfig
from train.datasets import CrossViewSplit, ViewDataset
from train.metrics import RetrievalMetrics, evaluate_retrieval

Encoder = Callable[[torch.Tensor], torch.Tensor]


def view_dataset(cfg: EncoderConfig, paths: tuple[Path, ...], view: str) -> ViewDataset:
    """The images of ``view`` preprocessed as ``cfg`` says (size, polar, mean/std)."""
    spec = cfg.input(view)
    return ViewDataset(paths, spec.size, mean=cfg.mean, std=cfg.std, polar=spec.polar)


def view_paths(split: CrossViewSplit, view: str, limit: int = 0) -> tuple[Path, ...]:
    paths = split.reference_paths if view == "satellite" else split.query_paths
    return paths[:limit] if limit else paths


@torch.no_grad()
def embed_view(
    encoder: Encoder,
    cfg: EncoderConfig,
    split: CrossViewSplit,
    view: str,
    *,
    batch_size: int = 64,
    workers: int = 0,
) -> np.ndarray:
    """(N, D) float32 embeddings of ``view``'s images of ``split`` (queries or references)."""
    loader = DataLoader(
        view_dataset(cfg, view_paths(split, view), view),
        batch_size=batch_size,
        num_workers=workers,
    )
    chunks = [encoder(x).float().numpy() for x, _ in loader]
    return np.concatenate(chunks).astype(np.float32)


def pair_recall(
    query: np.ndarray, reference: np.ndarray, split: CrossViewSplit
) -> RetrievalMetrics:
    """Sample4Geo metrics of ground ``query`` vs satellite ``reference`` embeddings."""
    return evaluate_retrieval(
        query,
        reference,
        split.query_ids,
        split.reference_ids,
        semi_positive_ids=split.semi_positive_ids,
    )
