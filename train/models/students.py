"""Distill4Geo students: a small backbone plus one linear map onto the teacher's embedding.

Usage::

    from train.models import create_model

    ground = create_model("student", "fastervit_edge", embed_dim=512, input_size=(64, 256))
    z = ground(panoramas)           # (B, 512), unit norm, regressed onto the teacher's
    ground.deploy()                 # before export: constant position tables (FasterViT)

Registered students (all randomly initialised; nothing is downloaded):

* ``fastervit_0`` — the paper's student, FasterViT-0 built any-resolution, so a 140x768
  panorama is not squashed into a square; NVIDIA Source Code License-NC (non-commercial).
* ``fastervit_edge`` — the ``edge-s`` student, a reduced FasterViT (see
  :data:`train.models._fastervit.FASTERVIT_EDGE`); same license.
* ``mobilenetv4_conv_small``, ``efficientvit_b0``, ``resnet18`` — timm backbones under
  Apache-2.0 (timm's code license; timm lists the same for these architectures' weights),
  for artifacts that must be usable commercially.

FasterViT students run only at the ``input_size`` they were built for (the any-res model
sizes its carrier tokens and position tables from it); another shape raises
:class:`InputShapeError`. The timm students are fully convolutional and accept any size;
``input_size`` then only records the preprocessing they were trained with.

The head is ``Linear(pooled features -> embed_dim)``. The public Distill4Geo code instead kept
FasterViT's 1000-way ImageNet classifier and projected its logits with ``Linear(1000, 1024)``:
two linear maps in a row are one linear map of rank <= 512 (FasterViT-0's pooled width), so
that head adds ~1M parameters and no expressiveness, and without ImageNet weights its 1000
"classes" mean nothing. It is offered as ``paper_head=True`` for fidelity comparisons only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import timm
import torch.nn.functional as F
from torch import Tensor, nn

from d4g_edge.config import IMAGENET_MEAN, IMAGENET_STD
from train.models import _fastervit
from train.models._fastervit import FASTERVIT_LICENSE, StageGeometry
from train.models.registry import register_model

__all__ = ["TIMM_STUDENTS", "InputShapeError", "InvalidStudentConfigError", "Student"]

# Logit count of the ImageNet classifier that ``paper_head=True`` keeps in the graph.
_IMAGENET_CLASSES = 1000
# A stride-32 backbone needs at least one cell at its last stage.
_MIN_SIDE = 32

# Registry name -> license of the timm code building it (checked in timm's pretrained cfgs).
TIMM_STUDENTS: dict[str, str] = {
    "mobilenetv4_conv_small": "Apache-2.0",
    "efficientvit_b0": "Apache-2.0",
    "resnet18": "Apache-2.0",
}


class InvalidStudentConfigError(ValueError):
    """Student factory arguments that cannot build a model."""


class InputShapeError(ValueError):
    """An image batch whose shape the student was not built for."""


class Student(nn.Module):
    """``backbone -> Linear -> L2 normalise``: one view's encoder, distilled onto a teacher.

    Attributes:
        name: registry name; with ``model_kwargs`` it rebuilds the architecture.
        model_kwargs: JSON-serialisable factory kwargs (``create_model("student", name, **.)``).
        embed_dim: output size, the teacher's embedding size.
        input_size: (H, W) the student was built for.
        fixed_input_size: whether any other (H, W) is rejected.
        backbone_name: the backbone architecture.
        license: the license the backbone's code (and so any artifact of it) is under.
        mean, std: input normalisation convention of the backbone.
        deployed: whether :meth:`deploy` has frozen the position tables.
    """

    def __init__(
        self,
        *,
        name: str,
        model_kwargs: dict[str, Any],
        backbone: nn.Module,
        backbone_dim: int,
        embed_dim: int,
        input_size: tuple[int, int],
        fixed_input_size: bool,
        backbone_name: str,
        license: str,
        geometry: Callable[[], list[StageGeometry]] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.model_kwargs = model_kwargs
        self.backbone = backbone
        self.proj = nn.Linear(backbone_dim, embed_dim)
        self.embed_dim = embed_dim
        self.input_size = input_size
        self.fixed_input_size = fixed_input_size
        self.backbone_name = backbone_name
        self.license = license
        # FasterViT's own preprocessing convention (its timm pretrained_cfg): ImageNet's
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.deployed = False
        self._geometry = geometry

    def forward(self, x: Tensor) -> Tensor:
        """Embed ``(B, 3, H, W)`` images into ``(B, embed_dim)`` unit vectors."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputShapeError(f"expected a (B, 3, H, W) image batch, got {tuple(x.shape)}")
        if self.fixed_input_size and tuple(x.shape[-2:]) != self.input_size:
            h, w = self.input_size
            raise InputShapeError(
                f"{self.name} student was built for {h}x{w} (HxW) inputs and runs only at "
                f"that size, got {x.shape[-2]}x{x.shape[-1]}: resize/crop the images to "
                f"{h}x{w} or build the student with input_size=({x.shape[-2]}, {x.shape[-1]})"
            )
        return F.normalize(self.proj(self.backbone(x)), dim=-1)

    def deploy(self) -> Student:
        """Freeze FasterViT's position-embedding MLPs into tables (no-op for timm backbones).

        Outputs stay identical; the deployed state_dict lacks the ``cpb_mlp`` weights, so do
        it after training, on the copy that gets exported. Returns ``self``.
        """
        if not self.deployed:
            _fastervit.switch_to_deploy(self.backbone, self.input_size)
            self.deployed = True
        return self

    def attention_padding(self) -> list[StageGeometry]:
        """Real vs. window-padded feature maps of the attention stages (empty for CNNs)."""
        return self._geometry() if self._geometry is not None else []

    def extra_repr(self) -> str:
        h, w = self.input_size
        return f"name={self.name!r}, input_size={h}x{w}, embed_dim={self.embed_dim}"


