"""export.executorch round trips at tiny sizes, through the real executorch.runtime (the
exporter verifies through d4g_edge.runtime.open_encoder; the tests read the program directly)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from d4g_edge.config import EncoderConfig
from export import VerificationError, _verify
from export.executorch import MAX_BATCH, ExecuTorchConfig, export, main, runner
from quantize.common import sha256_file
from quantize.encoder_source import load_student
from tests.quantize._tiny import fresh_log_handler, make_student  # noqa: F401 (autouse)


def _program(path):
    from executorch.runtime import Runtime

    return Runtime.get().load_program(path)


def _constant(path, name="encoder_config"):
    return _program(path).load_method(name).execute([])[0]


def _forward(path, x: np.ndarray) -> np.ndarray:
    return _program(path).load_method("forward").execute([torch.from_numpy(x)])[0].numpy()


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return make_student(tmp_path_factory.mktemp("et") / "student_satellite.pt", "satellite")


@pytest.fixture(scope="module")
def fp32_export(student, tmp_path_factory):
    out = tmp_path_factory.mktemp("artifacts")
    cfg = ExecuTorchConfig(view="satellite", checkpoint=student, out=out, verify_pairs=4)
    return export(cfg), out


def test_fp32_pte_round_trip_with_embedded_config(student, fp32_export):
    path, out = fp32_export
    assert path == out / "satellite_fp32.pte" and path.is_file()
    embedded = EncoderConfig.from_dict(json.loads(_constant(path)))
    sidecar = json.loads((out / "satellite_fp32.pte.json").read_text())
    assert embedded.to_dict() == sidecar
    assert embedded.quantization == "fp32" and embedded.view == "satellite"
    assert embedded.input().polar == (32, 64)  # the polar tile the student was built for
    assert embedded.weights_sha256 == sha256_file(student)
    model, _ = load_student(student, "satellite")
    x = torch.randn(3, 3, 32, 64)  # the .pte is static at batch 1: the runner feeds one by one
    with torch.no_grad():
        eager = model(x).numpy()
    got = runner(path, threads=1)(x.numpy())
    assert got.shape == (3, 16)
    cos = np.sum(got * eager, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(eager, axis=1)
    assert cos.min() > 0.999
    assert sorted(p.name for p in out.iterdir()) == [
        "satellite_fp32.pte",
        "satellite_fp32.pte.json",
    ]


def test_runner_splits_batches_larger_than_the_program_batch(student, fp32_export):
    path, _ = fp32_export
    x = np.random.default_rng(0).standard_normal((MAX_BATCH + 3, 3, 32, 64)).astype(np.float32)
    got = runner(path, threads=1)(x)
    assert got.shape == (MAX_BATCH + 3, 16)
    want = _forward(path, x[-1:])[0]
    np.testing.assert_allclose(got[-1], want / np.linalg.norm(want), atol=1e-5)


def test_runner_sizes_the_xnnpack_thread_pool(fp32_export):
    # torch.set_num_threads does not reach XNNPACK's pool: a 1-thread row must run on 1 thread
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

    path, _ = fp32_export
    runner(path, threads=1)
    assert _threadpool_get_thread_count() == 1


def test_device_runner_refuses_what_the_device_cannot_open(fp32_export, tmp_path):
    path, _ = fp32_export
    bare = tmp_path / path.name  # the .pte without its .pte.json sidecar
    shutil.copy(path, bare)
    with pytest.raises(VerificationError, match=r"device runtime cannot open.*sidecar"):
        _verify.device_runner(bare)
    meta = EncoderConfig.from_dict(json.loads(_constant(path)))
    with pytest.raises(VerificationError, match="the device reads the config"):
        _verify.device_runner(path, expected=meta.replace(quantization="int8"))
    _verify.device_runner(path, expected=meta)  # its own config passes


def test_failed_verification_leaves_nothing_behind(student, tmp_path, monkeypatch):
    # a check no artifact can pass: the .pte that was written must be removed
    monkeypatch.setitem(_verify.CRITERIA, "fp32", _verify.Criteria(min_cosine=1.5))
    cfg = ExecuTorchConfig(view="satellite", checkpoint=student, out=tmp_path, verify_pairs=2)
    with pytest.raises(VerificationError, match=r"min cosine .* < 1\.5.*eager \["):
        export(cfg)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--view", "aerial"], "invalid choice"),
        (["--checkpoint", "missing.pt"], "missing.pt does not exist"),
        (["--qat", "no_run", "--checkpoint", "STUDENT"], "no_run: no such folder or file"),
        (["--verify-pairs", "1", "--checkpoint", "STUDENT"], "verify_pairs must be >= 2"),
        (["--qat", "no_run", "--quant", "fp32"], "--quant fp32 with --qat"),
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
        view="ground", checkpoint=student, quant="int8", out=tmp_path / "a", calibration_pairs=16
    )
    path = export(cfg)  # verified by export/_verify.py's int8 criteria (R@1 retention)
    assert path.name == "ground_int8.pte"
    embedded = json.loads(_constant(path))
    assert embedded["quantization"] == "pt2e-int8"  # what was applied, not the file's tag
    fp32 = export(ExecuTorchConfig(view="ground", checkpoint=student, out=tmp_path / "a"))
    assert path.stat().st_size < 0.5 * fp32.stat().st_size
