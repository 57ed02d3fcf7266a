"""d4g_edge.runtime: artifacts load with their embedded config and give unit embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.errors import EncoderError
from d4g_edge.preprocess import preprocess
from d4g_edge.runtime import OnnxEncoder, open_encoder
from tests.sdk._models import EMBED_DIM, GROUND_HW, conv_onnx, student_config


def _images(n, hw=(40, 160), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(n)]


def test_config_read_from_metadata(tiny_models):
    enc = open_encoder(tiny_models["satellite"], threads=1)
    assert isinstance(enc, OnnxEncoder)
    assert enc.config == student_config("satellite")
    assert enc.input_shape == GROUND_HW and enc.view == "satellite"
    assert len(enc.sha256) == 64


def test_embed_is_unit_norm_and_batch_independent(tiny_models):
    enc = open_encoder(tiny_models["ground"])
    imgs = _images(5)
    z = enc.embed(imgs, batch_size=2)
    assert z.shape == (5, EMBED_DIM) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    one = enc.embed(imgs[3:4])
    np.testing.assert_allclose(one[0], z[3], atol=1e-5)
    # the preprocessing comes from the config: same numbers as preprocess() by hand
    x = preprocess(imgs[0], enc.config)
    np.testing.assert_allclose(enc.embed_tensor(x)[0], z[0], atol=1e-5)


def test_satellite_uses_polar_from_config(tiny_models):
    enc = open_encoder(tiny_models["satellite"])
    tile = _images(1, hw=(64, 64))[0]
    x = enc.preprocess(tile)
    assert x.shape == (1, 3, *GROUND_HW)
    # polar transform maps a 90-degree tile rotation to a quarter roll of the columns
    x_rot = enc.preprocess(np.ascontiguousarray(np.rot90(tile, -1)))
    np.testing.assert_allclose(np.roll(x[..., :], GROUND_HW[1] // 4, axis=3), x_rot, atol=1e-4)


def test_missing_metadata_and_bad_files(tmp_path):
    plain = conv_onnx(tmp_path / "plain.onnx", student_config("ground"), metadata=False)
    with pytest.raises(EncoderError, match=r"d4g_edge\.encoder_config"):
        open_encoder(plain)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(EncoderError, match="cannot load"):
        open_encoder(junk)
    with pytest.raises(EncoderError, match="does not exist"):
        open_encoder(tmp_path / "none.onnx")
    with pytest.raises(EncoderError, match="suffix"):
        open_encoder(tmp_path / "model.bin")
    with pytest.raises(EncoderError, match="unknown backend"):
        open_encoder(plain, backend="tflite")
    # a file of the other runtime is named as such, not left to that runtime's parser
    with pytest.raises(EncoderError, match="ONNX model; backend 'executorch' cannot run it"):
        open_encoder(plain, backend="executorch")
    with pytest.raises(EncoderError, match="ExecuTorch program; backend 'onnxruntime'"):
        open_encoder(tmp_path / "model.pte", backend="onnxruntime")


def test_wrong_tensor_shape(tiny_models):
    enc = open_encoder(tiny_models["ground"])
    with pytest.raises(EncoderError, match="preprocess"):
        enc.embed_tensor(np.zeros((1, 3, 8, 8), np.float32))


def test_executorch_needs_sidecar(tmp_path):
    pte = tmp_path / "ground_int8.pte"
    pte.write_bytes(b"\0")
    with pytest.raises(EncoderError, match="sidecar"):
        open_encoder(pte)


@pytest.mark.slow
def test_fastervit_student_matches_eager(fastervit_models):
    """The real student architecture through export.onnx -> onnxruntime equals eager torch."""
    import torch

    from quantize.encoder_source import load_student

    enc = open_encoder(fastervit_models["ground"])
    model, _ = load_student(fastervit_models["ground_checkpoint"], "ground")
    imgs = _images(3)
    x = np.concatenate([enc.preprocess(i) for i in imgs])
    with torch.no_grad():
        eager = model(torch.from_numpy(x)).numpy()
    z = enc.embed(imgs)
    cos = (z * eager).sum(1) / np.linalg.norm(eager, axis=1)
    assert cos.min() > 0.9999, cos
