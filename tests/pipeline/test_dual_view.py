"""The teacher's two views share one BatchNorm batch when their shapes allow it."""

from __future__ import annotations

import torch

from train.models import create_model
from train.models.dual_view import DualView


def _bn_batches(model) -> int:
    return max(
        int(m.num_batches_tracked) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )


def test_same_shape_views_are_normalized_together():
    torch.manual_seed(0)
    net = DualView(create_model("teacher", "resnet10t")).train()
    g, s = torch.randn(4, 3, 32, 128), torch.randn(4, 3, 32, 128) * 3 + 1
    eg, es, scale = net(g, s)
    assert eg.shape == es.shape == (4, net.teacher.embed_dim)
    assert _bn_batches(net) == 1  # one statistics update for both views
    # each view alone would be normalised with its own statistics: a different embedding
    alone = net.teacher(s)
    assert not torch.allclose(alone, es, atol=1e-3)
    assert scale is net.teacher.logit_scale


def test_different_shapes_fall_back_to_two_calls():
    net = DualView(create_model("teacher", "resnet10t")).train()
    net(torch.randn(2, 3, 32, 128), torch.randn(2, 3, 64, 64))
    assert _bn_batches(net) == 2
