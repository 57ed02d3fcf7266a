"""World.render_drone: camera geometry against the satellite tile and a hand-built toy town."""

from __future__ import annotations

import numpy as np
import pytest

from tests.world._toy import ROOF_RGB, toy_world
from train.world import DomainGap, OutsideWorldError

CENTRE = (150.0, -150.0)
HIGH_SUN = DomainGap(sun_elevation_deg=90.0, visibility_m=3000.0)  # no cast shadows


def _grey(img: np.ndarray) -> np.ndarray:
    g = img.astype(np.float64).mean(axis=-1).ravel()
    return (g - g.mean()) / (g.std() + 1e-9)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(_grey(a) * _grey(b)))


def _red(img: np.ndarray) -> np.ndarray:
    """Pixels showing the toy building's red roof."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 90) & (b < 90)


def test_shape_dtype_and_defaults(small_world):
    img = small_world.render_drone(CENTRE, 80.0, 20.0, 45.0, height=40, width=56)
    assert img.shape == (40, 56, 3) and img.dtype == np.uint8
    assert img.std() > 5  # not a blank frame


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(altitude_m=10.0), "altitude_m"),
        (dict(altitude_m=500.0), "altitude_m"),
        (dict(pitch_deg=-5.0), "pitch_deg"),
        (dict(pitch_deg=75.0), "pitch_deg"),
        (dict(fov_deg=0.0), "fov_deg"),
        (dict(height=1), "2 x 2"),
    ],
)
def test_argument_validation(small_world, kw, match):
    args = dict(altitude_m=100.0, pitch_deg=0.0, heading_deg=0.0) | kw
    with pytest.raises(ValueError, match=match):
        small_world.render_drone(CENTRE, **args)


def test_outside_world_is_refused(small_world):
    with pytest.raises(OutsideWorldError):
        small_world.render_drone((-10.0, -150.0), 100.0, 0.0, 0.0)


def test_nadir_frame_is_the_satellite_tile_of_its_footprint(small_world):
    alt, px = 120.0, 64
    # the camera is altitude_m above the terrain: the footprint is 2 alt tan(fov / 2) wide
    gsd = 2 * alt * np.tan(np.radians(30.0)) / px
    drone = small_world.render_drone(CENTRE, alt, 0.0, 0.0, height=px, width=px, gap=HIGH_SUN)
    same = small_world.render_satellite(CENTRE, px, gsd, gap=HIGH_SUN)
    assert _corr(drone, same) > 0.6
    others = [(100.0, -100.0), (200.0, -200.0), (100.0, -200.0), (200.0, -100.0)]
    for e, n in others:
        tile = small_world.render_satellite((e, n), px, gsd, gap=HIGH_SUN)
        assert _corr(drone, tile) < _corr(drone, same) - 0.3
    # a mirrored or turned tile of the same place does not match either: north is up, east right
    assert _corr(drone, same[:, ::-1]) < _corr(drone, same) - 0.3
    assert _corr(drone, np.rot90(same)) < _corr(drone, same) - 0.3


def test_heading_turns_the_nadir_image(small_world):
    kw = dict(height=48, width=48, gap=HIGH_SUN)
    north = small_world.render_drone(CENTRE, 100.0, 0.0, 0.0, **kw).astype(int)
    east = small_world.render_drone(CENTRE, 100.0, 0.0, 90.0, **kw).astype(int)
    # heading east: east is up, so the north-up image turned counter-clockwise
    assert np.abs(east - np.rot90(north, 1)).mean() < 2.0
    assert np.abs(east - np.rot90(north, -1)).mean() > 10.0


def _roof_area(img: np.ndarray) -> float:
    """Roof pixels, counting mixed edge pixels by their share of roof colour."""
    red = img[..., 0].astype(float) - img[..., 1]
    grass, roof = np.median(red), float(ROOF_RGB[0] - ROOF_RGB[1])  # the frame is mostly grass
    return float(np.clip((red - grass) / (roof - grass), 0.0, 1.0).sum())


def test_higher_altitude_covers_more_ground():
    world = toy_world(building_en=(150.0, -150.0), half_m=(8.0, 8.0), wall_h=20.0)
    kw = dict(height=64, width=64, gap=HIGH_SUN)
    low_img = world.render_drone(CENTRE, 60.0, 0.0, 0.0, **kw)
    high = _roof_area(world.render_drone(CENTRE, 200.0, 0.0, 0.0, **kw))
    # the 16 m roof is 40 m vs 180 m away: about (180 / 40)^2 = 20 times fewer pixels
    assert 12 < _roof_area(low_img) / high < 30
    assert abs(_roof_area(low_img) - (16 / (2 * 40 * np.tan(np.radians(30))) * 64) ** 2) < 60
    rows, cols = np.nonzero(_red(low_img))
    assert abs(rows.mean() - 31.5) < 1.5 and abs(cols.mean() - 31.5) < 1.5


@pytest.mark.parametrize("heading", [0.0, 120.0])
def test_oblique_camera_aims_at_its_target(heading):
    world = toy_world(building_en=(150.0, -150.0), half_m=(5.0, 5.0), wall_h=20.0)
    alt, pitch = 100.0, 35.0
    back = (alt - 20.0) * np.tan(np.radians(pitch))  # the roof is 20 m up
    h = np.radians(heading)
    pos = (150.0 - back * np.sin(h), -150.0 - back * np.cos(h))
    img = world.render_drone(pos, alt, pitch, heading, height=64, width=64, gap=HIGH_SUN)
    rows, cols = np.nonzero(_red(img))
    assert rows.size > 20
    assert abs(rows.mean() - 31.5) < 3 and abs(cols.mean() - 31.5) < 3
    # right above the building and pitched 20 degrees forward, it is below the image centre
    above = world.render_drone(
        (150.0, -150.0), alt, 20.0, heading, height=64, width=64, gap=HIGH_SUN
    )
    rows, cols = np.nonzero(_red(above))
    assert rows.size > 0 and rows.mean() > 42 and abs(cols.mean() - 31.5) < 3
    # turned away, it does not see it at all
    away = world.render_drone(pos, alt, pitch, heading + 180.0, height=64, width=64, gap=HIGH_SUN)
    assert not _red(away).any()


def test_oblique_view_shows_walls():
    world = toy_world(building_en=(150.0, -150.0), half_m=(5.0, 5.0), wall_h=20.0)
    alt, pitch = 60.0, 45.0
    pos = (150.0, -150.0 - (alt - 10.0))  # south of it, looking north at the wall's middle
    img = world.render_drone(pos, alt, pitch, 0.0, height=64, width=64, gap=HIGH_SUN)
    chroma = np.ptp(img.astype(int), axis=-1)
    facade = chroma < 12  # the grey facade and its windows; grass is green, the roof red
    assert facade.sum() > 60
    # the south wall is nearer the camera than the roof: below it in the image
    assert np.nonzero(facade)[0].mean() > np.nonzero(_red(img))[0].mean() + 3
    nadir = world.render_drone((150.0, -150.0), alt, 0.0, 0.0, height=64, width=64, gap=HIGH_SUN)
    assert np.ptp(nadir.astype(int), axis=-1).min() >= 12  # straight down: no wall in sight


def test_deterministic_in_rng_and_gap(small_world):
    gap = DomainGap.sample_drone(np.random.default_rng(4))
    kw = dict(height=32, width=32, gap=gap)
    a = small_world.render_drone(CENTRE, 90.0, 30.0, 200.0, rng=np.random.default_rng(1), **kw)
    b = small_world.render_drone(CENTRE, 90.0, 30.0, 200.0, rng=np.random.default_rng(1), **kw)
    c = small_world.render_drone(CENTRE, 90.0, 30.0, 200.0, rng=np.random.default_rng(2), **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) or gap.noise_sigma == 0.0


def test_sample_drone_ranges():
    rng = np.random.default_rng(0)
    gaps = [DomainGap.sample_drone(rng) for _ in range(50)]
    assert all(g.off_nadir_deg == 0.0 and g.cloud_cover == 0.0 for g in gaps)
    blur = np.array([g.motion_blur_px for g in gaps])
    assert blur.min() >= 0.0 and blur.max() <= 3.0 and blur.std() > 0.3
    assert np.median([g.visibility_m for g in gaps]) > 1500.0  # thin aerial haze
    assert DomainGap.sample_drone(rng, 0.0).motion_blur_px == 0.0
