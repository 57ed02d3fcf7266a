"""Issue 9 items 7-8: sidecars naming unknown models/kwargs, sidecars without a digest."""

from __future__ import annotations

import json

import pytest
import torch

from d4g_edge.config import ViewInput
from train.loop.checkpoint import CheckpointError, config_for, save_checkpoint
from train.loop.rebuild import load_encoder, load_teacher
from train.models import create_model
from train.models.registry import UnknownModelError


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    teacher = create_model("teacher", "resnet10t", channels=[8, 16, 32, 64], stem_width=8)
    config = config_for(teacher, kind="teacher", inputs={"satellite": ViewInput((16, 16))})
    path = save_checkpoint(tmp_path / "t.pt", teacher, config)
    return path, path.with_name("t.pt.json")


def _edit(sidecar, encoder=None, **changes):
    """Set (or, for None, drop) top-level sidecar keys; ``encoder`` updates its EncoderConfig."""
    meta = json.loads(sidecar.read_text())
    for k, v in changes.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    meta["encoder"].update(encoder or {})
    sidecar.write_text(json.dumps(meta))


def test_unknown_model_error_is_a_value_error():
    with pytest.raises(ValueError, match="unknown teacher model 'foo'"):
        create_model("teacher", "foo")
    assert issubclass(UnknownModelError, KeyError)  # mapping-style callers keep working


def test_sidecar_naming_an_unknown_model(saved):
    path, sidecar = saved
    _edit(sidecar, encoder={"model_id": "resnet10x"})
    with pytest.raises(CheckpointError, match="names an unknown model") as err:
        load_encoder(path)
    assert str(sidecar) in str(err.value)


def test_sidecar_with_unknown_model_kwargs(saved):
    path, sidecar = saved
    kwargs = json.loads(sidecar.read_text())["encoder"]["model_kwargs"]
    _edit(sidecar, encoder={"model_kwargs": {**kwargs, "wings": 2}})
    with pytest.raises(CheckpointError, match="does not accept its model_kwargs"):
        load_teacher(path)


@pytest.mark.parametrize("digest", [None, "", "abc"])
def test_sidecar_without_a_valid_digest_is_refused(saved, digest):
    path, sidecar = saved
    _edit(sidecar, sha256=digest)
    with pytest.raises(CheckpointError, match="no valid 'sha256'"):
        load_teacher(path)


def test_swapped_weights_under_a_digestless_sidecar_do_not_load(saved, tmp_path):
    path, sidecar = saved
    other = create_model("teacher", "resnet10t", channels=[8, 16, 32, 64], stem_width=8)
    torch.save(other.state_dict(), path)  # same architecture, other weights
    _edit(sidecar, sha256=None)
    with pytest.raises(CheckpointError):
        load_teacher(path)
