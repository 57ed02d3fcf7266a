"""Determinism, styles, street points, the DomainGap contract and input errors."""

from __future__ import annotations

import numpy as np
import pytest

from train.world import (
    TOWN_STYLES,
    DomainGap,
    DomainGapError,
    OutsideWorldError,
    UnknownStyleError,
    World,
)
from train.world._scene import MARKING, ROAD


def test_same_seed_identical_different_seed_differs():
    a = World.generate(11, "rural", size_m=200.0)
    b = World.generate(11, "rural", size_m=200.0)
    c = World.generate(12, "rural", size_m=200.0)
    for name in ("terrain", "base_h", "base_rgb", "obj_id", "obj_h", "obj_rgb"):
        np.testing.assert_array_equal(getattr(a.scene, name), getattr(b.scene, name))
    assert not np.array_equal(a.scene.base_rgb, c.scene.base_rgb)
    p = (100.0, -100.0)
    np.testing.assert_array_equal(a.render_panorama(p, 32, 128), b.render_panorama(p, 32, 128))
    gap = DomainGap(noise_sigma=4.0)
    np.testing.assert_array_equal(
        a.render_satellite(p, 32, gap=gap, rng=np.random.default_rng(1)),
        b.render_satellite(p, 32, gap=gap, rng=np.random.default_rng(1)),
    )


@pytest.mark.parametrize("style", TOWN_STYLES)
def test_every_style_builds_a_town(style):
    world = World.generate(0, style, size_m=400.0)
    s = world.scene
    road_share = np.isin(s.base_mat, (ROAD, MARKING)).mean()
    assert 0.01 < road_share < 0.4
    assert (s.obj_id > 0).any() and (s.base_h > 2.0).any()  # objects and trees
    assert world.extent_m == (0.0, -400.0, 400.0, 0.0)


def test_styles_look_different():
    tops = {st: World.generate(1, st, size_m=300.0).scene for st in ("downtown", "rural")}
    built = {st: (s.obj_id > 0).mean() for st, s in tops.items()}
    tall = {st: float(np.percentile(s.obj_h[s.obj_id > 0], 90)) for st, s in tops.items()}
    assert built["downtown"] > 3 * built["rural"]
    assert tall["downtown"] > 2 * tall["rural"]


def test_street_points_are_on_free_road_inside_margin(small_world):
    pts = small_world.sample_street_points(40, np.random.default_rng(3), margin_m=60.0)
    assert pts.shape == (40, 2) and pts.dtype == np.float64
    assert (pts[:, 0] >= 60).all() and (pts[:, 0] <= 240).all()
    assert (pts[:, 1] <= -60).all() and (pts[:, 1] >= -240).all()
    s = small_world.scene
    r, c = (-pts[:, 1] / s.res_m).astype(int), (pts[:, 0] / s.res_m).astype(int)
    assert np.isin(s.base_mat[r, c], (ROAD, MARKING)).mean() > 0.95
    assert (s.obj_id[r, c] == 0).all()


def test_domain_gap_sample_and_validation():
    g1 = DomainGap.sample(np.random.default_rng(5), strength=1.0)
    g2 = DomainGap.sample(np.random.default_rng(5), strength=1.0)
    assert g1 == g2 and g1 != DomainGap()
    assert DomainGap.sample(np.random.default_rng(5), strength=0.0).noise_sigma == 0.0
    with pytest.raises(DomainGapError, match="season"):
        DomainGap(season=1.5)
    with pytest.raises(DomainGapError, match="colour_shift"):
        DomainGap(colour_shift=(1.0, 0.0, 1.0))
    with pytest.raises(DomainGapError, match="off_nadir_deg"):
        DomainGap(off_nadir_deg=60.0)
    with pytest.raises(DomainGapError, match="cloud_cover"):
        DomainGap(cloud_cover=-0.1)
    # old east becomes new north: an azimuth measured from north drops by 90 degrees
    turned = DomainGap(sun_azimuth_deg=30.0, off_nadir_azimuth_deg=100.0).rotated90(1)
    assert (turned.sun_azimuth_deg, turned.off_nadir_azimuth_deg) == (300.0, 10.0)
    mirrored = DomainGap(sun_azimuth_deg=30.0, off_nadir_azimuth_deg=100.0).flipped()
    assert (mirrored.sun_azimuth_deg, mirrored.off_nadir_azimuth_deg) == (330.0, 260.0)
    # per-capture material tones are reproducible from the seed and differ between seeds
    a, b = DomainGap(material_variation=1.0, variation_seed=1), DomainGap(material_variation=1.0)
    np.testing.assert_array_equal(a.material_gains(), a.material_gains())
    assert not np.allclose(a.material_gains(), b.material_gains())
    assert np.all(DomainGap().material_gains() == 1.0)


def test_gap_changes_the_views(small_world):
    p = small_world.sample_street_points(1, np.random.default_rng(0))[0]
    plain = small_world.render_satellite(p, 64)
    autumn = small_world.render_satellite(p, 64, gap=DomainGap(season=1.0))
    p_, a_ = plain.astype(int), autumn.astype(int)
    green = p_[..., 1] > p_[..., 0] + 15  # vegetation in the summer tile
    assert green.mean() > 0.05
    # autumn turns it yellow-brown: green no longer dominates red there
    assert (a_[..., 1] - a_[..., 0])[green].mean() < (p_[..., 1] - p_[..., 0])[green].mean() - 15


def test_errors_are_typed_and_helpful(small_world):
    with pytest.raises(UnknownStyleError, match="suburb"):
        World.generate(0, "suburbs", size_m=200.0)
    with pytest.raises(OutsideWorldError, match="outside the world"):
        small_world.render_panorama((1000.0, 10.0))
    with pytest.raises(ValueError, match="fov_deg"):
        small_world.render_pinhole((150.0, -150.0), 0.0, fov_deg=190.0)
