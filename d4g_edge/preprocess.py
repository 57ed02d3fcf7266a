"""Image -> encoder input, exactly as in training, driven by the encoder config (numpy + Pillow).

The training pipeline decodes an image, resizes it with Pillow's bilinear filter to the
view's ``size``, optionally polar-transforms it (as float in [0, 1]) and normalises with
``mean``/``std``. Every runtime of this project goes through :func:`preprocess` so that the
numbers a device sees are the numbers the model was trained on.

Usage::

    from d4g_edge.config import EncoderConfig
    from d4g_edge.preprocess import preprocess
    x = preprocess(rgb_uint8, cfg, view="satellite")     # float32 (1, 3, H, W)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from d4g_edge.config import EncoderConfig
from d4g_edge.errors import ImageError
from d4g_edge.polar import polar_transform, shift_tile


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H x W x 3 -> uint8 ``size`` (height, width), Pillow bilinear as in training."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"expected a uint8 H x W x 3 RGB array, got {rgb.dtype} {rgb.shape}")
    if rgb.shape[:2] == tuple(size):
        return rgb
    img = Image.fromarray(rgb).resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
    return np.asarray(img)


def crop_rows(rgb: np.ndarray, rows: tuple[float, float] | None) -> np.ndarray:
    """The rows ``[round(top * H), round(bottom * H))`` of ``rgb`` (all of it for None)."""
    if rows is None:
        return rgb
    h = rgb.shape[0]
    top, bottom = round(rows[0] * h), max(round(rows[1] * h), round(rows[0] * h) + 1)
    return np.ascontiguousarray(rgb[top:bottom])


def preprocess(
    rgb: np.ndarray,
    cfg: EncoderConfig,
    view: str | None = None,
    *,
    centre: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """uint8 H x W x 3 RGB (any size) -> float32 (1, 3, H, W) input of ``cfg``'s ``view``.

    ``centre``: for polar views, the (east, north) point in tile sides from the tile centre
    the polar transform looks around (:func:`d4g_edge.polar.cell_centres`); the pixels from
    outside the tile are the normalisation mean (as a uint8 colour), as in training.
    """
    spec = cfg.input(view)
    u8 = resize_rgb(crop_rows(rgb, spec.crop_rows), spec.size)
    if spec.polar is None:
        # (u8 / 255 - mean) / std depends on one byte per channel: a 256-entry table per
        # channel gathers straight into the NCHW output, bit for bit the float32 arithmetic
        # of the polar path below without its full-size temporaries (the localize() fast
        # path). mode="clip": a byte is always a valid index, and "raise" buffers the output
        lut = _normalize_table(tuple(cfg.mean), tuple(cfg.std))
        out = np.empty((1, 3, *u8.shape[:2]), np.float32)
        for c in range(3):
            np.take(lut[c], u8[..., c], out=out[0, c], mode="clip")
        return out
    x = u8.astype(np.float32) / 255.0
    east, north = (float(v) * spec.size[1] for v in centre)
    if east or north:
        # the fill is the mean as the nearest uint8 colour, as training fills its uint8 tiles
        fill = np.round(np.asarray(cfg.mean) * 255.0).astype(np.float32) / 255.0
        x = shift_tile(x, east, north, fill)
    x = polar_transform(x, *spec.polar)
    x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


@lru_cache(maxsize=8)
def _normalize_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: ``(v / 255 - mean) / std`` for every byte ``v``, per channel, with
    the same float32 operations as the polar path of :func:`preprocess`."""
    v = np.arange(256, dtype=np.float32)[None, :] / 255.0
    table = (v - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]
    table.setflags(write=False)
    return table
