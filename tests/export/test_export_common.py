"""Exporter plumbing: config -> CLI, atomic writes, embedded config, verification maths."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from d4g_edge.config import EncoderConfig, ViewInput
from export import ExportError, VerificationError
from export._common import (
    ExportConfig,
    artifact_config,
    artifact_path,
    atomic_artifact,
    build_parser,
    config_json,
    flag,
    write_config_sidecar,
)
from export._verify import (
    Criteria,
    check,
    model_inputs,
    parity,
    pixel_inputs,
    recall_at_1,
    world_pairs,
)

REPO = Path(__file__).resolve().parents[2]
CFG = EncoderConfig(
    model_id="fastervit_edge",
    kind="student",
    inputs={"satellite": ViewInput(size=(64, 64), polar=(32, 128))},
    embed_dim=8,
)


@dataclass(frozen=True)
class DemoConfig(ExportConfig):
    quant: str = field(default="fp16", metadata=flag("precision", ("fp16", "int8")))


def test_parser_is_built_from_the_dataclass():
    args = build_parser(DemoConfig).parse_args(["--view", "satellite", "--quant", "int8"])
    cfg = DemoConfig(**vars(args))
    assert (cfg.view, cfg.quant, cfg.out, cfg.checkpoint) == (
        "satellite",
        "int8",
        Path("artifacts"),
        None,
    )
    with pytest.raises(SystemExit):
        build_parser(DemoConfig).parse_args(["--view", "ground", "--quant", "fp32"])
    with pytest.raises(ExportError, match=r"quant must be one of \['fp16', 'int8'\], got 'int4'"):
        DemoConfig(view="ground", quant="int4")


def test_embedded_config_is_compact_sorted_and_a_copy():
    meta = artifact_config(CFG, "int8")
    assert CFG.quantization == "fp32" and meta.quantization == "int8"
    text = config_json(meta)
    assert " " not in text and EncoderConfig.from_dict(json.loads(text)) == meta
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert artifact_path(Path("a"), "ground", "int8", "pte") == Path("a/ground_int8.pte")


def test_sidecar_sits_next_to_the_artifact(tmp_path):
    sidecar = write_config_sidecar(tmp_path / "ground_int8.pte", artifact_config(CFG, "int8"))
    assert sidecar.name == "ground_int8.pte.json"
    assert EncoderConfig.from_dict(json.loads(sidecar.read_text())).quantization == "int8"
    assert [p.name for p in tmp_path.iterdir()] == ["ground_int8.pte.json"]


@pytest.mark.parametrize("folder", [False, True])
def test_atomic_artifact_keeps_the_old_one_on_failure_and_replaces_it_on_success(tmp_path, folder):
    path = tmp_path / ("m.mlpackage" if folder else "m.onnx")

    def write(target: Path, text: str) -> None:
        if folder:
            target.mkdir()
            (target / "weights.bin").write_text(text)
        else:
            target.write_text(text)

    def read() -> str:
        return (path / "weights.bin" if folder else path).read_text()

    with atomic_artifact(path) as tmp:
        assert tmp.suffix == path.suffix and tmp.parent == tmp_path
        write(tmp, "old")
    with pytest.raises(VerificationError), atomic_artifact(path) as tmp:
        write(tmp, "broken")
        raise VerificationError("parity")
    assert read() == "old" and [p.name for p in tmp_path.iterdir()] == [path.name]
    with atomic_artifact(path) as tmp:
        write(tmp, "new")
    assert read() == "new" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_parity_and_recall_on_known_embeddings():
    eye = np.eye(4, dtype=np.float32)
    assert recall_at_1(eye, eye) == 1.0
    assert recall_at_1(eye[[1, 0, 2, 3]], eye) == 0.5  # two queries swapped
    tied = np.array([[1, 0], [1, 0]], np.float32)
    assert recall_at_1(tied, tied) == 1.0  # a tie is not "strictly higher"
    report = parity(eye, eye[[1, 0, 2, 3]], k=1)
    assert (report.min_cosine, report.mean_cosine, report.r1, report.r1_eager) == (0, 0.5, 0.5, 1)
    assert report.topk_agreement == 0.5 and report.r1_retention == 0.5
    with pytest.raises(VerificationError, match=r"R@1 retention 0\.500 < 0\.9"):
        check(report, Criteria(min_cosine=-1, min_r1_retention=0.9), eye, eye[[1, 0, 2, 3]], "x")
    nan = np.full_like(eye, np.nan)
    with pytest.raises(VerificationError, match="min cosine nan"):
        check(parity(eye, nan), Criteria(min_cosine=0.5), eye, nan, "x")


def test_world_pairs_are_deterministic_and_feed_both_input_kinds():
    a, b = world_pairs(3, seed=11), world_pairs.__wrapped__(3, seed=11)
    assert a.ground.shape == (3, 96, 512, 3) and a.satellite.shape == (3, 256, 256, 3)
    assert np.array_equal(a.ground, b.ground) and np.array_equal(a.satellite, b.satellite)
    assert not np.array_equal(a.ground, world_pairs(3, seed=12).ground)
    x, pixels = model_inputs(a, CFG), pixel_inputs(a, CFG)
    assert x.shape == pixels.shape == (3, 3, 32, 128)
    mean, std = (np.array(v, np.float32)[None, :, None, None] for v in (CFG.mean, CFG.std))
    np.testing.assert_allclose((pixels / 255.0 - mean) / std, x, atol=1e-4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export.onnx", "--view", "aerial"], "invalid choice: 'aerial'"),
        (["export.coreml", "--view", "ground", "--quant", "int4"], "invalid choice: 'int4'"),
        (
            ["export.onnx", "--view", "ground", "--checkpoint", "missing.pt"],
            "missing.pt does not exist",
        ),
        (["export.onnx", "--view", "ground", "--verify-pairs", "1"], "verify_pairs must be >= 2"),
    ],
)
def test_cli_user_errors_exit_2_without_traceback(argv, message):
    proc = subprocess.run(
        [sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_cli_rejects_the_other_views_student(ground_student, capsys):
    from export.onnx import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--view", "satellite", "--checkpoint", str(ground_student)])
    assert exit_info.value.code == 2
    assert "holds the ground student, not the satellite one" in capsys.readouterr().err
