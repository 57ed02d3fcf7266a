"""Training losses: Sample4Geo's symmetric InfoNCE and Distill4Geo's cosine distillation loss.

Usage::

    from train.method.losses import InfoNCE, dual_cosine_loss

    loss_fn = InfoNCE(label_smoothing=0.1, gather=True)   # gather: global batch under DDP
    loss = loss_fn(teacher(ground), teacher(satellite), teacher.logit_scale)

    # distillation: pull each student's embedding onto the (cached) teacher embedding
    loss = dual_cosine_loss(student_g(ground), teacher_g, student_s(satellite), teacher_s)

Row ``i`` of the ground embeddings and row ``i`` of the satellite embeddings are a matching
pair; every other row of the batch is a negative. The sampler guarantees that no two rows of
a batch share a reference (or, for VIGOR, a semi-positive), so these negatives are real ones.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "InfoNCE",
    "cosine_distillation_loss",
    "dual_cosine_loss",
    "gather_with_grad",
]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0, keeping the autograd graph.

    A no-op when ``torch.distributed`` is not initialised or has a single rank. Every rank
    must pass the same number of rows (``train.datasets.sampler.rank_slice`` ensures that).

    Why the gradient comes out right under DDP: each rank computes the *same* global loss;
    the all-gather backward sums the gradient of the local rows over the W ranks (W x the
    true gradient) and DDP then averages parameter gradients over the W ranks, which cancels
    the factor W again.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    # Imported lazily: torch.distributed.nn pulls in RPC machinery some builds lack.
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


class InfoNCE(nn.Module):
    """Symmetric contrastive (CLIP / Sample4Geo "ClipLoss") cross-entropy over a batch.

    ``logits = exp(logit_scale) * g @ s.T`` on L2-normalised embeddings; the target of row
    ``i`` is column ``i``. The loss is the mean of the ground->satellite and
    satellite->ground cross-entropies, each with ``label_smoothing``.

    Args:
        label_smoothing: Sample4Geo uses 0.1.
        gather: all-gather both views over DDP ranks first, so every negative of the global
            batch is used (a no-op without an initialised process group).
        max_scale: upper clamp of ``exp(logit_scale)``, as in CLIP, so the temperature
            cannot run away (``None`` disables it; Sample4Geo does not clamp, but its scale
            stays far below 100 in practice).
    """

    def __init__(
        self, label_smoothing: float = 0.1, *, gather: bool = False, max_scale: float | None = 100.0
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.gather = gather
        self.max_scale = max_scale

    def forward(self, ground: Tensor, satellite: Tensor, logit_scale: Tensor) -> Tensor:
        """Loss of a batch of ``(B, D)`` pair embeddings.

        Args:
            ground: query-view embeddings (normalised here again; cheap and idempotent).
            satellite: reference-view embeddings, row ``i`` matching ``ground[i]``.
            logit_scale: the model's *log* scale parameter (``Teacher.logit_scale``); it is
                exponentiated here, so do not pass ``logit_scale.exp()``.
        """
        if ground.shape != satellite.shape or ground.ndim != 2:
            raise ValueError(
                "ground and satellite embeddings must both be (B, D) with equal shapes, got "
                f"{tuple(ground.shape)} and {tuple(satellite.shape)}"
            )
        ground = F.normalize(ground, dim=-1)
        satellite = F.normalize(satellite, dim=-1)
        if self.gather:
            ground, satellite = gather_with_grad(ground), gather_with_grad(satellite)
        scale = logit_scale.exp()
        if self.max_scale is not None:
            scale = scale.clamp(max=self.max_scale)
        logits = scale * ground @ satellite.T
        labels = torch.arange(logits.shape[0], device=logits.device)
        g2s = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        s2g = F.cross_entropy(logits.T, labels, label_smoothing=self.label_smoothing)
        return (g2s + s2g) / 2


def cosine_distillation_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean of ``1 - cos(student_i, teacher_i)`` over the batch (0 equal, 1 orthogonal, 2 opposite).

    The teacher side is a fixed target: it is detached, so no gradient reaches a teacher
    that happens to be computed in the same graph.
    """
    if student.shape != teacher.shape or student.ndim != 2:
        raise ValueError(
            "student and teacher embeddings must both be (B, D) with equal shapes (project the "
            f"student to the teacher's dimension), got {tuple(student.shape)} and "
            f"{tuple(teacher.shape)}"
        )
    cos = F.cosine_similarity(student, teacher.detach().to(student.dtype), dim=-1)
    return (1.0 - cos).mean()


def dual_cosine_loss(
    student_ground: Tensor, teacher_ground: Tensor, student_sat: Tensor, teacher_sat: Tensor
) -> Tensor:
    """Distill4Geo's dual cosine embedding loss: the ground and satellite terms, equal weights."""
    return cosine_distillation_loss(student_ground, teacher_ground) + cosine_distillation_loss(
        student_sat, teacher_sat
    )
