"""Polar transform of satellite tiles: geometry that augmentation and training rely on."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.polar import polar_transform
from train.datasets.augment import flip_pair, rotate_pair
from train.datasets.pairs import polar01


@pytest.fixture
def tile() -> np.ndarray:
    return np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_quarter_turn_of_the_tile_is_the_panorama_roll(tile, k):
    pano = np.zeros((8, 64, 3), np.float32)
    _, rotated_tile = rotate_pair(pano, tile, k)
    # rotating the tile, then polar-transforming, equals rolling its polar image like the
    # panorama: the paired augmentation stays consistent in polar space
    np.testing.assert_allclose(
        polar_transform(rotated_tile, 8, 64),
        np.roll(polar_transform(tile, 8, 64), -k * 16, 1),
        atol=1e-5,
    )
    assert (
        not np.allclose(
            polar_transform(rotated_tile, 8, 64), np.roll(polar_transform(tile, 8, 64), k * 16, 1)
        )
        or k == 2
    )


def test_mirror_of_the_tile_is_the_mirrored_panorama(tile):
    _, mirrored = flip_pair(np.zeros((8, 64, 3)), tile)
    np.testing.assert_allclose(
        polar_transform(mirrored, 8, 64), polar_transform(tile, 8, 64)[:, ::-1], atol=1e-5
    )


def test_polar01_scales_uint8_to_unit_range():
    tile = np.full((16, 16, 3), 255, np.uint8)
    out = polar01(tile, (4, 32))
    assert out.shape == (4, 32, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0)
