"""Tiny students and a tiny world-rendered CVUSA folder for the quantize/export tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from d4g_edge.config import ViewInput
from d4g_edge.log import logger
from train.loop.checkpoint import config_for, save_checkpoint
from train.models import create_model


@pytest.fixture(autouse=True)
def fresh_log_handler():
    """Import into a test module that calls a CLI's ``main()``: the package's stream handler
    is attached once, bound to the stderr of the test that ran first; later tests' capture
    streams are different (and the old one is closed), so it is removed after each test."""
    yield
    for handler in [h for h in logger.handlers if getattr(h, "_d4g", False)]:
        logger.removeHandler(handler)


TINY_INPUT = {"resnet18": (32, 64), "fastervit_edge": (64, 128)}
SAT_SIDE = 48
TEACHER_MODEL, TEACHER_SHA = "resnet18", "ab" * 32  # one teacher: the two views pair


def make_student(
    path: Path,
    view: str,
    name: str = "resnet18",
    dim: int = 16,
    seed: int = 0,
    input_size: tuple[int, int] | None = None,
    sat_side: int = SAT_SIDE,
    **config: Any,
) -> Path:
    """A random student saved as train.distill saves one; returns its path.

    ``input_size`` is the ground panorama (and the satellite's polar tile, from a
    ``sat_side`` square tile); ``config`` sets further EncoderConfig fields (e.g.
    ``teacher_centre``)."""
    h, w = input_size or TINY_INPUT[name]
    torch.manual_seed(seed)
    model = create_model("student", name, input_size=(h, w), embed_dim=dim)
    for m in model.modules():
        # timm zero-initialises each residual block's last BatchNorm scale; a trained model
        # never has gamma == 0 exactly, and PT2E QAT's conv-BN fold divides by it.
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    # the satellite student takes the polar-transformed tile, as the edge-s students do
    spec = (
        ViewInput(size=(sat_side, sat_side), polar=(h, w))
        if view == "satellite"
        else ViewInput(size=(h, w))
    )
    cfg = config_for(
        model,
        kind="student",
        inputs={view: spec},
        teacher_model=TEACHER_MODEL,
        teacher_sha256=TEACHER_SHA,
        **config,
    )
    return save_checkpoint(path, model, cfg)


def write_tiny_cvusa(root: Path, train: int = 8, test: int = 6, seed: int = 5) -> Path:
    """A CVUSA-layout folder of ``train`` + ``test`` world pairs (tile-centred panoramas)."""
    from train.world import DomainGap, World

    rng = np.random.default_rng(seed)
    world = World.generate(seed, "suburb", size_m=300.0)
    rows = {"train": [], "test": []}
    (root / "bingmap/19").mkdir(parents=True)
    (root / "streetview/panos").mkdir(parents=True)
    (root / "splits").mkdir()
    for i, (east, north) in enumerate(world.sample_street_points(train + test, rng), 1):
        sat = world.render_satellite((east, north), 64, 60.0 / 64, DomainGap.sample(rng), rng)
        pano = world.render_panorama((east, north), 32, 128, gap=DomainGap.sample(rng), rng=rng)
        Image.fromarray(sat).save(root / f"bingmap/19/{i:07d}.jpg")
        Image.fromarray(pano).save(root / f"streetview/panos/{i:07d}.jpg")
        split = "train" if i <= train else "test"
        rows[split].append(
            f"bingmap/19/{i:07d}.jpg,streetview/panos/{i:07d}.jpg,"
            f"streetview/annotations/{i:07d}.png"
        )
    for split, name in (("train", "train-19zl.csv"), ("test", "val-19zl.csv")):
        (root / "splits" / name).write_text("\n".join(rows[split]) + "\n")
    return root
