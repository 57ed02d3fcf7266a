"""End-to-end teacher runs on a tiny world dataset: resume after a kill, torchrun DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from train.loop.checkpoint import read_state_dict
from train.loop.rebuild import load_teacher
from train.loop.runlog import LOG_FILE

from .conftest import REPO, TINY, run_module


def _epochs(run_dir) -> list[int]:
    path = run_dir / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line]


def _teacher_cmd(data, out, epochs: int) -> list[str]:
    return [
        "train.teacher",
        "--dataset",
        "cvusa",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--sim-update-every",
        "2",
        *TINY,
    ]


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tiny_cvusa, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_module(*_teacher_cmd(tiny_cvusa, straight, 3))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", *_teacher_cmd(tiny_cvusa, killed, 3)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not _epochs(killed) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _epochs(killed)
    assert done and done[-1] < 3, f"the run was not killed mid-way (epochs logged: {done})"

    run_module(*_teacher_cmd(tiny_cvusa, killed, 3), "--resume")
    assert _epochs(killed) == [1, 2, 3]
    # Same seed, same batches, restored optimiser/scheduler/sampler/RNG: identical weights.
    a = torch.load(straight / "last.pt", weights_only=True)["model_teacher"]
    b = torch.load(killed / "last.pt", weights_only=True)["model_teacher"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=f"{key} differs after resume")


def test_resume_without_state_is_a_clear_error(tiny_cvusa, tmp_path):
    with pytest.raises(AssertionError, match=r"no last\.pt"):
        run_module(*_teacher_cmd(tiny_cvusa, tmp_path / "fresh", 1), "--resume")


def test_one_epoch_writes_run_folder_and_loadable_teacher(tiny_cvusa, tmp_path):
    out = tmp_path / "run"
    run_module(*_teacher_cmd(tiny_cvusa, out, 1))
    for name in ("config.json", "metrics.jsonl", "curves.png", "last.pt", "teacher.pt"):
        assert (out / name).is_file(), name
    teacher, meta = load_teacher(out / "teacher.pt")
    inputs = meta["encoder"]["inputs"]
    assert inputs["satellite"]["size"] == [64, 64] and inputs["ground"]["size"] == [32, 128]
    assert set(read_state_dict(out / "teacher.pt")) == set(teacher.state_dict())
    config = json.loads((out / "config.json").read_text())
    assert config["hparams"]["epochs"] == 1 and config["config"]["model"] == "resnet10t"


@pytest.mark.slow
def test_torchrun_two_processes_evaluates_like_one(tiny_cvusa, tmp_path):
    out = tmp_path / "ddp"
    run_module(
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        *_teacher_cmd(tiny_cvusa, out, 1),
        launcher=[sys.executable, "-m", "torch.distributed.run"],
    )
    logged = json.loads((out / LOG_FILE).read_text().splitlines()[-1])
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    # Re-evaluate the saved teacher in one process: the sharded, gathered evaluation of the
    # two ranks must give the same numbers.
    run_module(
        "train.evaluate",
        "--dataset",
        "cvusa",
        "--data",
        str(tiny_cvusa),
        "--ground",
        str(out / "teacher.pt"),
        "--satellite",
        str(out / "teacher.pt"),
        "--json",
        str(tmp_path / "single.json"),
    )
    single = json.loads((tmp_path / "single.json").read_text())["metrics"]
    for key in ("recall@1", "recall@5", "recall@10"):
        assert single[key] == pytest.approx(logged[key]), key
