"""Weight-sharing contrastive teachers (Sample4Geo recipe): one timm backbone for both views.

Usage::

    from train.models import create_model, list_models

    list_models("teacher")          # ['convnext_atto', ..., 'convnext_base', 'resnet18', ...]
    teacher = create_model("teacher", "resnet18", drop_path_rate=0.1)
    g = teacher(ground)             # (B, teacher.embed_dim), L2-normalised
    s = teacher(satellite)          # same backbone, same embedding space
    loss = InfoNCE()(g, s, teacher.logit_scale)

The state_dict is exactly ``model.<timm keys>`` plus ``logit_scale``, the key format of the
published Sample4Geo checkpoints, so those load unchanged as the ``convnext_base`` teacher
(see :func:`train.loop.rebuild.load_teacher`). All registered backbones are convolutional and
end in global average pooling, so any input size works (square tiles, wide panoramas).
Weights are always random at construction: nothing is downloaded.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from d4g_edge.config import IMAGENET_MEAN, IMAGENET_STD
from train.models.registry import register_model

__all__ = ["TEACHERS", "Teacher", "TeacherSpec"]


@dataclass(frozen=True)
class TeacherSpec:
    """A registered teacher: its timm architecture and why it is offered."""

    timm_name: str
    note: str


# Registry name -> architecture. `convnext_base` is the paper's teacher; the rest are small
# candidates for the CPU-trainable `edge-s` preset, picked by measurement in train.presets.
TEACHERS: dict[str, TeacherSpec] = {
    "convnext_base": TeacherSpec("convnext_base", "paper teacher, 88M params, 1024-d"),
    "convnext_nano": TeacherSpec("convnext_nano", "15M params, 640-d"),
    "convnext_pico": TeacherSpec("convnext_pico", "8.5M params, 512-d"),
    "convnext_femto": TeacherSpec("convnext_femto", "4.8M params, 384-d"),
    "convnext_atto": TeacherSpec("convnext_atto", "3.4M params, 320-d"),
    "resnet18": TeacherSpec("resnet18", "11M params, 512-d; BatchNorm"),
    "resnet10t": TeacherSpec("resnet10t", "4.9M params, 512-d; BatchNorm, tiered stem"),
}

# Sample4Geo's (and CLIP's) initial temperature 0.07, stored as log(1 / T).
_INIT_LOGIT_SCALE = math.log(1 / 0.07)


class Teacher(nn.Module):
    """A timm backbone (classifier removed) plus a learnable log temperature.

    Args:
        name: registry name, recorded in checkpoints so they can be rebuilt.
        timm_name: the timm architecture.
        drop_path_rate: stochastic depth of the backbone (a training regulariser).
        **timm_kwargs: passed to ``timm.create_model``; must be JSON-serialisable so that a
            checkpoint can rebuild the same architecture, e.g. ``norm_layer="batchnorm2d"``
            for ConvNeXt-atto/femto (their blocks use ``conv_mlp``, so BatchNorm is a drop-in
            swap; a from-scratch ConvNeXt-atto with LayerNorm was seen to collapse to uniform
            similarities while ResNet-18 learned) or ``ls_init_value=1.0``.

    Attributes:
        embed_dim: size of the embedding ``forward`` returns.
        mean, std: the input normalisation of timm's config for this architecture (weights
            are trained from scratch here, so this is a convention that must travel with them).
    """

    def __init__(
        self, name: str, timm_name: str, *, drop_path_rate: float = 0.0, **timm_kwargs: Any
    ) -> None:
        super().__init__()
        self.name = name
        self.timm_name = timm_name
        # Architecture-defining kwargs only; drop_path_rate changes no shapes.
        self.timm_kwargs = dict(timm_kwargs)
        # pretrained=False always: no weights can be downloaded, a checkpoint loads them.
        self.model = timm.create_model(
            timm_name, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate, **timm_kwargs
        )
        # The pooled feature size; timm reports it as head_hidden_size where a pre-logits
        # layer follows the pooling (e.g. MobileNetV3), else num_features.
        self.embed_dim = int(
            getattr(self.model, "head_hidden_size", None) or self.model.num_features
        )
        cfg = self.model.pretrained_cfg
        self.mean: tuple[float, float, float] = tuple(cfg.get("mean", IMAGENET_MEAN))
        self.std: tuple[float, float, float] = tuple(cfg.get("std", IMAGENET_STD))
        # 0-d like Sample4Geo's, so its checkpoints load without reshaping.
        self.logit_scale = nn.Parameter(torch.ones([]) * _INIT_LOGIT_SCALE)

    def forward(self, x: Tensor) -> Tensor:
        """Embed a batch ``(B, 3, H, W)`` of either view into ``(B, embed_dim)``, unit norm."""
        return F.normalize(self.model(x), dim=-1)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade compute for memory at the paper's 384-px inputs (timm's own switch)."""
        self.model.set_grad_checkpointing(enable)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, embed_dim={self.embed_dim}"


def _build(name: str, **kwargs: Any) -> Teacher:
    return Teacher(name, TEACHERS[name].timm_name, **kwargs)


for _name in TEACHERS:
    register_model("teacher", _name)(functools.partial(_build, _name))
