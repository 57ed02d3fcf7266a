"""Tiny world datasets (all three layouts) and a tiny random-weights teacher, built once."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from d4g_edge.config import ViewInput
from train.loop.checkpoint import config_for, save_checkpoint
from train.models import create_model
from train.synth import SynthConfig, synthesize

LAYOUTS = ("cvusa", "cvact", "vigor")
SAT, PANO = 16, (8, 32)  # tiny images: the corpus evaluates hundreds of variants


@pytest.fixture(scope="session")
def base_datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("robust_base")
    return {
        layout: synthesize(
            SynthConfig(
                layout,
                root / layout,
                train=2,
                test=4,
                seed=3,
                sat_size=SAT,
                pano_size=PANO,
                tile_m=45.0,
                town_size_m=300.0,
                pairs_per_town=4,
            )
        )
        for layout in LAYOUTS
    }


@pytest.fixture
def one_thread():
    """One torch thread: on a loaded 2-core machine the default pool makes each tiny
    forward pass ~30x slower (measured 1.8 s vs 0.05 s per evaluation)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """An 80k-parameter ResNet teacher with random weights, saved the project's way."""
    torch.manual_seed(0)
    teacher = create_model("teacher", "resnet10t", channels=[8, 16, 32, 64], stem_width=8)
    path = tmp_path_factory.mktemp("robust_ckpt") / "teacher.pt"
    inputs = {"ground": ViewInput(PANO), "satellite": ViewInput((SAT, SAT))}
    config = config_for(teacher, kind="teacher", inputs=inputs)
    return save_checkpoint(path, teacher.eval(), config, extra={"preset": "edge-s"})


def evaluate_in_process(layout: str, root: Path, ckpt: Path, out_json: Path):
    """``python -m train.evaluate`` in this process: (exit code, stderr text, the "error: "
    line of stderr or "", JSON record)."""
    from train.evaluate import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(
                [
                    "--dataset",
                    layout,
                    "--data",
                    str(root),
                    "--ground",
                    str(ckpt),
                    "--satellite",
                    str(ckpt),
                    "--json",
                    str(out_json),
                ]
            )
        except SystemExit as stop:
            code = stop.code
    lines = err.getvalue().replace("\r", "\n").splitlines()
    message = next((line for line in lines if line.startswith("error: ")), "")
    record = json.loads(out_json.read_text()) if code == 0 and out_json.is_file() else None
    return code, err.getvalue(), message, record
