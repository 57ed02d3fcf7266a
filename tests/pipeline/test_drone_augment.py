"""Drone frames turn with the tile (a panorama rolls instead): the pair stays a true pair."""

from __future__ import annotations

import numpy as np
import pytest

from train.datasets.augment import NUM_VARIANTS, PairAugment, apply_variant, rotate_pair


def _frame_and_tile():
    frame = np.arange(6 * 6 * 3).reshape(6, 6, 3)
    tile = 1000 + np.arange(5 * 5 * 3).reshape(5, 5, 3)
    return frame, tile


@pytest.mark.parametrize("variant", range(NUM_VARIANTS))
def test_variants_turn_and_mirror_frame_and_tile_alike(variant):
    frame, tile = _frame_and_tile()
    f, t = apply_variant(frame, tile, variant, frame=True)
    flip, k = divmod(variant, 4)
    want_f = np.rot90(frame[:, ::-1] if flip else frame, k)
    want_t = np.rot90(tile[:, ::-1] if flip else tile, k)
    np.testing.assert_array_equal(f, want_f)
    np.testing.assert_array_equal(t, want_t)


def test_a_frame_is_never_rolled_like_a_panorama():
    frame, tile = _frame_and_tile()
    f, _ = rotate_pair(frame, tile, 1, frame=True)
    # a quarter turn counter-clockwise: the old right (east) column is the new top row
    np.testing.assert_array_equal(f[0], frame[:, -1])
    rolled, _ = rotate_pair(np.zeros((4, 8, 3)), tile, 1)  # the panorama path is unchanged
    assert rolled.shape == (4, 8, 3)


def test_random_augment_keeps_frame_and_tile_aligned():
    # a frame that is the tile itself must stay equal to it under every random draw
    tile = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    aug = PairAugment(flip_p=0.5, rotate_p=1.0, brightness=0, contrast=0, saturation=0)
    for seed in range(12):
        f, t = aug(tile, tile, np.random.default_rng(seed), frame=True)
        np.testing.assert_array_equal(f, t)
