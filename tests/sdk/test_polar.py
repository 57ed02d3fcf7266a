"""Polar transform of satellite tiles: geometry that augmentation and training rely on."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.polar import cell_centres, polar_transform, shift_tile
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


def test_shift_tile_brings_the_camera_to_the_centre():
    tile = np.arange(5 * 5).reshape(5, 5, 1)
    # the camera 1 px east and 2 px north of the centre pixel (2, 2): pixel (row 0, col 3)
    out = shift_tile(tile, 1, 2, fill=-1)
    assert out[2, 2, 0] == tile[0, 3, 0]
    # rows 0-1 come from above the tile and the last column from east of it: fill
    assert (out[:2] == -1).all() and (out[:, 4] == -1).all()
    assert out[4, 0, 0] == tile[2, 1, 0]
    assert shift_tile(tile, 0, 0, fill=-1) is tile
    with pytest.raises(ValueError, match="H x W x C"):
        shift_tile(np.zeros((4, 4)), 1, 1, 0)


def test_cell_centres_cover_a_cell_at_most_a_step_apart():
    # VIGOR's half-overlap grid: a tile's cell is half a tile wide; 3 ticks 1/6 apart
    c = cell_centres(0.5, 1 / 6)
    assert c.shape == (9, 2)
    np.testing.assert_allclose(np.unique(c[:, 0]), [-1 / 6, 0, 1 / 6])
    np.testing.assert_allclose(c[0], [-1 / 6, 1 / 6])  # north-west first, row by row
    # abutting web-map tiles: the cell is the whole tile, 6 ticks at odd twelfths
    np.testing.assert_allclose(
        np.unique(cell_centres(1.0, 1 / 6)[:, 1]), np.array([-5, -3, -1, 1, 3, 5]) / 12
    )
    # a grid already as dense as the step needs only the tile centre
    np.testing.assert_array_equal(cell_centres(1 / 6, 1 / 6), [[0.0, 0.0]])
    with pytest.raises(ValueError, match="positive"):
        cell_centres(0.0, 0.1)


def test_polar_around_a_centre_is_polar_of_the_shifted_tile(tile):
    from d4g_edge.config import EncoderConfig, ViewInput
    from d4g_edge.preprocess import preprocess

    rgb = (tile * 255).astype(np.uint8)
    cfg = EncoderConfig(
        "fastervit_edge",
        "student",
        {"satellite": ViewInput((32, 32), polar=(8, 64), centre_step=0.25)},
        embed_dim=4,
    )
    x = preprocess(rgb, cfg, centre=(0.25, -0.125))  # 8 px east, 4 px south
    mean = np.asarray(cfg.mean, np.float32)
    fill = np.round(mean * 255) / 255  # training fills uint8 tiles with the mean colour
    shifted = shift_tile(rgb.astype(np.float32) / 255, 8, -4, fill)
    expected = (polar_transform(shifted, 8, 64) - mean) / np.asarray(cfg.std, np.float32)
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), expected, atol=1e-5)
    assert not np.allclose(x, preprocess(rgb, cfg))
