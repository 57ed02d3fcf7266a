"""PT2E int8 for XNNPACK: export a student, insert observers / fake quant, convert.

torchao's PT2E flow with ExecuTorch's ``XNNPACKQuantizer`` (symmetric int8, per-channel
weights, static per-tensor activations) quantizes convolutions, linears and the elementwise
ops XNNPACK runs in int8, so the lowered ``.pte`` runs them as int8 kernels. Two ways in:

* :func:`prepare_qat` - fake quantization in training mode, for ``quantize.qat``'s fine-tune;
* :func:`prepare_ptq` - observers in eval mode, calibrated by running images through it.

Both give a ``torch.fx.GraphModule``; :func:`convert` turns it into the quantized graph
(quantize/dequantize pairs around int8 weights) that ``export.executorch`` lowers.

Usage::

    prepared = prepare_ptq(student, (1, 3, 64, 256))
    calibrate(prepared, batches)             # any iterable of (N, 3, H, W) tensors
    quantized = convert(prepared)            # call it like the student: (N, D) embeddings
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn
from torch.export import Dim
from torchao.quantization.pt2e import (
    allow_exported_model_train_eval,
    move_exported_model_to_eval,
)
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e

from d4g_edge.log import logger

__all__ = ["calibrate", "convert", "export_student", "prepare_ptq", "prepare_qat", "quantizer"]

# PT2E QAT needs training batches of at least two (BatchNorm's batch statistics), so the graph
# is exported with a symbolic batch; the upper bound only has to exceed any batch we run.
MAX_BATCH = 4096


def quantizer(*, qat: bool):
    """ExecuTorch's XNNPACK quantizer: int8 symmetric, per-channel weights."""
    # Imported here: executorch is an extra, and this module is also read by tools that
    # only need the names (``--help``).
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True, is_qat=qat)
    return XNNPACKQuantizer().set_global(config)


def export_student(model: nn.Module, input_shape: tuple[int, ...]) -> torch.fx.GraphModule:
    """``torch.export`` the student with a dynamic batch dimension, as a GraphModule."""
    _check_no_stochastic_depth(model)
    example = torch.zeros(max(2, input_shape[0]), *input_shape[1:])
    batch = Dim("batch", min=1, max=MAX_BATCH)
    ep = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    return ep.module()


def prepare_qat(model: nn.Module, input_shape: tuple[int, ...]) -> torch.fx.GraphModule:
    """Fake-quantized copy of ``model`` in training mode (observers update as it trains).

    The copy shares no buffers with ``model``: training it leaves ``model`` (the fp32
    reference the loss compares against) untouched.
    """
    _check_batchnorm_scales(model)
    model = copy.deepcopy(model)
    model.train()  # BatchNorm is captured in its training form so the conv-BN fold is QAT'd
    graph = export_student(model, input_shape)
    prepared = prepare_qat_pt2e(graph, quantizer(qat=True))
    allow_exported_model_train_eval(prepared)  # .train()/.eval() then switch BN and dropout
    # Fine-tune with BatchNorm frozen at the fp32 model's running statistics: the target is
    # that model in eval mode, and batch statistics of small batches would be a moving target
    # (the conv-BN fold is still simulated, so the int8 weights see the folded scale).
    move_exported_model_to_eval(prepared)
    return prepared


def prepare_ptq(model: nn.Module, input_shape: tuple[int, ...]) -> torch.fx.GraphModule:
    """Observed copy of ``model`` in eval mode, for post-training calibration."""
    model = copy.deepcopy(model).eval()
    prepared = prepare_pt2e(export_student(model, input_shape), quantizer(qat=False))
    allow_exported_model_train_eval(prepared)
    return prepared


@torch.no_grad()
def calibrate(prepared: torch.fx.GraphModule, batches: Iterable[torch.Tensor]) -> int:
    """Run ``batches`` through the observers; returns the number of images seen."""
    move_exported_model_to_eval(prepared)
    seen = 0
    for x in batches:
        prepared(x)
        seen += len(x)
    if seen == 0:
        raise ValueError("calibration needs at least one image; got an empty iterable")
    logger.info("calibrated int8 observers on %d images", seen)
    return seen


def convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The int8 graph (eval mode) of a prepared, trained or calibrated GraphModule."""
    move_exported_model_to_eval(prepared)
    quantized = convert_pt2e(prepared)
    # Rebuilding the GraphModule keeps only the attributes the graph reads: the fp32 weights
    # that QAT folded into int8 ones would otherwise ride along (4x the int8 size on disk).
    quantized = torch.fx.GraphModule(quantized, quantized.graph)
    allow_exported_model_train_eval(quantized)
    quantized.eval()
    return quantized


def _check_batchnorm_scales(model: nn.Module) -> None:
    # PT2E QAT folds BatchNorm into the convolution and divides the conv output by
    # gamma / sigma: a scale of exactly 0 (timm zero-initialises residual blocks' last BN)
    # turns the whole graph into NaN.
    zero = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and m.weight is not None
        and bool((m.weight == 0).any())
    ]
    if zero:
        raise ValueError(
            f"BatchNorm scale (gamma) is exactly 0 in {zero[:3]}{'...' if len(zero) > 3 else ''}:"
            " PT2E QAT's conv-BN fold divides by it; is this an untrained model? Use "
            "--scheme pt2e-int8 (no fold) or train the student first"
        )


def _check_no_stochastic_depth(model: nn.Module) -> None:
    # With drop_path_rate > 0, aten.bernoulli stays in the exported graph and nothing lowers it
    # (probe on FasterViT-0); the edge-s students train with 0, a paper student may not.
    rates = [
        float(getattr(m, "drop_prob", 0.0) or 0.0)
        for m in model.modules()
        if type(m).__name__ == "DropPath"
    ]
    if any(rates):
        raise ValueError(
            f"the model has stochastic depth (drop_path up to {max(rates)}); PT2E cannot "
            "quantize it: rebuild the student with create_model(..., drop_path_rate=0) and "
            "load its weights"
        )
