"""Checkpoint sidecars: format 2 round trip, format-1 files from older runs, fp16 weights."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from d4g_edge.config import EncoderConfig, ViewInput
from quantize.encoder_source import load_student
from train.loop import CheckpointError, load_encoder, save_checkpoint
from train.loop.checkpoint import config_for, read_sidecar
from train.models import create_model

SIZE = [32, 128]  # student input (a polar tile has the panorama's shape)


def _write_format_1(tmp_path, model, sidecar: dict, name: str) -> tuple:
    """Weights + a format-1 sidecar as train.distill / train.teacher wrote them before."""
    path = tmp_path / name
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / f"{name}.json").write_text(json.dumps({**sidecar, "sha256": digest}))
    return path, digest


def _student():
    torch.manual_seed(0)
    return create_model("student", "resnet18", embed_dim=16, input_size=tuple(SIZE)).eval()


def test_format_1_satellite_student_loads_as_its_encoder_config(tmp_path) -> None:
    student = _student()
    centres = {"ground": [0.25] * 16, "satellite": [0.5] * 16}
    teacher_sha = "ab" * 32
    path, digest = _write_format_1(
        tmp_path,
        student,
        {
            "format": "d4g-edge/checkpoint/1",
            "kind": "student",
            "view": "satellite",
            "model": "resnet18",
            "model_kwargs": {"embed_dim": 16, "input_size": SIZE},
            "embed_dim": 16,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25],
            "input_size": SIZE,
            "sat_size": 96,
            "sat_polar": SIZE,
            "teacher_model": "resnet18",
            "teacher_sha256": teacher_sha,
            "teacher_centre": centres,
            "perturb": False,
            "preset": "edge-s",
            "epoch": 5,
            "metrics": {"recall@1": 42.0},
        },
        "student_satellite.pt",
    )
    model, cfg, sidecar = load_encoder(path)
    assert cfg == EncoderConfig(
        model_id="resnet18",
        kind="student",
        inputs={"satellite": ViewInput(size=(96, 96), polar=(32, 128))},
        embed_dim=16,
        model_kwargs={"embed_dim": 16, "input_size": SIZE},
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        teacher_centre=tuple([0.5] * 16),
        teacher_model="resnet18",
        teacher_sha256=teacher_sha,
        weights_sha256=digest,
    )
    assert sidecar["format"] == "d4g-edge/checkpoint/2" and sidecar["sha256"] == digest
    assert sidecar["epoch"] == 5 and sidecar["teacher_centres"] == centres
    assert "model" not in sidecar and "sat_size" not in sidecar  # moved into "encoder"
    x = torch.rand(2, 3, *SIZE)
    with torch.no_grad():
        assert torch.equal(model(x), student(x))
    deployed, same = load_student(path, view="satellite")
    assert same == cfg and not deployed.training
    with pytest.raises(CheckpointError, match="satellite student, not the ground"):
        load_student(path, view="ground")


def test_format_1_teacher_has_both_views(tmp_path) -> None:
    teacher = create_model("teacher", "resnet10t").eval()
    path, _ = _write_format_1(
        tmp_path,
        teacher,
        {
            "format": "d4g-edge/checkpoint/1",
            "kind": "teacher",
            "model": "resnet10t",
            "model_kwargs": {},
            "embed_dim": 512,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "sat_size": 64,
            "ground_size": [32, 128],
            "sat_polar": [32, 128],
            "preset": "edge-s",
            "epoch": 1,
        },
        "teacher.pt",
    )
    _, cfg, sidecar = load_encoder(path)
    assert cfg.kind == "teacher" and cfg.embed_dim == 512
    assert dict(cfg.inputs) == {
        "ground": ViewInput((32, 128)),
        "satellite": ViewInput((64, 64), polar=(32, 128)),
    }
    assert sidecar["preset"] == "edge-s"
    with pytest.raises(CheckpointError, match="holds a teacher, not a student"):
        load_student(path)


def test_unconvertible_or_unknown_sidecars_say_how_to_fix(tmp_path) -> None:
    student = _student()
    old = {"format": "d4g-edge/checkpoint/1", "kind": "student", "view": "ground"}
    path, _ = _write_format_1(tmp_path, student, {**old, "model": "resnet18"}, "a.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint/1 sidecar.*save the model again"):
        load_encoder(path)
    path, _ = _write_format_1(tmp_path, student, {"format": "d4g-edge/checkpoint/9"}, "b.pt")
    with pytest.raises(CheckpointError, match="unknown format 'd4g-edge/checkpoint/9'"):
        read_sidecar(path)


def test_fp16_weights_load_into_the_fp32_model(tmp_path) -> None:
    student = _student()
    cfg = config_for(student, kind="student", inputs={"ground": ViewInput(tuple(SIZE))})
    half = {k: v.half() if v.is_floating_point() else v for k, v in student.state_dict().items()}
    student.load_state_dict(half)  # the fp32 model now holds exactly the fp16 values
    save_checkpoint(tmp_path / "s.pt", _student().half(), cfg, extra={"note": "fp16"})
    stored = torch.load(tmp_path / "s.pt", weights_only=True)
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    model, loaded, sidecar = load_encoder(tmp_path / "s.pt")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert loaded.weights_sha256 == sidecar["sha256"] and sidecar["note"] == "fp16"
    x = torch.rand(2, 3, *SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), student(x).numpy(), atol=1e-5)
