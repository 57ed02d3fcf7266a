"""The frozen teacher that :mod:`train.distill` regresses: its weights, the inputs it saw, its
cached embeddings and the centre of those embeddings.

Kept apart from the distillation task so that ``train/distill.py`` reads as the student side
only: what a student is trained towards is decided here, once, from the teacher's sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from d4g_edge.config import EncoderConfig
from train.datasets import PairDataset
from train.loop.checkpoint import CheckpointError
from train.loop.distributed import DistInfo
from train.loop.evalsets import RetrievalSet
from train.loop.rebuild import load_encoder
from train.method.teacher_cache import TeacherCache
from train.presets import Preset

__all__ = ["FrozenTeacher", "load_frozen_teacher"]


@dataclass
class FrozenTeacher:
    """A teacher checkpoint with gradients off, and the inputs it was trained on."""

    model: nn.Module
    config: EncoderConfig
    sidecar: dict[str, Any]
    sat_size: int  # satellite side in pixels
    ground_size: tuple[int, int]  # query view (panorama or drone frame) HxW
    polar: tuple[int, int] | None  # polar satellite shape, for a polar teacher
    centre_step: float | None  # off-centre teacher: tiles re-centred on the camera
    ground_rows: tuple[float, float] | None

    @property
    def sha256(self) -> str | None:
        return self.sidecar.get("sha256")

    def build_cache(
        self,
        cache_dir: Path,
        dataset: str,
        data: Path,
        pairs: PairDataset,
        num_pairs: int,
        views: tuple[str, ...],
        info: DistInfo,
        batch_size: int,
        variants: int,
    ) -> TeacherCache:
        """The teacher's embeddings of every variant of every training pair, on disk."""
        key = {
            "teacher_sha256": self.sha256,
            "teacher_model": self.config.model_id,
            "dataset": dataset,
            "data": str(Path(data).resolve()),
            "pairs": num_pairs,
            "variants": variants,
            "sat_size": self.sat_size,
            "ground_size": list(self.ground_size),
            "sat_polar": list(self.polar) if self.polar else None,
            "recentre": self.centre_step is not None,
            "ground_rows": list(self.ground_rows) if self.ground_rows else None,
        }
        return TeacherCache.build(
            cache_dir,
            self.model,
            key,
            pairs,
            views=views,
            info=info,
            batch_size=batch_size,
            variants=variants,
        )

    def centres(
        self, cache: TeacherCache | None, train_split, info: DistInfo, batch_size: int
    ) -> dict[str, torch.Tensor]:
        """Mean teacher embedding per view over the training split (from the cache when it
        holds both views, else embedded now: validation needs both)."""
        cached = cache.cached_views() if cache else []
        if {"ground", "satellite"} <= set(cached):
            arrays = {v: np.load(cache.dir / f"{v}.npy", mmap_mode="r") for v in cached}
        else:
            train_set = RetrievalSet(
                train_split, self.sat_size, self.ground_size, self.polar, None, self.ground_rows
            )
            tq, tr = train_set.embed(self.model, None, info, batch_size)
            arrays = {"ground": tq, "satellite": tr}
        return {
            v: torch.from_numpy(np.asarray(a, dtype=np.float32).reshape(-1, a.shape[-1]).mean(0))
            for v, a in arrays.items()
        }


def load_frozen_teacher(path: Path, query_view: str, dataset: str, preset: Preset) -> FrozenTeacher:
    """The teacher at ``path`` with gradients off; inputs it does not record are the preset's."""
    model, config, sidecar = load_encoder(path)
    if config.kind != "teacher":
        raise CheckpointError(f"--teacher {path} holds a {config.view} student, not a teacher")
    model.requires_grad_(False)
    inputs = config.inputs
    sat = inputs.get("satellite")
    if query_view not in inputs and ({"ground", "drone"} & set(inputs)):
        raise CheckpointError(
            f"--teacher {path} was trained on {'/'.join(inputs)} images, but "
            f"{dataset} queries are {query_view} images; pass a teacher of that view"
        )
    ground = inputs.get(query_view)
    return FrozenTeacher(
        model=model,
        config=config,
        sidecar=sidecar,
        sat_size=sat.size[0] if sat else preset.sat_size,
        ground_size=ground.size if ground else preset.ground_size_for(dataset),
        polar=sat.polar if sat else None,
        centre_step=sat.centre_step if sat else None,
        ground_rows=ground.crop_rows if ground else preset.ground_rows_for(dataset),
    )
