"""Tiny random students shared by the exporter tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

# The smallest shapes fastervit_edge accepts (stride 32); 16-d embeddings.
GROUND_HW, SAT_SIZE, EMBED_DIM = (32, 128), 64, 16


def save_student(directory: Path, view: str, seed: int | None = None) -> Path:
    """A random fastervit_edge student saved the way train.distill saves one (the seed
    defaults to one per view; equal seeds give both views the same weights)."""
    from tests.quantize._tiny import make_student

    return make_student(
        directory / f"student_{view}.pt",
        view,
        name="fastervit_edge",
        dim=EMBED_DIM,
        seed={"ground": 0, "satellite": 1}[view] if seed is None else seed,
        input_size=GROUND_HW,
        sat_side=SAT_SIZE,
        # train.distill records the teacher's centre of the view it trained
        teacher_centre=[0.01 * i for i in range(EMBED_DIM)],
    )


@pytest.fixture(scope="session")
def ground_student(tmp_path_factory) -> Path:
    return save_student(tmp_path_factory.mktemp("students"), "ground")
