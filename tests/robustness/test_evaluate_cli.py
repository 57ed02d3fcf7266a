"""Issue 9 items 1 and 7: train.evaluate's VIGOR protocol and its output-path errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from train.evaluate import main as evaluate_main

from .conftest import evaluate_in_process

REPO = Path(__file__).resolve().parents[2]


def _labelled(root: Path, cities, name: str) -> int:
    return sum(
        len([ln for ln in (root / "splits" / c / name).read_text().splitlines() if ln.strip()])
        for c in cities
    )


def test_vigor_defaults_to_cross_area_like_training(base_datasets, tiny_teacher, tmp_path):
    root = base_datasets["vigor"]
    code, err, _, rec = evaluate_in_process("vigor", root, tiny_teacher, tmp_path / "c.json")
    assert code == 0, err
    # cross-area tests on Chicago + San Francisco, labelled in pano_label_balanced.txt
    cross = _labelled(root, ("Chicago", "SanFrancisco"), "pano_label_balanced.txt")
    assert rec["metrics"]["num_queries"] == cross and rec["vigor_mode"] == "cross"

    out = tmp_path / "s.json"
    args = ["--dataset", "vigor", "--data", str(root), "--ground", str(tiny_teacher)]
    args += ["--satellite", str(tiny_teacher), "--json", str(out), "--vigor-mode", "same"]
    assert evaluate_main(args) == 0
    same = json.loads(out.read_text())
    cities = ("Chicago", "NewYork", "SanFrancisco", "Seattle")
    assert same["metrics"]["num_queries"] == _labelled(root, cities, "same_area_balanced_test.txt")
    assert same["vigor_mode"] == "same"


def test_broken_cross_area_labels_fail(base_datasets, tiny_teacher, tmp_path):
    root = shutil.copytree(base_datasets["vigor"], tmp_path / "vigor")
    labels = root / "splits/SanFrancisco/pano_label_balanced.txt"
    labels.write_text(labels.read_text().replace(" ", " x ", 1))
    code, _, message, _ = evaluate_in_process("vigor", root, tiny_teacher, tmp_path / "o.json")
    assert code == 2 and str(labels) in message and "line 1" in message


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_json_pointing_at_a_directory(base_datasets, tiny_teacher, tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    ckpt = str(tiny_teacher)
    proc = _cli(
        *("train.evaluate", "--dataset", "cvusa", "--data", str(base_datasets["cvusa"])),
        *("--ground", ckpt, "--satellite", ckpt, "--json", str(target)),
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and f"--json {target} is a directory" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no temp file left
    assert not any(target.iterdir())


def test_unknown_model_exits_2_without_traceback(base_datasets, tmp_path):
    out = tmp_path / "run"
    args = ["--dataset", "cvusa", "--data", str(base_datasets["cvusa"]), "--out", str(out)]
    proc = _cli("train.teacher", *args, "--model", "resnet10x", "--epochs", "1")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "unknown teacher model 'resnet10x'" in proc.stderr
    assert not out.exists()  # nothing written for a run that never started
