"""A tiny world-written CVUSA dataset shared by the training-loop tests (built once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from train.synth import SynthConfig, synthesize

REPO = Path(__file__).resolve().parents[2]
TINY = ["--sat-size", "64", "--ground-size", "32x128", "--batch-size", "8", "--model", "resnet10t"]


@pytest.fixture(scope="session")
def tiny_cvusa(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cvusa")
    synthesize(
        SynthConfig(
            layout="cvusa",
            out=out,
            train=24,
            test=16,
            seed=7,
            sat_size=64,
            pano_size=(32, 128),
            tile_m=60.0,
            pairs_per_town=24,
            town_size_m=400.0,
        )
    )
    return out


def run_module(*args: str, timeout: float = 300, launcher: list[str] | None = None):
    """Run ``python -m <args>`` (or ``launcher`` + args) from the repo root; check success."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [*(launcher or [sys.executable, "-m"]), *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc
