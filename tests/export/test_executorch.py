"""export.executorch round trips at tiny sizes, through the real executorch.runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import export.executorch as et
from d4g_edge import logger
from d4g_edge.config import EncoderConfig
from export._et_runtime import PteModel, VerificationError, check_float
from export.executorch import ExecuTorchConfig, export, main
from quantize._shared import file_sha256
from tests.quantize._tiny import make_student
from train.encoder_source import load_student


@pytest.fixture(autouse=True)
def _fresh_log_handler():
    # main() attaches the package's stream handler once, bound to the stderr of the test that
    # ran first; later tests' capture streams are different (and the old one is closed).
    yield
    for handler in [h for h in logger.handlers if getattr(h, "_d4g", False)]:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return make_student(tmp_path_factory.mktemp("et") / "student_satellite.pt", "satellite")


@pytest.fixture(scope="module")
def fp32_export(student, tmp_path_factory):
    out = tmp_path_factory.mktemp("artifacts")
    cfg = ExecuTorchConfig(view="satellite", checkpoint=student, out=out, verify_images=4)
    return export(cfg), out


def test_fp32_pte_round_trip_with_embedded_config(student, fp32_export):
    result, out = fp32_export
    assert result.path == out / "satellite_fp32.pte" and result.path.is_file()
    pte = PteModel(result.path)
    embedded = EncoderConfig.from_dict(json.loads(pte.constant("encoder_config")))
    sidecar = json.loads((out / "satellite_fp32.pte.json").read_text())
    assert embedded.to_dict() == sidecar
    assert embedded.quantization == "fp32" and embedded.view == "satellite"
    assert embedded.input().polar == (32, 64)  # the polar tile the student was built for
    assert embedded.weights_sha256 == file_sha256(student)
    model, _ = load_student(student, "satellite")
    x = torch.randn(3, 3, 32, 64)  # dynamic batch: not the size it was exported with
    with torch.no_grad():
        eager = model(x).numpy()
    got = pte(x)
    assert got.shape == (3, 16)
    cos = np.sum(got * eager, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(eager, axis=1)
    assert cos.min() > 0.999
    assert result.latency["p50_ms"] > 0
    assert result.agreement["min_cos"] > 0.999


def test_failed_verification_leaves_nothing_behind(student, tmp_path, monkeypatch):
    # a check no artifact can pass: the .pte that was written must be removed
    monkeypatch.setattr(et, "check_float", lambda a, e: check_float(a, e, min_cos=1.01))
    cfg = ExecuTorchConfig(
        view="satellite", checkpoint=student, out=tmp_path, verify_images=2, bench_runs=0
    )
    with pytest.raises(VerificationError, match="first values"):
        export(cfg)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--view", "drone"], "invalid choice"),
        (["--checkpoint", "missing.pt"], "missing.pt: no such file"),
        (["--qat", "no_run", "--checkpoint", "STUDENT"], "no_run: no such folder or file"),
        (["--verify-images", "1", "--checkpoint", "STUDENT"], "--verify-images must be >= 2"),
        (["--view", "ground", "--checkpoint", "STUDENT"], "not the ground one"),
    ],
)
def test_cli_user_errors_exit_2(student, tmp_path, capsys, args, message):
    args = [str(student) if a == "STUDENT" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["--view", "satellite", "--out", str(tmp_path / "a"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "fastervit_edge"])
def test_int8_ptq_pte_is_smaller_and_agrees_with_fp32(name, tmp_path):
    # post-training PT2E int8 (the fallback without --qat), lowered with pad kept outside
    student = make_student(tmp_path / "student_ground.pt", "ground", name=name)
    cfg = ExecuTorchConfig(
        view="ground", checkpoint=student, quant="int8", out=tmp_path / "a", calibration=16
    )
    result = export(cfg)
    assert result.path.name == "ground_int8.pte"
    embedded = json.loads(PteModel(result.path).constant("encoder_config"))
    assert embedded["quantization"] == "pt2e-int8"  # what was applied, not the file's tag
    assert result.agreement["top1_agreement"] >= 0.9
    fp32 = export(ExecuTorchConfig(view="ground", checkpoint=student, out=tmp_path / "a"))
    assert result.bytes < 0.5 * fp32.bytes
