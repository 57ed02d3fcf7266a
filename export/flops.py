"""A student's FLOPs per image, counted twice: by ``torch`` on the eager model and from the
exported ONNX graph's shapes, and checked against each other.

Both count what a GEMM-bound runtime spends its time on, 2 FLOPs per multiply-accumulate,
without biases, element-wise ops, norms or softmax: convolutions
(``2 x output elements x Cin/groups x kh x kw``) and matrix products (``2 x output elements
x K``). The first is ``torch.utils.flop_counter.FlopCounterMode`` (``train.flops`` uses the
same counter and halves it into the MACs the CVGL papers call "GFLOPs": that is a unit, not a
second count). The second is this module's own walk over the ``Conv`` / ``ConvTranspose`` /
``MatMul`` / ``Gemm`` nodes of the fp32 ``.onnx`` after ONNX shape inference at batch 1: other
code, on the graph the runtime executes. If they differ by more than
:data:`TOLERANCE`, :class:`FlopCountMismatch` says by how much and names any operator the graph
counter does not know.

Usage::

    torch_gflop = torch_flops(model, (64, 256)) / 1e9
    graph = onnx_flops(onnx_bytes)                 # GraphFlops(total, by_op, uncounted)
    cross_check(torch_gflop * 1e9, graph)          # raises FlopCountMismatch past 10 %
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TOLERANCE = 0.10
# ONNX operators that multiply-accumulate; a graph holding another of these is not counted
_UNCOUNTED = {"Attention", "Einsum", "MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul"}


class FlopCountMismatch(RuntimeError):
    """The two counters disagree: a number built on either would be wrong."""


def torch_flops(model, input_hw: tuple[int, int]) -> int:
    """FLOPs of one image (1, 3, H, W) through ``model`` by ``FlopCounterMode``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, *input_hw))
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class GraphFlops:
    """FLOPs of one image through an ONNX graph, by operator type."""

    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: tuple[str, ...] = ()  # compute operators found but not counted


def onnx_flops(model: bytes | str | Path) -> GraphFlops:
    """Count an fp32 ONNX model's FLOPs for batch 1 from its inferred shapes."""
    import onnx
    from onnx import shape_inference

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    for value in proto.graph.input:  # a dynamic batch becomes 1
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    proto = shape_inference.infer_shapes(proto, data_prop=True)
    shapes: dict[str, list[int | None]] = {t.name: list(t.dims) for t in proto.graph.initializer}
    for value in (*proto.graph.value_info, *proto.graph.input, *proto.graph.output):
        shapes[value.name] = [
            d.dim_value if d.HasField("dim_value") else None
            for d in value.type.tensor_type.shape.dim
        ]
    by_op: Counter[str] = Counter()
    uncounted = []
    for node in proto.graph.node:
        if node.op_type in _UNCOUNTED:
            uncounted.append(node.op_type)
            continue
        if node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
            continue
        flops = _node_flops(node, shapes)
        if flops is None:
            uncounted.append(f"{node.op_type} {node.name} (shape unknown)")
        else:
            by_op[node.op_type] += flops
    return GraphFlops(sum(by_op.values()), dict(by_op), tuple(uncounted))


def _node_flops(node, shapes: dict[str, list[int | None]]) -> int | None:
    a, w = shapes.get(node.input[0]), shapes.get(node.input[1])
    out = shapes.get(node.output[0])
    if not a or not w or not out or None in a or None in w or None in out:
        return None
    attrs = {at.name: at for at in node.attribute}
    if node.op_type == "Conv":  # weight (Cout, Cin/groups, kh, kw): each output sums Cin/g*k*k
        return 2 * math.prod(out) * math.prod(w[1:])
    if node.op_type == "ConvTranspose":  # weight (Cin, Cout/groups, kh, kw): per input element
        return 2 * math.prod(a) * math.prod(w[1:])
    if node.op_type == "Gemm":
        trans_a = "transA" in attrs and attrs["transA"].i
        k = a[0] if trans_a else a[1]
        return 2 * math.prod(out) * k
    return 2 * math.prod(out) * a[-1]  # MatMul (batched or 1-d right operand)


def cross_check(torch_count: float, graph: GraphFlops, tolerance: float = TOLERANCE) -> float:
    """Raise :class:`FlopCountMismatch` unless the counts agree within ``tolerance``; return
    the relative difference ``graph / torch - 1``."""
    skipped = (
        f"; operators the graph counter skipped: {list(graph.uncounted)}"
        if (graph.uncounted)
        else ""
    )
    if torch_count <= 0 or graph.total <= 0:
        raise FlopCountMismatch(
            f"a FLOP counter found nothing: torch {torch_count:.4g}, ONNX graph "
            f"{graph.total:.4g}{skipped}"
        )
    ratio = graph.total / torch_count
    if abs(ratio - 1.0) > tolerance:
        factor = abs(ratio - 2.0) < 0.2 or abs(ratio - 0.5) < 0.05
        raise FlopCountMismatch(
            f"the FLOP counters disagree by {100 * (ratio - 1):+.1f} % (limit "
            f"{100 * tolerance:.0f} %): torch FlopCounterMode {torch_count / 1e9:.4f} GFLOP, "
            f"ONNX graph {graph.total / 1e9:.4f} GFLOP {graph.by_op}"
            f"{' (a factor of 2: FLOPs vs multiply-accumulates?)' if factor else ''}{skipped}"
        )
    return ratio - 1.0
