"""Shared SDK fixtures: tiny real encoders (see tests/sdk/_models.py)."""

from __future__ import annotations

import pytest

from tests.sdk._models import conv_onnx, fastervit_onnx, student_config


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """Fast random conv encoders: {'ground': path, 'satellite': path}."""
    d = tmp_path_factory.mktemp("tiny_models")
    return {
        "ground": conv_onnx(d / "ground_fp32.onnx", student_config("ground"), seed=1),
        "satellite": conv_onnx(d / "satellite_fp32.onnx", student_config("satellite"), seed=2),
    }


@pytest.fixture(scope="session")
def fastervit_models(tmp_path_factory) -> dict:
    """A tiny random fastervit_edge student exported by torch.onnx (slow: ~1 min)."""
    return fastervit_onnx(tmp_path_factory.mktemp("fastervit"))
