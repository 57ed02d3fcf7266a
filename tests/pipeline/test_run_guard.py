"""Issue 9 items 2, 3, 6, 7, 8: a training command checks flags, inputs and --out before it
writes anything, and never mixes two runs in one folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from d4g_edge.cli.args import dataclass_parser
from train.distill import DistillConfig
from train.loop.rebuild import load_teacher
from train.loop.runlog import LOG_FILE
from train.teacher import main as teacher_main

from .conftest import REPO, TINY, run_module


def _teacher(capsys, data, out, *extra: str) -> tuple[int, str]:
    argv = ["--dataset", "cvusa", "--data", str(data), "--out", str(out), *TINY, *extra]
    try:
        code = teacher_main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def _old_run(out):
    """A folder holding an earlier run's files (contents only need to be recognisable)."""
    out.mkdir()
    files = {
        "config.json": '{"config": {"model": "resnet10t", "preset": "edge-s"}}',
        LOG_FILE: '{"epoch": 1, "loss": 1.0}\n{"epoch": 2, "loss": 0.5}\n',
        "last.pt": "old state",
        "teacher.pt": "old weights",
    }
    for name, text in files.items():
        (out / name).write_text(text)
    return files


def _unchanged(out, files) -> bool:
    return {p.name: p.read_text() for p in out.iterdir()} == files


def test_fresh_run_into_a_run_folder_is_refused(tiny_cvusa, tmp_path, capsys):
    out = tmp_path / "run"
    files = _old_run(out)
    code, err = _teacher(capsys, tiny_cvusa, out, "--epochs", "1")
    assert code == 2 and "is not empty" in err and "--overwrite" in err
    assert _unchanged(out, files)


def test_overwrite_that_fails_on_bad_data_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    files = _old_run(out)
    code, err = _teacher(capsys, tmp_path / "no-such-data", out, "--epochs", "1", "--overwrite")
    assert code == 2 and "no-such-data" in err
    assert _unchanged(out, files)  # config.json included


def test_resume_with_another_model_says_which_flag(tiny_cvusa, tmp_path, capsys):
    out = tmp_path / "run"
    _old_run(out)
    code, err = _teacher(capsys, tiny_cvusa, out, "--resume", "--model", "resnet18")
    assert code == 2
    assert "--model 'resnet10t' then, 'resnet18' now" in err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--epochs", "0"], "--epochs 0: expected at least one epoch"),
        (["--epochs", "-1"], "--epochs -1"),
        (["--eval-every", "0"], "--eval-every 0"),
        (["--sat-size", "0"], "--sat-size 0: expected a positive side"),
        (["--sat-size", "-64"], "--sat-size -64"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--lr", "0"], "--lr 0"),
        (["--device", "foo"], "--device 'foo'"),
        (["--resume", "--overwrite"], "pick one"),
        (["--centre-jitter", "0.6"], "--centre-jitter is a fraction of the tile in [0, 0.5)"),
        (["--centre-jitter", "0.1", "--no-recentre"], "applies to the off-centre recipe"),
    ],
)
def test_bad_flags_fail_before_anything_is_written(tiny_cvusa, tmp_path, capsys, flags, expected):
    out = tmp_path / "run"
    code, err = _teacher(capsys, tiny_cvusa, out, *flags)
    assert code == 2 and expected in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_user_error(tiny_cvusa, tmp_path, capsys):
    code, err = _teacher(capsys, tiny_cvusa, tmp_path / "run", "--device", "cuda")
    assert code == 2 and "no CUDA GPU is visible" in err


def test_corrupt_test_image_fails_before_training(tiny_cvusa, tmp_path, capsys):
    data = shutil.copytree(tiny_cvusa, tmp_path / "data")
    first = (data / "splits/val-19zl.csv").read_text().splitlines()[0].split(",")
    bad = data / first[1]
    bad.write_bytes(bad.read_bytes()[:40])  # truncated panorama of the *test* split
    out = tmp_path / "run"
    code, err = _teacher(capsys, data, out, "--epochs", "1")
    assert code == 2 and f"{bad}: cannot decode image" in err
    assert not out.exists()  # no epoch trained, nothing written


def test_overwrite_replaces_the_previous_run_and_stale_temp_files(tiny_cvusa, tmp_path, capsys):
    out = tmp_path / "run"
    _old_run(out)
    stale = out / ".last.pt.k2j3h4.tmp"  # what a kill during an atomic write leaves
    stale.write_bytes(b"\0" * 1024)
    code, err = _teacher(capsys, tiny_cvusa, out, "--epochs", "1", "--overwrite")
    assert code == 0, err
    epochs = [json.loads(line)["epoch"] for line in (out / LOG_FILE).read_text().splitlines()]
    assert epochs == [1]
    assert not stale.exists()
    load_teacher(out / "teacher.pt")  # the new run's weights, with a matching sidecar
    assert json.loads((out / "config.json").read_text())["config"]["overwrite"] is True


def test_distill_has_the_overwrite_flag():
    args = dataclass_parser(DistillConfig).parse_args(
        ["--dataset", "cvusa", "--data", "d", "--teacher", "t.pt", "--out", "o", "--overwrite"]
    )
    assert args.overwrite is True


@pytest.mark.slow
def test_kill_9_resume_cleans_up(tiny_cvusa, tmp_path):
    out = tmp_path / "run"
    cmd = ["train.teacher", "--dataset", "cvusa", "--data", str(tiny_cvusa), "--out", str(out)]
    cmd += [*TINY, "--epochs", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", *cmd],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not (out / LOG_FILE).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len((out / LOG_FILE).read_text().splitlines()) == 1, "not killed after epoch 1"
    stale = out / ".teacher.pt.x1y2z3.tmp"
    stale.write_bytes(b"\0" * 4096)  # what a kill inside an atomic save leaves behind
    with pytest.raises(AssertionError, match="is not empty"):
        run_module(*cmd)  # a fresh run into the killed run's folder is refused
    run_module(*cmd, "--resume")
    epochs = [json.loads(line)["epoch"] for line in (out / LOG_FILE).read_text().splitlines()]
    assert epochs == [1, 2] and not stale.exists()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
