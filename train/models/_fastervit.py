"""Fixed-shape ("any-res") FasterViT backbones from the ``fastervit`` 1.0.0 package.

FasterViT's any-resolution model is not shape-polymorphic: the carrier-token pooling, the
number of windows and the positional-embedding tables of every hierarchical-attention (HAT)
stage are sized from the ``resolution`` it is built with, so a model runs only at that shape.
This module owns the geometry around that constraint:

* :func:`attention_geometry` — the real feature-map size of each attention stage
  (``ceil(H / 2**(2+i))``: every stride-2 3x3 conv with padding 1 rounds up) and the size it
  is zero-padded to (a multiple of the window), i.e. the wasted attention compute;
* :func:`build_fastervit` — builds the backbone with a ``resolution`` whose stage sizes match
  what the input really produces. Upstream derives stage ``i`` from ``int(R / 2**(2+i))``
  (rounding *down*), so ``resolution=(120, 200)`` builds a model that cannot run a 120x200
  image; we search for an ``R`` with the same padded stage sizes instead;
* :class:`RowMajorCarrierHAT` — a fix for carrier tokens on non-square window grids (below);
* :func:`switch_to_deploy` — freezes the positional-embedding MLPs into constant tables.

Two more upstream hazards are handled at build time: shapes that leave a 1x1 position table
(a window of 1, or 2-3 carrier tokens) would produce NaN and are refused, and the position
table each training forward caches on its module is detached afterwards, so a trained model
can still be ``copy.deepcopy``-ed (EMA and best-model copies).

Carrier tokens on non-square grids: ``HAT.forward`` puts carrier tokens back into windows with
``ct_window(ct, rows, cols, ct_size)``, but ``ct_window`` reads its arguments as
``(cols, rows)``. On a square window grid the two agree; on a panorama grid (140x768 gives
2x7 windows at stage 3) every window receives another region's carrier tokens, and the
layout drifts further with each block. ``RowMajorCarrierHAT`` runs the unmodified upstream
``HAT.forward`` bytecode with a corrected ``ct_window`` bound in its globals (nothing is
patched globally). Related upstream report: https://github.com/NVlabs/FasterViT/issues/6
(the same swap in ``TokenInitializer``, fixed there). Two square-grid assumptions remain and
are left as upstream has them: non-square grids get no carrier-token position embedding
(``hat_pos_embed`` exists only when ``sr_ratio`` is square) and the carrier-token relative
bias is computed on a ``floor(sqrt(n))``-sided square.

Usage::

    backbone = build_fastervit(FASTERVIT_0, (140, 768), num_classes=0)
    switch_to_deploy(backbone, (140, 768))  # constant position tables, for export
"""

from __future__ import annotations

import math
import types
import warnings
from dataclasses import dataclass

import torch
from torch import nn

with warnings.catch_warnings():
    # fastervit 1.0.0 imports timm's deprecated module paths (timm.models.registry/layers);
    # the warning is about fastervit's code, not ours, so keep it out of every user's log.
    warnings.simplefilter("ignore", FutureWarning)
    from fastervit.models import faster_vit_any_res as _upstream

FASTERVIT_LICENSE = "NVIDIA Source Code License-NC (non-commercial)"

_POS_EMB_TYPES = (_upstream.PosEmbMLPSwinv1D, _upstream.PosEmbMLPSwinv2D)
# Stages 0 and 1 are convolutional; 2 and 3 are windowed attention (FasterViT paper, Fig. 2).
_ATTENTION_STAGES = (2, 3)
_STEM_STRIDE_LOG2 = 2  # the patch embedding halves the resolution twice


@dataclass(frozen=True)
class FasterViTArch:
    """Architecture hyper-parameters of a FasterViT backbone (names as in ``fastervit``)."""

    dim: int
    in_dim: int
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    window_size: tuple[int, int, int, int]
    ct_size: int
    mlp_ratio: float
    hat: tuple[bool, bool, bool, bool]
    drop_path_rate: float

    @property
    def num_features(self) -> int:
        """Channels of the pooled feature vector (the last stage's width)."""
        return self.dim * 2 ** (len(self.depths) - 1)


# FasterViT-0 exactly as ``faster_vit_0_any_res`` builds it (a test checks they agree).
FASTERVIT_0 = FasterViTArch(
    dim=64,
    in_dim=64,
    depths=(2, 3, 6, 5),
    num_heads=(2, 4, 8, 16),
    window_size=(7, 7, 7, 7),
    ct_size=2,
    mlp_ratio=4,
    hat=(False, False, True, False),
    drop_path_rate=0.2,
)

