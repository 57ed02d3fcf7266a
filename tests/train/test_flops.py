"""Params/MACs counting against hand-computed values, and the table/JSON the CLI writes."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from train.flops import (
    ModelRow,
    count_macs,
    count_params,
    format_table,
    main,
    measure_rows,
    preset_rows,
)
from train.models import create_model


def test_linear_macs_by_hand() -> None:
    # 3*4 = 12 positions, each a 12 -> 5 product: 12 * 12 * 5 MACs.
    assert count_macs(nn.Linear(12, 5), torch.zeros(1, 3, 4, 12)) == 12 * 12 * 5


def test_conv_macs_by_hand() -> None:
    # 'same' 3x3 conv: every output pixel (10*12) of every output channel (8) reads 3*3*3.
    assert count_macs(nn.Conv2d(3, 8, 3, padding=1), torch.zeros(1, 3, 10, 12)) == 10 * 12 * 8 * 27
    # depthwise: each output channel reads only its own input channel's 3x3.
    dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert count_macs(dw, torch.zeros(1, 8, 6, 6)) == 6 * 6 * 8 * 9


def test_params_by_hand_and_shared_weights_once() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    assert count_params(net) == (3 * 4 * 9 + 4) + (4 * 2 + 2)
    a, b = nn.Linear(6, 6, bias=False), nn.Linear(6, 6, bias=False)
    b.weight = a.weight
    assert count_params(nn.Sequential(a, b)) == 36


def test_resnet18_matches_torchvisions_published_cost() -> None:
    # torchvision's model table lists ResNet18 at 11,689,512 params and 1.81 "GFLOPS" (MACs).
    net = torchvision.models.resnet18(weights=None)
    assert count_params(net) == 11_689_512
    assert count_macs(net, torch.zeros(1, 3, 224, 224)) / 1e9 == pytest.approx(1.81, abs=0.01)


def test_measured_rows_have_the_keys_and_hand_padding() -> None:
    size = (72, 136)  # stage 3: 5x9 -> 8x12 (windows of 4); stage 4: 3x5 -> 4x6 (windows of 2)
    rows = [
        ModelRow("edge-s", "student", "fastervit_edge", "ground", size,
                 {"embed_dim": 16, "input_size": size}),
        ModelRow("edge-s", "student", "resnet18", "satellite", (64, 64),
                 {"embed_dim": 16, "input_size": (64, 64)}),
    ]  # fmt: skip
    fast, cnn = measure_rows(rows)
    d = fast.to_dict()
    assert set(d) == {
        "preset", "kind", "name", "view", "input_size", "kwargs", "note",
        "params", "deploy_params", "macs", "gmacs", "attention_padding",
    }  # fmt: skip
    json.dumps(d)  # the JSON output needs plain values
    fresh = create_model("student", "fastervit_edge", embed_dim=16, input_size=size)
    assert d["params"] == count_params(fresh)
    assert d["deploy_params"] < d["params"]  # the position MLPs are gone once deployed
    s3, s4 = d["attention_padding"]
    assert (s3["stage"], s3["size"], s3["padded"]) == (3, [5, 9], [8, 12])
    assert s3["overhead"] == pytest.approx(8 * 12 / (5 * 9) - 1, abs=1e-4)
    assert (s4["stage"], s4["size"], s4["padded"]) == (4, [3, 5], [4, 6])
    # The student's MACs include its head: pooled width (512) x embed_dim (16).
    backbone_only = count_macs(create_model("student", "resnet18", embed_dim=16,
                                            input_size=(64, 64)).backbone,
                               torch.zeros(1, 3, 64, 64))  # fmt: skip
    assert cnn.macs - backbone_only == 512 * 16
    assert cnn.padding == () and cnn.params == cnn.deploy_params
    table = format_table([fast, cnn])
    assert "fastervit_edge" in table and "72x136" in table and "s3:+113%" in table


def test_paper_rows_cover_both_views_and_the_sweep() -> None:
    rows = preset_rows("paper", teacher_dim=1024)
    got = {(r.kind, r.name, r.input_size) for r in rows}
    assert ("teacher", "convnext_base", (384, 384)) in got
    assert ("teacher", "convnext_base", (140, 768)) in got
    for size in [(384, 384), (140, 768), (224, 896), (112, 448), (224, 224), (128, 512)]:
        assert ("student", "fastervit_0", size) in got
    students = [r for r in rows if r.kind == "student"]
    assert all(r.kwargs["embed_dim"] == 1024 for r in students)
    assert all(tuple(r.kwargs["input_size"]) == r.input_size for r in students)
    assert len(rows) == len(set(rows))


def test_edge_rows_take_shape_overrides() -> None:
    rows = preset_rows("edge-s", teacher_dim=320, sat_size=(96, 96), ground_size=(64, 320),
                       teacher="convnext_atto")  # fmt: skip
    assert {r.input_size for r in rows} == {(96, 96), (64, 320)}
    assert {r.name for r in rows if r.kind == "teacher"} == {"convnext_atto"}


@pytest.mark.slow
def test_cli_writes_table_and_json(tmp_path, capsys) -> None:
    out = tmp_path / "flops.json"
    assert main(["--preset", "edge-s", "--edge-teacher", "resnet10t", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert "GMACs" in doc["convention"]
    names = {(r["kind"], r["name"]) for r in doc["rows"]}
    assert {("teacher", "resnet10t"), ("student", "fastervit_edge")} <= names
    (summary,) = doc["summary"]
    assert summary["teacher"] == "resnet10t" and summary["student"] == "fastervit_edge"
    assert "fastervit_edge" in capsys.readouterr().out
