"""Both views of a pair through one weight-sharing encoder (the teacher's training forward).

Usage::

    net = DualView(create_model("teacher", "resnet18"))
    g, s, logit_scale = net(ground, satellite)
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DualView"]


class DualView(nn.Module):
    """Both views through the one shared backbone in a single forward (one DDP call)."""

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, ground: torch.Tensor, satellite: torch.Tensor):
        if ground.shape[1:] == satellite.shape[1:]:
            # One batch through the backbone: BatchNorm then normalises both views with the
            # same statistics in training, as its running statistics do at evaluation. Two
            # calls would train on per-view statistics and evaluate on their mixture.
            z = self.teacher(torch.cat([ground, satellite]))
            g, s = z.split([len(ground), len(satellite)])
        else:
            g, s = self.teacher(ground), self.teacher(satellite)
        return g, s, self.teacher.logit_scale
