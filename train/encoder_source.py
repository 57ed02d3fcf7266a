"""A trained student as an exporter sees it: the deployed model and its EncoderConfig.

Provisional seam for ``quantize/`` and ``export/``: the checkpoint refactor (structure issue)
makes sidecars carry :class:`d4g_edge.config.EncoderConfig` directly; until then this reads
today's sidecar (``d4g-edge/checkpoint/1``) into one.

Usage::

    from train.encoder_source import load_student
    model, cfg = load_student("weights/edge-s/student_ground.pt", view="ground")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from d4g_edge.config import EncoderConfig, ViewInput
from train.checkpoint import CheckpointError, load_encoder


def config_from_student_meta(meta: dict[str, Any]) -> EncoderConfig:
    """EncoderConfig of a student sidecar written by ``train.distill`` (format 1)."""
    view = meta["view"]
    size = tuple(int(v) for v in meta["input_size"])
    if view == "satellite" and meta.get("sat_polar"):
        spec = ViewInput(size=(int(meta["sat_size"]),) * 2, polar=size)
    elif view == "satellite" and meta.get("sat_size"):
        spec = ViewInput(size=(int(meta["sat_size"]),) * 2)
    else:
        spec = ViewInput(size=size)
    return EncoderConfig(
        model_id=str(meta["model"]),
        kind="student",
        inputs={view: spec},
        embed_dim=int(meta["embed_dim"]),
        model_kwargs=meta.get("model_kwargs") or {},
        mean=meta.get("mean") or (0.485, 0.456, 0.406),
        std=meta.get("std") or (0.229, 0.224, 0.225),
        teacher_centre=_view_centre(meta.get("teacher_centre"), view),
        teacher_model=meta.get("teacher_model"),
        teacher_sha256=meta.get("teacher_sha256"),
        weights_sha256=meta.get("sha256"),
    )


def _view_centre(centre: Any, view: str) -> Any:
    # train.distill writes the centres of every view it trained ({view: [...]}); a student
    # carries its own view's.
    return centre.get(view) if isinstance(centre, dict) else centre


def load_student(path: str | Path, view: str | None = None) -> tuple[nn.Module, EncoderConfig]:
    """The student in ``path`` in eval mode, deployed (position tables frozen), fp32."""
    model, meta = load_encoder(path)
    if meta.get("kind") != "student":
        raise CheckpointError(f"{path} holds a {meta.get('kind', 'teacher')}, not a student")
    cfg = config_from_student_meta(meta)
    if view is not None and cfg.view != view:
        raise CheckpointError(f"{path} holds the {cfg.view} student, not the {view} one")
    model = model.float().eval()
    with torch.no_grad():  # FasterViT's deploy() freezes tables computed on a first forward
        model(torch.zeros(1, 3, *cfg.input().tensor_shape))
    if hasattr(model, "deploy"):
        model.deploy()
    return model, cfg