# The edge-s student: half FasterViT-0's width, 8 instead of 16 blocks and MLP ratio 2.
# Windows of 4 (stage 3) and 2 (stage 4) tile the edge-s inputs without padding: 64x256 gives
# 4x16 and 2x8 feature maps, 128x128 gives 8x8 and 4x4. Two carrier tokens per side as in
# FasterViT-0: with one, a 1x2 or 1x3 window grid makes a 1x1 carrier-token position table,
# whose coordinate normalisation divides by zero (NaN outputs; see _check_geometry).
# At 64x256: 2.5M deployed params and 0.14 GMACs, vs. 28M and 2.9 GMACs for FasterViT-0 at
# the same shape, whose 7-wide windows pad those maps by +130% and +512% (python -m train.flops).
FASTERVIT_EDGE = FasterViTArch(
    dim=32,
    in_dim=32,
    depths=(1, 2, 3, 2),
    num_heads=(1, 2, 4, 8),
    window_size=(4, 4, 4, 2),
    ct_size=2,
    mlp_ratio=2,
    hat=(False, False, True, False),
    drop_path_rate=0.0,
)


@dataclass(frozen=True)
class StageGeometry:
    """One attention stage: real feature-map size, padded size and window grid."""

    stage: int
    size: tuple[int, int]
    padded: tuple[int, int]
    window: int
    hierarchical: bool  # carrier tokens (HAT) on this stage

    @property
    def grid(self) -> tuple[int, int]:
        """Windows along (height, width); a non-square grid triggers the carrier-token fix."""
        return self.padded[0] // self.window, self.padded[1] // self.window

    @property
    def overhead(self) -> float:
        """Padded positions per real position (0.0 when the windows tile the map exactly)."""
        real = self.size[0] * self.size[1]
        return (self.padded[0] * self.padded[1] - real) / real


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def attention_geometry(arch: FasterViTArch, input_size: tuple[int, int]) -> list[StageGeometry]:
    """Feature-map and padded sizes of the attention stages for an ``input_size`` image."""
    out = []
    for stage in _ATTENTION_STAGES:
        stride = 2 ** (_STEM_STRIDE_LOG2 + stage)
        size = (math.ceil(input_size[0] / stride), math.ceil(input_size[1] / stride))
        win = arch.window_size[stage]
        padded = (_round_up(size[0], win), _round_up(size[1], win))
        out.append(StageGeometry(stage, size, padded, win, arch.hat[stage]))
    return out


class UnsupportedInputSizeError(ValueError):
    """An input size a FasterViT architecture cannot be built for."""


