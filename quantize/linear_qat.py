"""torchao ``quantize_`` QAT of the Linear layers: int8 dynamic activations, int4 weights.

The ``int8-int4w`` scheme: ``quantize_(model, QATConfig(base, step="prepare"))`` swaps each
``nn.Linear`` for a fake-quantized one (per-token int8 activations, symmetric int4 weights in
groups of :data:`GROUP_SIZE`), the model fine-tunes as usual, and ``step="convert"`` gives
the real quantized weights (torchao ``IntxUnpackedToInt8Tensor``, the layout ExecuTorch
lowers). Convolutions stay float: in FasterViT the early stages are convolutional, so this
scheme shrinks the transformer stages and the head only.

Usage::

    model = prepare(copy.deepcopy(student))     # fake quant, trainable
    ...fine-tune...
    model = convert(model)                      # int4 weights, eval mode
"""

from __future__ import annotations

import torch
from torch import nn
from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
from torchao.quantization.granularity import PerGroup
from torchao.quantization.qat import QATConfig

__all__ = ["GROUP_SIZE", "convert", "prepare"]

GROUP_SIZE = 32  # divides every Linear width of fastervit_edge (32..512) and its head


def _base() -> Int8DynamicActivationIntxWeightConfig:
    return Int8DynamicActivationIntxWeightConfig(
        weight_dtype=torch.int4, weight_granularity=PerGroup(GROUP_SIZE)
    )


def _grouped_linears(model: nn.Module) -> bool:
    return all(m.in_features % GROUP_SIZE == 0 for m in model.modules() if isinstance(m, nn.Linear))


def prepare(model: nn.Module) -> nn.Module:
    """Fake-quantize ``model``'s Linear layers in place (train mode); returns it."""
    if not _grouped_linears(model):
        raise ValueError(
            f"int8-int4w quantizes Linear weights in groups of {GROUP_SIZE}; this model has a "
            "Linear whose input width is not a multiple of it: use --scheme int8"
        )
    quantize_(model, QATConfig(_base(), step="prepare"))
    return model.train()


def convert(model: nn.Module) -> nn.Module:
    """Real int4-weight Linear layers from the fake-quantized ones; eval mode."""
    quantize_(model, QATConfig(_base(), step="convert"))
    return model.eval()
