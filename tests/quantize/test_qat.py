"""quantize.qat on tiny random students: fake-quantized fine-tune, convert, save, R@1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from quantize import pt2e
from quantize.artifact import load_quantized
from quantize.common import sha256_file
from quantize.encoder_source import load_student
from quantize.qat import QuantizeConfig, main, run
from tests.quantize._tiny import fresh_log_handler, make_student, write_tiny_cvusa  # noqa: F401 (autouse)
from train.models import create_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("qat")
    write_tiny_cvusa(root / "cvusa")
    make_student(root / "student_ground.pt", "ground")
    make_student(root / "student_satellite.pt", "satellite", seed=1)
    return root


def test_int8_qat_two_steps_stays_close_to_fp32(tiny, tmp_path):
    cfg = QuantizeConfig(
        data=tiny / "cvusa",
        out=tmp_path / "run",
        student=tiny / "student_ground.pt",
        partner=tiny / "student_satellite.pt",
        scheme="int8",
        steps=2,
        batch_size=4,
    )
    result = run(cfg)

    program, qcfg = load_quantized(tmp_path / "run", "ground")
    assert qcfg.quantization == "int8" and qcfg.view == "ground"
    assert qcfg.weights_sha256 == sha256_file(tiny / "student_ground.pt")
    fp32, _ = load_student(tiny / "student_ground.pt", "ground")
    x = torch.randn(5, 3, *qcfg.input().tensor_shape)  # a batch size it never saw
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(program.module()(x), fp32(x), dim=-1)
    assert cos.min() > 0.98, cos
    # int8 weights on disk: well under the fp32 checkpoint (which holds fp32 weights)
    pt2 = tmp_path / "run" / result["artifact"]
    assert pt2.stat().st_size < 0.5 * (tiny / "student_ground.pt").stat().st_size
    assert len(result["losses"]["last"]) == 2 and np.isfinite(result["losses"]["last"]).all()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["recall_fp32"]["num_queries"] == 6
    assert 0 <= saved["recall_int8"]["recall@1"] <= 100
    assert not list((tmp_path / "run").glob(".*"))  # no temp files left


def test_qat_refuses_a_zero_batchnorm_scale():
    # timm zero-initialises residual blocks' last BN scale; the conv-BN fold divides by it
    model = create_model("student", "resnet18", input_size=(32, 64), embed_dim=8).eval()
    with pytest.raises(ValueError, match="gamma"):
        pt2e.prepare_qat(model, (2, 3, 32, 64))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "1"], "--batch-size must be >= 2"),
        (["--scheme", "int4"], "invalid choice"),
        (["--student", "nope.pt"], "nope.pt: no such checkpoint"),
    ],
)
def test_cli_user_errors_exit_2_without_traceback(tiny, tmp_path, capsys, args, message):
    base = ["--data", str(tiny / "cvusa"), "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
