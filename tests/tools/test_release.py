"""tools.release: fp16 copies of trained students that load, embed alike and say where from."""

from __future__ import annotations

import json

import pytest
import torch

from d4g_edge.config import ViewInput
from tools.release import main
from train.loop import load_encoder, save_checkpoint
from train.loop.checkpoint import config_for
from train.models import create_model


@pytest.fixture
def student_ckpt(tmp_path):
    torch.manual_seed(0)
    model = create_model("student", "fastervit_edge", input_size=(32, 128), embed_dim=16)
    cfg = config_for(model, kind="student", inputs={"ground": ViewInput((32, 128))})
    return save_checkpoint(tmp_path / "run" / "student_ground.pt", model, cfg, extra={"epoch": 3})


def test_release_writes_fp16_copy_that_embeds_alike(student_ckpt, tmp_path):
    assert main(["--checkpoint", str(student_ckpt), "--out", str(tmp_path / "w")]) == 0
    dest = tmp_path / "w" / "student_ground.pt"
    state = torch.load(dest, weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert dest.stat().st_size < 0.6 * student_ckpt.stat().st_size
    side = json.loads((tmp_path / "w" / "student_ground.pt.json").read_text())
    assert side["epoch"] == 3 and side["released_from"]["file"] == str(student_ckpt)
    src, cfg_src, _ = load_encoder(student_ckpt)
    rel, cfg_rel, _ = load_encoder(dest)
    assert cfg_rel.replace(weights_sha256=None) == cfg_src.replace(weights_sha256=None)
    x = torch.randn(2, 3, 32, 128)
    with torch.no_grad():
        assert float((src(x) * rel(x)).sum(-1).min()) > 0.999


def test_release_refuses_a_file_without_sidecar(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    assert main(["--checkpoint", str(tmp_path / "x.pt"), "--out", str(tmp_path / "w")]) == 2
    assert "sidecar" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
