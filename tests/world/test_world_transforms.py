"""The augmentation geometry, proven with the renderer (see .notes/WORLD_API.md).

Rotating the world so that old east is new north must equal np.rot90(tile, 1) for the
satellite and np.roll(pano, -W/4) for the panorama; mirroring east <-> west must equal
np.fliplr for both. The wrong direction must fail by a wide margin, or the test proves nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from train.world import DomainGap

GAP = DomainGap(
    sun_azimuth_deg=120.0, sun_elevation_deg=40.0, off_nadir_deg=15.0, off_nadir_azimuth_deg=200.0
)
H, W = 64, 256


def _rotate_point(p, k: int, size_m: float) -> np.ndarray:
    """Counter-clockwise quarter turns about the world centre (hand-derived: (x, y) -> (-y, x))."""
    x, y = p[0] - size_m / 2, p[1] + size_m / 2
    for _ in range(k % 4):
        x, y = -y, x
    return np.array([x + size_m / 2, y - size_m / 2])


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def points(small_world):
    return small_world.sample_street_points(2, np.random.default_rng(7), margin_m=50.0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_matches_rot90_and_roll(small_world, points, k):
    turned = small_world.rotated90(k)
    size = small_world.scene.size_m
    for p in points:
        q = _rotate_point(p, k, size)
        tile = small_world.render_satellite(p, 96, 0.4, gap=GAP)
        tile_r = turned.render_satellite(q, 96, 0.4, gap=GAP.rotated90(k))
        assert _mad(np.rot90(tile, k), tile_r) < 1.0
        pano = small_world.render_panorama(p, H, W, gap=GAP)
        pano_r = turned.render_panorama(q, H, W, gap=GAP.rotated90(k))
        assert _mad(np.roll(pano, -k * W // 4, axis=1), pano_r) < 0.5
        if k != 2:  # the wrong direction is far off (for k=2 both directions coincide)
            assert _mad(np.rot90(tile, -k), tile_r) > 8.0
            assert _mad(np.roll(pano, k * W // 4, axis=1), pano_r) > 8.0


def test_flip_matches_fliplr(small_world, points):
    mirrored = small_world.flipped()
    size = small_world.scene.size_m
    for p in points:
        q = np.array([size - p[0], p[1]])
        tile = small_world.render_satellite(p, 96, 0.4, gap=GAP)
        tile_f = mirrored.render_satellite(q, 96, 0.4, gap=GAP.flipped())
        assert _mad(np.fliplr(tile), tile_f) < 1.0
        assert _mad(tile, tile_f) > 8.0
        pano = small_world.render_panorama(p, H, W, gap=GAP)
        pano_f = mirrored.render_panorama(q, H, W, gap=GAP.flipped())
        assert _mad(np.fliplr(pano), pano_f) < 0.5
        assert _mad(pano, pano_f) > 8.0


def test_rotating_four_times_is_identity(small_world):
    back = small_world.rotated90(1).rotated90(3)
    for name in ("terrain", "base_rgb", "obj_id", "obj_h"):
        np.testing.assert_array_equal(getattr(back.scene, name), getattr(small_world.scene, name))
    np.testing.assert_allclose(
        back.scene.objects.centre, small_world.scene.objects.centre, atol=1e-9
    )
