"""ONNX round trip at tiny size: one file, metadata, dynamic batch, parity; int8; failures."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from d4g_edge.config import EncoderConfig
from export import METADATA_KEY, VerificationError, _verify
from export.onnx import OnnxConfig, export
from quantize.encoder_source import load_student
from tests.export.conftest import EMBED_DIM, GROUND_HW

PAIRS = 6  # verification / calibration images: enough to retrieve among, quick to render


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _embed(path, x):
    return _session(path).run(["embedding"], {"image": x})[0]


@pytest.fixture(scope="module")
def fp32(ground_student, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    cfg = OnnxConfig(view="ground", checkpoint=ground_student, out=out, verify_pairs=PAIRS)
    return export(cfg)


def test_fp32_is_one_file_with_the_config_and_a_dynamic_batch(fp32, ground_student):
    assert fp32.name == "ground_fp32.onnx"
    assert sorted(p.name for p in fp32.parent.iterdir()) == ["ground_fp32.onnx"]  # no .data
    onnx.checker.check_model(str(fp32))  # loads without external data
    session = _session(fp32)
    text = session.get_modelmeta().custom_metadata_map[METADATA_KEY]
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    cfg = EncoderConfig.from_dict(json.loads(text))
    assert cfg.view == "ground" and cfg.quantization == "fp32" and cfg.embed_dim == EMBED_DIM
    assert cfg.input().tensor_shape == GROUND_HW
    assert cfg.weights_sha256 == hashlib.sha256(ground_student.read_bytes()).hexdigest()
    assert cfg.teacher_centre[1] == pytest.approx(0.01)  # the ground view's own centre
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name, inp.type) == ("image", "embedding", "tensor(float)")
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [3, *GROUND_HW]

    model, _ = load_student(ground_student, "ground")
    for batch in (1, 3):
        x = np.random.default_rng(batch).normal(size=(batch, 3, *GROUND_HW)).astype(np.float32)
        got = _embed(fp32, x)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, EMBED_DIM)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert np.sum(got * want, axis=1).min() > 0.999


def test_int8_is_quantized_and_keeps_fp32_top1(fp32, ground_student):
    path = export(
        OnnxConfig(
            view="ground",
            checkpoint=ground_student,
            quant="int8",
            out=fp32.parent,
            verify_pairs=PAIRS,
            calibration_pairs=PAIRS,
        )
    )
    assert path.name == "ground_int8.onnx" and not list(path.parent.glob("*.data"))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert path.stat().st_size < 0.5 * fp32.stat().st_size
    text = _session(path).get_modelmeta().custom_metadata_map[METADATA_KEY]
    assert json.loads(text)["quantization"] == "int8"

    pairs = _verify.world_pairs(8, seed=4242)  # images neither calibration nor export saw
    cfg = EncoderConfig.from_dict(json.loads(text))
    x = _verify.model_inputs(pairs, cfg)
    q, f = _embed(path, x), _embed(fp32, x)
    # each int8 embedding's nearest fp32 embedding is the one of the same image
    assert list(np.argmax(q @ f.T, axis=1)) == list(range(len(x)))


def test_failed_verification_leaves_no_artifact(ground_student, tmp_path, monkeypatch):
    monkeypatch.setitem(_verify.CRITERIA, "fp32", _verify.Criteria(min_cosine=1.5))
    cfg = OnnxConfig(view="ground", checkpoint=ground_student, out=tmp_path, verify_pairs=PAIRS)
    with pytest.raises(VerificationError, match=r"min cosine .* < 1\.5.*eager \["):
        export(cfg)
    assert list(tmp_path.iterdir()) == []  # neither the artifact nor its temporary file
