"""The drone view end to end on a tiny world-written University-1652 dataset: teacher ->
drone + satellite students -> evaluate (both directions, R@k and AP) -> ONNX export. Real
processes, real files; tiny models and one epoch each, so the numbers are not the point —
the artifacts, their configs and the metric records are."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.pipeline.conftest import run_module
from train.datasets import load
from train.synth import SynthConfig, synthesize

TINY = ["--sat-size", "64", "--ground-size", "64x64", "--batch-size", "8", "--model", "resnet10t"]


@pytest.fixture(scope="module")
def tiny_u1652(tmp_path_factory):
    out = tmp_path_factory.mktemp("u1652")
    synthesize(
        SynthConfig(
            layout="university1652",
            out=out,
            train=16,
            test=8,
            seed=11,
            sat_size=64,
            drone_px=64,
            drone_per_location=2,
            street_per_location=0,
            tile_m=60.0,
            town_size_m=400.0,
            pairs_per_town=6,
        )
    )
    return out


@pytest.fixture(scope="module")
def drone_run(tiny_u1652, tmp_path_factory):
    d = tmp_path_factory.mktemp("drone_run")
    common = ["--dataset", "university1652", "--data", str(tiny_u1652)]
    run_module("train.teacher", *common, *TINY, "--epochs", "1", "--out", str(d / "teacher"))
    run_module(
        "train.distill",
        *common,
        "--teacher",
        str(d / "teacher" / "teacher.pt"),
        "--view",
        "both",
        "--sat-size",
        "64",
        "--ground-size",
        "64x64",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--variants",
        "2",
        "--out",
        str(d / "students"),
    )
    return d


def test_split_is_drone_queries(tiny_u1652):
    split = load("university1652", tiny_u1652, "train")
    assert split.query_view == "drone"
    assert len(split) == 16 * 2 and split.num_references == 16


def test_teacher_and_students_serve_the_drone_view(drone_run):
    teacher = json.loads((drone_run / "teacher" / "teacher.pt.json").read_text())["encoder"]
    assert set(teacher["inputs"]) == {"drone", "satellite"}
    # drone frames are matched against plain tiles: no polar transform, no polar centres
    assert teacher["inputs"]["satellite"]["polar"] is None
    assert teacher["inputs"]["drone"]["size"] == [64, 64]
    for view in ("drone", "satellite"):
        side = json.loads((drone_run / "students" / f"student_{view}.pt.json").read_text())
        assert side["encoder"]["kind"] == "student"
        assert list(side["encoder"]["inputs"]) == [view]
        assert (
            side["encoder"]["teacher_sha256"]
            == json.loads((drone_run / "teacher" / "teacher.pt.json").read_text())["sha256"]
        )


def test_evaluate_reports_both_directions_with_ap(drone_run, tiny_u1652, tmp_path):
    out = tmp_path / "eval.json"
    run_module(
        "train.evaluate",
        "--dataset",
        "university1652",
        "--data",
        str(tiny_u1652),
        "--drone",
        str(drone_run / "students" / "student_drone.pt"),
        "--satellite",
        str(drone_run / "students" / "student_satellite.pt"),
        "--json",
        str(out),
    )
    metrics = json.loads(out.read_text())["metrics"]
    d2s, s2d = metrics["drone2sat"], metrics["sat2drone"]
    test = load("university1652", tiny_u1652, "test")
    assert d2s["num_queries"] == len(test)  # every query_drone frame
    assert s2d["num_queries"] == 8  # every query_satellite tile
    for part in (d2s, s2d):
        assert 0.0 <= part["mean_ap"] <= 100.0
        assert part["recall@1"] <= part["recall@5"] <= part["recall@10"]
    # one positive per drone query: AP is at least R@1 (a top-1 hit scores AP 100 alone)
    assert d2s["mean_ap"] >= d2s["recall@1"] - 1e-9


def test_wrong_view_flags_are_refused(drone_run, tiny_u1652):
    with pytest.raises(AssertionError, match="queries are drone images"):
        run_module(
            "train.evaluate",
            "--dataset",
            "university1652",
            "--data",
            str(tiny_u1652),
            "--ground",
            str(drone_run / "students" / "student_drone.pt"),
            "--satellite",
            str(drone_run / "students" / "student_satellite.pt"),
        )
    with pytest.raises(AssertionError, match="choose --view drone"):
        run_module(
            "train.distill",
            "--dataset",
            "university1652",
            "--data",
            str(tiny_u1652),
            "--teacher",
            str(drone_run / "teacher" / "teacher.pt"),
            "--view",
            "ground",
            "--epochs",
            "1",
            "--out",
            str(drone_run / "wrong"),
        )


def test_drone_student_exports_to_onnx_and_localizes(drone_run, tmp_path):
    from d4g_edge.runtime import open_encoder

    for view in ("drone", "satellite"):
        run_module(
            "export.onnx",
            "--view",
            view,
            "--checkpoint",
            str(drone_run / "students" / f"student_{view}.pt"),
            "--out",
            str(tmp_path),
            "--verify-pairs",
            "4",
        )
    enc = open_encoder(tmp_path / "drone_fp32.onnx")
    assert enc.config.view == "drone" and enc.config.input().polar is None
    z = enc.embed([np.zeros((90, 90, 3), np.uint8)])
    assert z.shape == (1, enc.config.embed_dim)
    assert np.linalg.norm(z[0]) == pytest.approx(1.0, abs=1e-4)
