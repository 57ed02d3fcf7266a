"""Tiny students and a tiny world-rendered CVUSA folder for the quantize/export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from train.checkpoint import save_checkpoint
from train.models import create_model

TINY_INPUT = {"resnet18": (32, 64), "fastervit_edge": (64, 128)}
SAT_SIDE = 48


def make_student(path: Path, view: str, name: str = "resnet18", dim: int = 16, seed: int = 0):
    """A random student saved as train.distill saves one; returns its path."""
    h, w = TINY_INPUT[name]
    torch.manual_seed(seed)
    model = create_model("student", name, input_size=(h, w), embed_dim=dim)
    for m in model.modules():
        # timm zero-initialises each residual block's last BatchNorm scale; a trained model
        # never has gamma == 0 exactly, and PT2E QAT's conv-BN fold divides by it.
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    meta = {"kind": "student", "view": view, "input_size": [h, w], "model": name}
    if view == "satellite":  # the polar-transformed tile, as the edge-s students take it
        meta.update(sat_size=SAT_SIDE, sat_polar=[h, w])
    save_checkpoint(path, model, meta=meta)
    return path


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
