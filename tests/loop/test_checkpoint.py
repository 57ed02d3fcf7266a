"""Checkpoint files: atomic weights + sidecar, tamper and format errors, resume state."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from d4g_edge.config import EncoderConfig, ViewInput
from train.datasets import CrossViewSplit
from train.loop.checkpoint import (
    CheckpointError,
    config_for,
    read_sidecar,
    read_state_dict,
    save_checkpoint,
)
from train.loop.rebuild import load_teacher
from train.loop.state import (
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    save_training_state,
)
from train.models import create_model


class Tiny(nn.Module):
    name = "tiny"

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.lin(x))


TINY = EncoderConfig(
    model_id="tiny", kind="student", inputs={"ground": ViewInput((4, 8))}, embed_dim=2
)


def test_save_writes_plain_weights_and_sidecar_only(tmp_path) -> None:
    model = Tiny()
    extra = {"epoch": 3, "metrics": {"recall@1": 12.5}}
    save_checkpoint(tmp_path / "sub" / "w.pt", model, TINY, extra=extra)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["w.pt", "w.pt.json"]
    assert extra == {"epoch": 3, "metrics": {"recall@1": 12.5}}
    state = torch.load(tmp_path / "sub" / "w.pt", weights_only=True)
    assert set(state) == set(model.state_dict())
    side = json.loads((tmp_path / "sub" / "w.pt.json").read_text())
    assert side["format"] == "d4g-edge/checkpoint/2"
    assert side["epoch"] == 3 and side["metrics"]["recall@1"] == 12.5
    digest = hashlib.sha256((tmp_path / "sub" / "w.pt").read_bytes()).hexdigest()
    assert side["sha256"] == digest == side["encoder"]["weights_sha256"]
    assert EncoderConfig.from_dict(side["encoder"]) == TINY.replace(weights_sha256=digest)


def test_unserializable_or_reserved_extra_writes_nothing(tmp_path) -> None:
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "w.pt", Tiny(), TINY, extra={"when": object()})
    with pytest.raises(ValueError, match="encoder"):
        save_checkpoint(tmp_path / "w.pt", Tiny(), TINY, extra={"encoder": {}})
    assert list(tmp_path.iterdir()) == []


def test_non_finite_metrics_are_stored_as_null(tmp_path, caplog) -> None:
    meta = {"metrics": {"loss": float("nan"), "recall@1": 50.0}, "best": [float("-inf")]}
    save_checkpoint(tmp_path / "w.pt", Tiny(), TINY, extra=meta)
    side = read_sidecar(tmp_path / "w.pt")
    assert side["metrics"] == {"loss": None, "recall@1": 50.0} and side["best"] == [None]
    assert "extra.metrics.loss" in caplog.text


def test_replaced_weights_are_detected_by_the_sidecar_hash(tmp_path) -> None:
    teacher = create_model("teacher", "resnet10t")
    cfg = config_for(teacher, kind="teacher", inputs={"ground": ViewInput((32, 128))})
    save_checkpoint(tmp_path / "t.pt", teacher, cfg)
    with torch.no_grad():
        teacher.logit_scale.add_(1.0)
    torch.save(teacher.state_dict(), tmp_path / "t.pt")  # overwritten behind the sidecar's back
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_teacher(tmp_path / "t.pt")


def test_broken_sidecar_reports_file_and_line(tmp_path) -> None:
    save_checkpoint(tmp_path / "w.pt", Tiny(), TINY)
    (tmp_path / "w.pt.json").write_text('{\n  "model": "tiny",\n  oops\n}\n')
    with pytest.raises(CheckpointError, match=r"w\.pt\.json:3"):
        read_sidecar(tmp_path / "w.pt")
    assert read_sidecar(tmp_path / "absent.pt") is None


def test_read_state_dict_unwraps_common_containers(tmp_path) -> None:
    weights = {"_orig_mod.a": torch.ones(2), "_orig_mod.b": torch.zeros(1)}
    torch.save({"state_dict": weights, "epoch": 4}, tmp_path / "lightning.ckpt")
    assert set(read_state_dict(tmp_path / "lightning.ckpt")) == {"a", "b"}
    torch.save({"a": torch.ones(2), "meta": {"epoch": 1}}, tmp_path / "extra.pth")
    assert set(read_state_dict(tmp_path / "extra.pth")) == {"a"}
    with pytest.raises(FileNotFoundError, match="absent"):
        read_state_dict(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"definitely not a zip archive")
    with pytest.raises(CheckpointError, match="weights_only"):
        read_state_dict(tmp_path / "junk.pth")


def _sampler():
    from pathlib import Path

    from train.datasets.sampler import HardNegativeSampler

    ids = np.arange(12, dtype=np.int64)
    split = CrossViewSplit(
        dataset="cvusa",
        split="train",
        root=Path("."),
        query_paths=tuple(Path(f"g{i}") for i in range(12)),
        reference_paths=tuple(Path(f"s{i}") for i in range(12)),
        reference_ids=ids,
        query_ids=ids,
        positive_index=ids,
    )
    return HardNegativeSampler(split, batch_size=4, gps_neighbours=0, sim_neighbours=2)


def _training(seed: int = 0):
    torch.manual_seed(seed)
    model = Tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    return model, opt, sched


def _step(model, opt, sched, x) -> None:
    opt.zero_grad()
    model(x).square().mean().backward()
    opt.step()
    sched.step()


def test_resume_continues_exactly_where_training_stopped(tmp_path) -> None:
    x = torch.randn(8, 3)
    model, opt, sched = _training()
    for _ in range(3):
        _step(model, opt, sched, x)
    sampler = _sampler()
    sampler.update_similarity(np.eye(12), np.eye(12) + 0.1)
    save_training_state(
        tmp_path / "last.ckpt",
        {"model": model, "optimizer": opt, "scheduler": sched, "sampler": sampler, "epoch": 3},
    )
    _step(model, opt, sched, x)  # the run that was not interrupted

    fresh, fresh_opt, fresh_sched = _training(seed=1)  # different init, as after a restart
    fresh_sampler = _sampler()
    state = load_training_state(
        tmp_path / "last.ckpt",
        into={
            "model": fresh,
            "optimizer": fresh_opt,
            "scheduler": fresh_sched,
            "sampler": fresh_sampler,
        },
    )
    assert state["epoch"] == 3
    _step(fresh, fresh_opt, fresh_sched, x)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert fresh_sampler.epoch_batches(4) == sampler.epoch_batches(4)


def test_rng_state_survives_a_save_load_round_trip(tmp_path) -> None:
    save_training_state(tmp_path / "s.ckpt", {"rng": capture_rng_state()})
    first = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    restore_rng_state(load_training_state(tmp_path / "s.ckpt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first  # noqa: NPY002


def test_training_state_refuses_objects_that_need_pickle(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"extra\.fn"):
        save_training_state(tmp_path / "s.ckpt", {"extra": {"fn": print}})
    assert not (tmp_path / "s.ckpt").exists()


def test_training_state_errors(tmp_path) -> None:
    save_checkpoint(tmp_path / "w.pt", Tiny(), TINY)
    with pytest.raises(CheckpointError, match="training-state"):
        load_training_state(tmp_path / "w.pt")
    save_training_state(tmp_path / "s.ckpt", {"epoch": 1})
    with pytest.raises(CheckpointError, match="'optimizer'"):
        load_training_state(tmp_path / "s.ckpt", into={"optimizer": _training()[1]})
    with pytest.raises(FileNotFoundError):
        load_training_state(tmp_path / "none.ckpt")
