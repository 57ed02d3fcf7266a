"""Tiny random students shared by the exporter tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

# The smallest shapes fastervit_edge accepts (stride 32); 16-d embeddings.
GROUND_HW, SAT_SIZE, EMBED_DIM = (32, 128), 64, 16


def save_student(directory: Path, view: str) -> Path:
    """A random fastervit_edge student saved the way train.distill saves one."""
    import torch

    from train.checkpoint import save_checkpoint
    from train.models import create_model

    torch.manual_seed({"ground": 0, "satellite": 1}[view])
    model = create_model("student", "fastervit_edge", input_size=GROUND_HW, embed_dim=EMBED_DIM)
    path = directory / f"student_{view}.pt"
    save_checkpoint(
        path,
        model,
        meta={
            "kind": "student",
            "view": view,
            "input_size": list(GROUND_HW),
            "model": "fastervit_edge",
            "sat_size": SAT_SIZE,
            "sat_polar": list(GROUND_HW) if view == "satellite" else None,
            # train.distill writes one centre per view it trained
            "teacher_centre": {view: [0.01 * i for i in range(EMBED_DIM)]},
        },
    )
    return path


@pytest.fixture(scope="session")
def ground_student(tmp_path_factory) -> Path:
    return save_student(tmp_path_factory.mktemp("students"), "ground")
