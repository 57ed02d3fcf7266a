"""The two FLOP counters of export.bench (torch FlopCounterMode, the ONNX graph walk) against
FLOPs worked out by hand from the layer shapes, and the cross-check that stops the benchmark."""

from __future__ import annotations

import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from export.flops import FlopCountMismatch, GraphFlops, cross_check, onnx_flops, torch_flops
from export.onnx import to_onnx

HW = (16, 16)
C = 8


class Tiny(nn.Module):
    """A conv, a depthwise conv, self-attention-like matmuls over the 256 positions, a linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, C, 3, padding=1)
        self.depthwise = nn.Conv2d(C, C, 3, padding=1, groups=C)
        self.head = nn.Linear(C, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(torch.relu(self.conv(x)))
        tokens = x.flatten(2).transpose(1, 2)  # (N, 256, C)
        attn = torch.softmax(tokens @ tokens.transpose(1, 2), dim=-1)  # (N, 256, 256)
        return self.head((attn @ tokens).mean(1))


def tiny_flops_by_hand() -> int:
    positions = HW[0] * HW[1]
    conv = 2 * (C * positions) * (3 * 3 * 3)  # each output element sums 3 channels x 3x3
    depthwise = 2 * (C * positions) * (1 * 3 * 3)  # one input channel per group
    scores = 2 * (positions * positions) * C  # (256, C) @ (C, 256)
    mix = 2 * (positions * C) * positions  # (256, 256) @ (256, C)
    head = 2 * 4 * C
    return conv + depthwise + scores + mix + head


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = Tiny().eval()
    path = to_onnx(model, HW, tmp_path_factory.mktemp("flops") / "tiny.onnx")
    return model, path


def test_both_counters_match_the_count_by_hand(tiny_onnx):
    model, path = tiny_onnx
    want = tiny_flops_by_hand()
    assert torch_flops(model, HW) == want
    graph = onnx_flops(path)
    assert graph.total == want and graph.uncounted == ()
    assert onnx_flops(path.read_bytes()).total == want  # bytes, as export.bench passes them
    assert cross_check(torch_flops(model, HW), graph) == 0.0


def test_an_operator_the_graph_counter_skips_fails_loudly(tmp_path):
    class Mixer(nn.Module):  # einsum: torch counts it, the ONNX graph walk does not
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1, bias=False)
            self.w = nn.Parameter(torch.randn(64, 64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum("nchw,wv->nchv", self.conv(x), self.w)

    model = Mixer().eval()
    graph = onnx_flops(to_onnx(model, (64, 64), tmp_path / "mixer.onnx"))
    conv, einsum = 2 * 3 * 64 * 64 * 3, 2 * 3 * 64 * 64 * 64
    assert torch_flops(model, (64, 64)) == conv + einsum
    assert graph.total == conv and graph.uncounted == ("Einsum",)
    with pytest.raises(FlopCountMismatch, match=r"disagree by -95\.5 %.*skipped: \['Einsum'\]"):
        cross_check(conv + einsum, graph)


def test_gemm_transposed_and_conv_transpose_by_hand():
    nodes = [
        helper.make_node("Gemm", ["a", "b"], ["g"], transA=1),  # A is (K=5, M=3)
        helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [5, 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [5, 7]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 2, 3, 3]),
        ],
        [
            helper.make_tensor_value_info("g", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    counted = onnx_flops(model.SerializeToString())
    # Gemm: (3, 7) outputs x K=5; ConvTranspose: each of the 4*8*8 inputs (batch 1) scatters
    # into 2 output channels x 3x3
    assert counted.by_op == {"Gemm": 2 * 3 * 7 * 5, "ConvTranspose": 2 * 4 * 8 * 8 * 2 * 3 * 3}


@pytest.mark.parametrize(
    ("graph_total", "passes"),
    [(1.05e9, True), (0.95e9, True), (1.11e9, False), (0.89e9, False)],
)
def test_cross_check_tolerance_is_ten_percent(graph_total, passes):
    graph = GraphFlops(int(graph_total), {"Conv": int(graph_total)})
    if passes:
        assert abs(cross_check(1e9, graph)) <= 0.1
    else:
        with pytest.raises(FlopCountMismatch, match="FLOP counters disagree"):
            cross_check(1e9, graph)


@pytest.mark.parametrize("ratio", [2.0, 0.5])
def test_a_flop_mac_factor_is_named(ratio):
    with pytest.raises(FlopCountMismatch, match="factor of 2"):
        cross_check(1e9, GraphFlops(int(ratio * 1e9), {"MatMul": int(ratio * 1e9)}))


def test_nothing_counted_is_an_error():
    with pytest.raises(FlopCountMismatch, match="found nothing"):
        cross_check(1e9, GraphFlops(0))
