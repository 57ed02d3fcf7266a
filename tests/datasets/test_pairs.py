"""PairDataset/ViewDataset/PairAugment: geometric consistency, caching, normalisation.

The pair is a compass: tile pixels and panorama columns are coloured by the compass
quadrant they look at (N red, E green, S blue, W yellow), computed here from the world's
documented conventions. Whatever flip/rotation the augmentation draws, the panorama column
looking at azimuth ``a`` must keep the colour of the tile in direction ``a``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from train.datasets import CrossViewSplit, PairAugment, PairDataset, ViewDataset

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)  # N E S W
S, H, W = 16, 8, 32


def quadrant(azimuth_deg):
    return (np.floor(((np.asarray(azimuth_deg) + 45.0) % 360.0) / 90.0)).astype(int)


def compass_pair():
    r, c = np.mgrid[0:S, 0:S]
    sat_az = np.degrees(np.arctan2(c + 0.5 - S / 2, S / 2 - (r + 0.5)))  # clockwise from north
    pano_az = (np.arange(W) + 0.5) * 360.0 / W - 180.0  # column centres (WORLD_API.md)
    sat = COLOURS[quadrant(sat_az)]
    pano = np.broadcast_to(COLOURS[quadrant(pano_az)][None], (H, W, 3)).copy()
    return pano, sat


def check_consistent(pano: np.ndarray, sat: np.ndarray) -> None:
    for az in (0.0, 90.0, 180.0, 270.0):  # quadrant centres, far from the boundaries
        col = int(((az + 180.0) % 360.0) * W / 360.0)
        rad = np.radians(az)
        row = int(S / 2 - np.cos(rad) * S / 4)
        cl = int(S / 2 + np.sin(rad) * S / 4)
        assert (pano[H // 2, col] == sat[row, cl]).all(), f"azimuth {az}"


@pytest.fixture
def compass_split(tmp_path):
    pano, sat = compass_pair()
    Image.fromarray(pano).save(tmp_path / "g.png")
    Image.fromarray(sat).save(tmp_path / "s.png")
    return CrossViewSplit(
        dataset="compass",
        split="train",
        root=tmp_path,
        query_paths=(tmp_path / "g.png",),
        reference_paths=(tmp_path / "s.png",),
        reference_ids=np.array([42]),
        query_ids=np.array([42]),
        positive_index=np.array([0]),
    )


def as_uint8(t: torch.Tensor) -> np.ndarray:
    return np.round(t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def test_compass_fixture_is_consistent_and_sensitive():
    pano, sat = compass_pair()
    check_consistent(pano, sat)
    with pytest.raises(AssertionError):  # rolling the wrong way breaks the relation
        check_consistent(np.roll(pano, W // 4, axis=1), np.rot90(sat, 1))
    with pytest.raises(AssertionError):  # flipping one view only breaks it
        check_consistent(pano, sat[:, ::-1])


def test_pair_dataset_output_stays_consistent(compass_split):
    aug = PairAugment(flip_p=0.5, rotate_p=1.0, brightness=0, contrast=0, saturation=0)
    ds = PairDataset(compass_split, S, (H, W), aug, mean=(0, 0, 0), std=(1, 1, 1))
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        ground, sat, ref_id = ds[0]
        assert ground.shape == (3, H, W) and sat.shape == (3, S, S) and int(ref_id) == 42
        g, s = as_uint8(ground), as_uint8(sat)
        check_consistent(g, s)
        seen.add(s.tobytes())
    assert len(seen) >= 6  # rotations and flips really happened (8 possible outcomes)


def test_augmentation_is_reproducible_with_torch_seed(compass_split):
    ds = PairDataset(compass_split, S, (H, W), PairAugment(), mean=(0, 0, 0), std=(1, 1, 1))
    torch.manual_seed(3)
    a = [ds[0][1] for _ in range(5)]
    torch.manual_seed(3)
    b = [ds[0][1] for _ in range(5)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_photometric_jitter_is_bounded_and_per_view():
    aug = PairAugment(flip_p=0, rotate_p=0, brightness=0.3, contrast=0.3, saturation=0.3)
    grey = np.full((4, 4, 3), 128, np.uint8)
    outs = [aug(grey, grey, np.random.default_rng(i)) for i in range(10)]
    for x in (v for pair in outs for v in pair):
        assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    # a uniform grey stays grey; only brightness moves it, within 128/255 * [0.7, 1.3]
    values = np.array([[g.mean(), s.mean()] for g, s in outs])
    assert values.min() >= 128 / 255 * 0.7 - 1e-6 and values.max() <= 128 / 255 * 1.3 + 1e-6
    assert np.any(np.abs(values[:, 0] - values[:, 1]) > 1e-3)  # views drawn independently


def test_augment_rejects_bad_settings():
    with pytest.raises(ValueError, match="flip_p"):
        PairAugment(flip_p=1.5)
    with pytest.raises(ValueError, match="multiple of 4"):
        PairAugment(flip_p=0, rotate_p=1.0)(
            np.zeros((2, 6, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.random.default_rng(0)
        )


def test_cache_survives_file_removal_after_preload(compass_split):
    ds = PairDataset(compass_split, 8, (4, 16), None, mean=(0, 0, 0), std=(1, 1, 1)).preload(
        threads=1
    )
    before = ds[0]
    for p in (*compass_split.query_paths, *compass_split.reference_paths):
        p.unlink()
    after = ds[0]
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    assert after[0].shape == (3, 4, 16) and after[1].shape == (3, 8, 8)
    no_cache = PairDataset(compass_split, 8, (4, 16), cache=False)
    with pytest.raises(FileNotFoundError):
        no_cache[0]


def test_view_dataset_normalizes(tmp_path):
    Image.fromarray(np.full((4, 6, 3), (51, 102, 204), np.uint8)).save(tmp_path / "a.png")
    ds = ViewDataset([tmp_path / "a.png"], (4, 6), mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    x, idx = ds[0]
    assert idx == 0 and x.shape == (3, 4, 6) and len(ds) == 1
    # (51/255 - 0.1) / 0.5 = 0.2, (102/255 - 0.2) / 0.5 = 0.4, (204/255 - 0.3) / 0.5 = 1.0
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [0.2, 0.4, 1.0], atol=1e-6)