def _check_args(name: str, embed_dim: Any, input_size: Any) -> tuple[int, tuple[int, int]]:
    if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim <= 0:
        raise InvalidStudentConfigError(
            f"{name}: embed_dim must be a positive int (the teacher's embedding size, e.g. "
            f"teacher.embed_dim), got {embed_dim!r}"
        )
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise InvalidStudentConfigError(
            f"{name}: input_size must be (height, width), e.g. (64, 256), got {input_size!r}"
        ) from None
    if min(h, w) < _MIN_SIDE or (h, w) != tuple(input_size):
        raise InvalidStudentConfigError(
            f"{name}: input_size must be two integers >= {_MIN_SIDE} (the backbone's total "
            f"stride), got {input_size!r}"
        )
    return embed_dim, (h, w)


def _fastervit_student(
    name: str,
    backbone_name: str,
    arch: _fastervit.FasterViTArch,
    *,
    embed_dim: int,
    input_size: tuple[int, int],
    paper_head: bool = False,
    carrier_fix: bool = True,
    drop_path_rate: float | None = None,
) -> Student:
    embed_dim, size = _check_args(name, embed_dim, input_size)
    if drop_path_rate is not None:  # a regulariser: changes no shapes, not in model_kwargs
        arch = dataclasses.replace(arch, drop_path_rate=float(drop_path_rate))
    num_classes = _IMAGENET_CLASSES if paper_head else 0
    backbone = _fastervit.build_fastervit(
        arch, size, num_classes=num_classes, carrier_fix=carrier_fix
    )
    return Student(
        name=name,
        model_kwargs={
            "embed_dim": embed_dim,
            "input_size": list(size),
            "paper_head": paper_head,
            "carrier_fix": carrier_fix,
        },
        backbone=backbone,
        backbone_dim=num_classes or arch.num_features,
        embed_dim=embed_dim,
        input_size=size,
        fixed_input_size=True,
        backbone_name=backbone_name,
        license=FASTERVIT_LICENSE,
        geometry=functools.partial(_fastervit.attention_geometry, arch, size),
    )


def _timm_student(
    name: str,
    *,
    embed_dim: int,
    input_size: tuple[int, int],
    paper_head: bool = False,
    drop_path_rate: float = 0.0,
) -> Student:
    embed_dim, size = _check_args(name, embed_dim, input_size)
    num_classes = _IMAGENET_CLASSES if paper_head else 0
    # Only passed when asked for: some timm models (efficientvit_b0) have no drop path at all.
    extra = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
    backbone = timm.create_model(name, pretrained=False, num_classes=num_classes, **extra)
    # timm's pooled size is head_hidden_size where a pre-logits layer follows the pooling
    # (MobileNetV4, EfficientViT: 1280), else num_features.
    pooled = int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)
    student = Student(
        name=name,
        model_kwargs={"embed_dim": embed_dim, "input_size": list(size), "paper_head": paper_head},
        backbone=backbone,
        backbone_dim=num_classes or pooled,
        embed_dim=embed_dim,
        input_size=size,
        fixed_input_size=False,
        backbone_name=name,
        license=TIMM_STUDENTS[name],
    )
    cfg = backbone.pretrained_cfg
    student.mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    student.std = tuple(cfg.get("std", IMAGENET_STD))
    return student


register_model("student", "fastervit_0")(
    functools.partial(
        _fastervit_student, "fastervit_0", "faster_vit_0_any_res", _fastervit.FASTERVIT_0
    )
)
register_model("student", "fastervit_edge")(
    functools.partial(
        _fastervit_student, "fastervit_edge", "faster_vit_any_res (edge)", _fastervit.FASTERVIT_EDGE
    )
)
for _name in TIMM_STUDENTS:
    register_model("student", _name)(functools.partial(_timm_student, _name))
