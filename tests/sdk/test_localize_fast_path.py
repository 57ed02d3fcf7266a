"""The localize() fast path computes what the plain arithmetic computes, bit for bit.

Each fast form (a lookup table for the normalisation, the one-row-per-tile dedup, ...) is
checked here against the straightforward numpy it replaced, written out in the test.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from d4g_edge.config import EncoderConfig
from d4g_edge.preprocess import preprocess


def _ground(size=(64, 256), crop_rows=None, mean=None, std=None) -> EncoderConfig:
    spec = {"size": list(size)}
    if crop_rows is not None:
        spec["crop_rows"] = list(crop_rows)
    extra = {"mean": mean, "std": std} if mean is not None else {}
    return EncoderConfig.from_dict(
        dict(
            model_id="fastervit_edge",
            kind="student",
            inputs={"ground": spec},
            embed_dim=4,
            teacher_centre=[0.1, 0.2, 0.3, 0.4],
            teacher_sha256="a" * 64,
            **extra,
        )
    )


def _plain_preprocess(rgb: np.ndarray, cfg: EncoderConfig) -> np.ndarray:
    """Crop, Pillow bilinear resize, /255, (x - mean) / std in float32, NCHW."""
    spec = cfg.input()
    if spec.crop_rows is not None:
        h = rgb.shape[0]
        top = round(spec.crop_rows[0] * h)
        rgb = rgb[top : max(round(spec.crop_rows[1] * h), top + 1)]
    if rgb.shape[:2] != tuple(spec.size):
        size = (spec.size[1], spec.size[0])
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.BILINEAR))
    x = rgb.astype(np.float32) / 255.0
    x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return x.transpose(2, 0, 1)[None]


@pytest.mark.parametrize(
    "shape, cfg",
    [
        ((64, 256), _ground()),  # the encoder's own size: no resize
        ((128, 512), _ground(crop_rows=(0.32, 0.68))),  # a VIGOR panorama, cropped
        ((97, 301), _ground(size=(40, 160), mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])),
    ],
)
def test_preprocess_is_the_float32_arithmetic_bit_for_bit(shape, cfg):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    rgb[0, :4] = [[0, 0, 0], [255, 255, 255], [1, 128, 254], [7, 7, 7]]  # the table's ends
    got = preprocess(rgb, cfg)
    want = _plain_preprocess(rgb, cfg)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == want.shape
    assert np.array_equal(got, want)
    # a strided view (not C-contiguous) is read the same way
    wide = np.repeat(rgb, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    assert np.array_equal(preprocess(wide, cfg), want)
