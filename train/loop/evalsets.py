"""A split's query (ground) and reference (satellite) images, ready to embed and score.

Shared by teacher training (validation, similarity sampling), distillation and
``python -m train.evaluate``: whatever encoders sit on either side (teacher, student,
an exported artifact), recall is computed the one way, by :mod:`train.metrics`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from torch import nn

from d4g_edge.geo import offset_latlon
from d4g_edge.polar import cell_centres
from train.datasets import CrossViewSplit, ViewDataset
from train.loop.distributed import DistInfo
from train.loop.embed import embed_dataset
from train.metrics import (
    DEFAULT_KS,
    RetrievalMetrics,
    class_retrieval_metrics,
    evaluate_retrieval,
    evaluate_scores,
    position_error,
)


class RetrievalSet:
    def __init__(
        self,
        split: CrossViewSplit,
        sat_size: int,
        ground_size: tuple[int, int],
        sat_polar: tuple[int, int] | None = None,
        centre_step: float | None = None,
        ground_rows: tuple[float, float] | None = None,
    ):
        """``centre_step`` (off-centre encoders): on a tile grid (``split.tile_stride``) each
        reference tile is embedded around :func:`~d4g_edge.polar.cell_centres`; a tile scores
        its best centre, and the position is that centre's, not the tile's."""
        self.split = split
        self.centres = None
        if sat_polar is not None and centre_step and split.tile_stride:
            self.centres = cell_centres(split.tile_stride, centre_step)
        self.queries = ViewDataset(split.query_paths, ground_size, cache=True, rows=ground_rows)
        self.references = ViewDataset(
            split.reference_paths,
            (sat_size, sat_size),
            cache=True,
            polar=sat_polar,
            centres=self.centres,
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

    def score(
        self, query: np.ndarray, reference: np.ndarray, *, ks: tuple[int, ...] = DEFAULT_KS
    ) -> RetrievalMetrics:
        """Recall at the ``ks`` cut-offs (training validates with the default), R@1 %, the
        hit rate and metre errors of the split's queries against its references."""
        s = self.split
        if self.centres is not None:
            return self._score_centres(query, reference, ks)
        return evaluate_retrieval(
            query,
            reference,
            s.query_ids,
            s.reference_ids,
            semi_positive_ids=s.semi_positive_ids,
            query_latlon=s.query_latlon,
            reference_latlon=s.reference_latlon,
            ks=ks,
        )

    def scores(self, query: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        """:meth:`score` as a flat dict of numbers; a drone split (University-1652) adds the
        benchmark's AP and the Satellite -> Drone direction (``sat2drone_*``)."""
        metrics = self.score(query, reference).to_dict()
        out = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        if getattr(self.split, "query_view", "ground") == "drone":
            out.update(drone_metrics(self.split, query, reference))
        return out

    def evaluate(
        self, ground: nn.Module, satellite: nn.Module | None, info: DistInfo, batch_size: int
    ) -> dict[str, float]:
        return self.scores(*self.embed(ground, satellite, info, batch_size))

    def _score_centres(
        self, query: np.ndarray, reference: np.ndarray, ks: tuple[int, ...]
    ) -> RetrievalMetrics:
        s, c = self.split, len(self.centres)
        per_centre = reference.reshape(s.num_references, c, -1)

        best = np.zeros(len(query), dtype=np.int64)  # best (tile, centre) row, filled below

        def tile_scores(start: int, stop: int) -> np.ndarray:
            scores = np.einsum("qd,rcd->qrc", query[start:stop], per_centre)
            best[start:stop] = scores.reshape(stop - start, -1).argmax(axis=1)
            return scores.max(axis=2)

        metrics = evaluate_scores(
            tile_scores,
            s.query_ids,
            s.reference_ids,
            semi_positive_ids=s.semi_positive_ids,
            query_latlon=s.query_latlon,
            reference_latlon=s.reference_latlon,
            ks=ks,
        )
        if s.query_latlon is None or s.reference_latlon is None:
            return metrics
        tile, centre = np.divmod(best, c)
        side = s.tile_side_m()
        lat, lon = offset_latlon(
            s.reference_latlon[tile, 0],
            s.reference_latlon[tile, 1],
            self.centres[centre, 0] * side,
            self.centres[centre, 1] * side,
        )
        found = position_error(s.query_latlon, np.stack([lat, lon], axis=1))
        return dataclasses.replace(metrics, position=found)


def drone_metrics(split: CrossViewSplit, drone: np.ndarray, satellite: np.ndarray) -> dict:
    """University-1652's two directions from one embedding of a drone split, for validation
    during training: Drone -> Satellite over the whole gallery (distractors included), and
    Satellite -> Drone for the satellites that have drone images against those drone images.
    The benchmark's Satellite -> Drone gallery also holds the distractor locations' frames:
    ``python -m train.evaluate`` embeds test/gallery_drone for the reported number."""
    d2s = class_retrieval_metrics(drone, split.query_ids, satellite, split.reference_ids)
    has_drone = np.isin(split.reference_ids, split.query_ids)
    s2d = class_retrieval_metrics(
        satellite[has_drone], split.reference_ids[has_drone], drone, split.query_ids
    )
    out = {"ap": d2s.mean_ap}
    out.update(
        {f"sat2drone_{k}": v for k, v in s2d.to_dict().items() if isinstance(v, int | float)}
    )
    return out