def _build_side(arch: FasterViTArch, side: int) -> int:
    """Smallest ``R >= side`` whose rounded-down HAT stage sizes pad like the real ones."""
    hat_stages = [g for g in _ATTENTION_STAGES if arch.hat[g]]
    want = {g: _round_up(math.ceil(side / 2 ** (2 + g)), arch.window_size[g]) for g in hat_stages}
    # floor(R / 2**(2+g)) must land on the real size's padded value; past side + 32 the
    # rounded-down sizes only grow, so a solution, if any, is in this range.
    for r in range(side, side + 2 ** (2 + max(_ATTENTION_STAGES)) + 1):
        if all(_round_up(r // 2 ** (2 + g), arch.window_size[g]) == want[g] for g in hat_stages):
            return r
    # Happens only when several stages use carrier tokens with windows that tile exactly.
    raise UnsupportedInputSizeError(
        f"FasterViT with windows {arch.window_size} and carrier tokens on stages "
        f"{[g + 1 for g in hat_stages]} cannot be built for an image side of {side} pixels: "
        "upstream rounds stage sizes down, the convolutions round up. Use a side that is a "
        "multiple of 32."
    )


def _check_geometry(arch: FasterViTArch, input_size: tuple[int, int]) -> None:
    """Reject shapes whose position tables upstream would fill with NaN.

    ``PosEmbMLPSwinv2D`` normalises relative coordinates by ``side - 1``; a side of 1 (a
    window of 1, or fewer than 4 carrier tokens, whose table side is ``int(sqrt(n))``)
    divides zero by zero.
    """
    for g in attention_geometry(arch, input_size):
        carriers = arch.ct_size**2 * g.grid[0] * g.grid[1] if g.hierarchical else 0
        if g.window < 2 or 1 < carriers < 4:
            raise UnsupportedInputSizeError(
                f"FasterViT stage {g.stage + 1} at input {input_size[0]}x{input_size[1]} has "
                f"{g.size[0]}x{g.size[1]} features in {g.grid[0]}x{g.grid[1]} windows of "
                f"{g.window} with {carriers} carrier tokens: a window of 1 or 2-3 carrier "
                "tokens gives a 1x1 position table, which upstream fills with NaN. Use a "
                "larger input or ct_size >= 2."
            )


def build_fastervit(
    arch: FasterViTArch,
    input_size: tuple[int, int],
    *,
    num_classes: int = 0,
    carrier_fix: bool = True,
) -> nn.Module:
    """A randomly initialised FasterViT that runs exactly at ``input_size`` (H, W).

    ``num_classes=0`` returns the pooled ``arch.num_features`` vector. ``carrier_fix=False``
    keeps upstream's carrier-token layout (see the module docstring), for comparisons with
    models trained on the unmodified package.
    """
    _check_geometry(arch, input_size)
    resolution = [_build_side(arch, input_size[0]), _build_side(arch, input_size[1])]
    model = _upstream.FasterViT(
        dim=arch.dim,
        in_dim=arch.in_dim,
        depths=list(arch.depths),
        num_heads=list(arch.num_heads),
        window_size=list(arch.window_size),
        ct_size=arch.ct_size,
        mlp_ratio=arch.mlp_ratio,
        resolution=resolution,
        drop_path_rate=arch.drop_path_rate,
        hat=list(arch.hat),
        num_classes=num_classes,
    )
    for module in model.modules():
        if carrier_fix and type(module) is _upstream.HAT:
            # Same state, same parameters; only forward's ct_window lookup differs.
            module.__class__ = RowMajorCarrierHAT
        if isinstance(module, _POS_EMB_TYPES):
            module.register_forward_hook(_detach_position_cache)
    return model


def _detach_position_cache(module: nn.Module, _args: object, _output: object) -> None:
    """Keep the position table upstream caches on the module, but not its autograd graph.

    Upstream stores each training forward's table (a non-leaf tensor) in ``pos_emb`` and the
    ``relative_bias`` buffer; a module holding non-leaf tensors cannot be deep-copied (EMA or
    best-model copies fail). The output already holds the graph the backward pass needs.
    """
    if isinstance(module.pos_emb, torch.Tensor) and module.pos_emb.grad_fn is not None:
        module.pos_emb = module.pos_emb.detach()
        module.relative_bias = module.relative_bias.detach()


def _ct_window_rows_first(ct: torch.Tensor, rows: int, cols: int, window: int) -> torch.Tensor:
    """Carrier tokens (B, rows*cols, C) in raster order -> (B, gy, gx, window, window, C)."""
    b, _, c = ct.shape
    ct = ct.view(b, rows // window, window, cols // window, window, c)
    return ct.permute(0, 1, 3, 2, 4, 5)


class RowMajorCarrierHAT(_upstream.HAT):
    """Upstream ``HAT`` whose carrier tokens go back to their own windows on any grid."""

    forward = types.FunctionType(
        _upstream.HAT.forward.__code__,
        {**_upstream.HAT.forward.__globals__, "ct_window": _ct_window_rows_first},
        "forward",
        _upstream.HAT.forward.__defaults__,
        _upstream.HAT.forward.__closure__,
    )


def switch_to_deploy(backbone: nn.Module, input_size: tuple[int, int]) -> int:
    """Replace every positional-embedding MLP by the table it computes; returns how many.

    The MLPs map fixed relative coordinates to biases, so for a fixed-shape model their
    output is a constant: one forward at ``input_size`` caches it in each module's
    ``relative_bias`` buffer, ``deploy=True`` makes forward read that buffer, and the MLP
    is deleted so exported graphs and deployed state dicts no longer carry it. Irreversible:
    do it after training, on the model that is exported.
    """
    modules = [m for m in backbone.modules() if isinstance(m, _POS_EMB_TYPES)]
    if not modules or all(m.deploy for m in modules):
        return 0
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        backbone(torch.zeros(1, 3, *input_size))
    for m in modules:
        m.switch_to_deploy()
        del m.cpb_mlp
    backbone.train(was_training)
    return len(modules)
