"""A split's query (ground) and reference (satellite) images, ready to embed and score.

Shared by teacher training (validation, similarity sampling), distillation and
``python -m train.evaluate``: whatever encoders sit on either side (teacher, student,
an exported artifact), recall is computed the one way, by :mod:`d4g_edge.metrics`.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from d4g_edge.metrics import RetrievalMetrics, evaluate_retrieval
from train.datasets import CrossViewSplit, ViewDataset
from train.loop.distributed import DistInfo
from train.loop.embed import embed_dataset


class RetrievalSet:
    def __init__(
        self,
        split: CrossViewSplit,
        sat_size: int,
        ground_size: tuple[int, int],
        sat_polar: tuple[int, int] | None = None,
    ):
        self.split = split
        self.queries = ViewDataset(split.query_paths, ground_size, cache=True)
        self.references = ViewDataset(
            split.reference_paths, (sat_size, sat_size), cache=True, polar=sat_polar
        )

    def preload(self) -> RetrievalSet:
        """Decode every image now, so a corrupt one fails before training, not after an
        epoch; returns self. (A cache too large for RAM decodes on use instead.)"""
        self.queries.preload()
        self.references.preload()
        return self

    def embed(
        self, ground: nn.Module, satellite: nn.Module | None, info: DistInfo, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        q = embed_dataset(ground, self.queries, info, batch_size=batch_size, desc="queries")
        r = embed_dataset(
            satellite or ground, self.references, info, batch_size=batch_size, desc="references"
        )
        return q, r

    def score(self, query: np.ndarray, reference: np.ndarray) -> RetrievalMetrics:
        s = self.split
        return evaluate_retrieval(
            query,
            reference,
            s.query_ids,
            s.reference_ids,
            semi_positive_ids=s.semi_positive_ids,
            query_latlon=s.query_latlon,
            reference_latlon=s.reference_latlon,
        )

    def evaluate(
        self, ground: nn.Module, satellite: nn.Module | None, info: DistInfo, batch_size: int
    ) -> dict[str, float]:
        metrics = self.score(*self.embed(ground, satellite, info, batch_size))
        return {k: v for k, v in metrics.to_dict().items() if isinstance(v, int | float)}
