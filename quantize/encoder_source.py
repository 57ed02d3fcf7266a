"""A trained student as an exporter sees it: the deployed model and its EncoderConfig.

A thin wrapper over :func:`train.loop.load_encoder` for ``quantize/`` and ``export/``: the
sidecar carries the :class:`d4g_edge.config.EncoderConfig` (old format-1 sidecars are
upgraded by :mod:`train.loop.legacy`); this adds the student checks and FasterViT's deploy step.

Lives in ``quantize/``, not ``tools/``: ``quantize.qat`` and the exporters (``export/``) both
import it, and the layers go train -> quantize -> export -> tools (tests/test_layers.py), so
the lowest layer both may import is ``quantize``.

Usage::

    from quantize.encoder_source import load_student
    model, cfg = load_student("weights/edge-s/student_ground.pt", view="ground")
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from d4g_edge.config import EncoderConfig
from train.loop import CheckpointError, load_encoder


def load_student(path: str | Path, view: str | None = None) -> tuple[nn.Module, EncoderConfig]:
    """The student in ``path`` in eval mode, deployed (position tables frozen), fp32."""
    model, cfg, _ = load_encoder(path)
    if cfg.kind != "student":
        raise CheckpointError(f"{path} holds a {cfg.kind}, not a student")
    if view is not None and cfg.view != view:
        raise CheckpointError(f"{path} holds the {cfg.view} student, not the {view} one")
    with torch.no_grad():  # FasterViT's deploy() freezes tables computed on a first forward
        model(torch.zeros(1, 3, *cfg.input().tensor_shape))
    if hasattr(model, "deploy"):
        model.deploy()
    return model, cfg
