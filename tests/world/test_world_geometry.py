"""Pixel conventions of both renderers, checked against hand-computed positions."""

from __future__ import annotations

import numpy as np
import pytest

from tests.world._toy import ROOF_RGB, SIZE_M, toy_world
from train.world import DomainGap

CENTRE = (SIZE_M / 2, -SIZE_M / 2)
HIGH_SUN = DomainGap(sun_elevation_deg=90.0)  # no cast shadows, flat roofs at full light


def _red_mask(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 80) & (b < 80)


def test_satellite_places_building_at_expected_pixel():
    # building 10 m east and 10 m north of the tile centre, 10 x 10 m
    world = toy_world(building_en=(CENTRE[0] + 10.0, CENTRE[1] + 10.0))
    tile = world.render_satellite(CENTRE, size_px=128, gsd_m=0.5, gap=HIGH_SUN)
    rows, cols = np.nonzero(_red_mask(tile))
    # centre pixel coordinate: c = (de / gsd) + W/2 - 0.5 = 20 + 64 - 0.5; r = 64 - 0.5 - 20
    assert abs(cols.mean() - 83.5) < 0.6 and abs(rows.mean() - 43.5) < 0.6
    assert 18 <= cols.max() - cols.min() + 1 <= 22  # 10 m at 0.5 m/px
    np.testing.assert_allclose(tile[rows[len(rows) // 2], cols[len(cols) // 2]], ROOF_RGB, atol=3)


@pytest.mark.parametrize(
    ("offset", "expected_col"),
    [((30.0, 0.0), 192), ((0.0, 30.0), 128), ((-30.0, 0.0), 64), ((0.0, -30.0), 0)],
    ids=["east", "north", "west", "south"],
)
def test_panorama_azimuth_convention(offset, expected_col):
    """East at 3W/4, north at W/2, west at W/4, south at the seam (W = 256)."""
    world = toy_world(building_en=(CENTRE[0] + offset[0], CENTRE[1] + offset[1]))
    empty = toy_world(None)
    pano = world.render_panorama(CENTRE, height=64, width=256, gap=HIGH_SUN)
    ref = empty.render_panorama(CENTRE, height=64, width=256, gap=HIGH_SUN)
    changed = np.abs(pano.astype(int) - ref).sum(axis=2)[20]  # a row above the horizon
    cols = np.flatnonzero(changed > 30)
    # circular mean of the changed columns (the south building straddles the seam)
    ang = (cols + 0.5) / 256 * 2 * np.pi
    mean_col = np.angle(np.exp(1j * ang).mean()) % (2 * np.pi) / (2 * np.pi) * 256 - 0.5
    err = (mean_col - (expected_col - 0.5) + 128) % 256 - 128
    assert abs(err) < 1.0
    # a 10 m wide wall at 25 m subtends 2 * atan(5 / 25) = 22.6 deg = 16 columns
    assert 14 <= len(cols) <= 19


def test_panorama_horizon_and_building_height():
    """A 20 m building 25 m away (front wall) tops out at atan(18 / 25) = 35.8 deg elevation."""
    world = toy_world(building_en=(CENTRE[0] + 30.0, CENTRE[1]), wall_h=20.0)
    h = 180
    pano = world.render_panorama(CENTRE, height=h, width=256, gap=HIGH_SUN)
    ref = toy_world(None).render_panorama(CENTRE, height=h, width=256, gap=HIGH_SUN)
    column = np.abs(pano.astype(int) - ref).sum(axis=2)[:, 192]
    top_row = np.flatnonzero(column > 30).min()
    # row r looks at 90 - (r + 0.5) deg; the top edge is between row 53 and 54
    assert top_row in (54, 55)


def test_pinhole_heading_convention():
    world = toy_world(building_en=(CENTRE[0] + 30.0, CENTRE[1]))
    kw = {"heading_deg": 90.0, "fov_deg": 90.0, "height": 64, "width": 64, "gap": HIGH_SUN}
    east = world.render_pinhole(CENTRE, **kw)
    ref = toy_world(None).render_pinhole(CENTRE, **kw)
    west = world.render_pinhole(CENTRE, **{**kw, "heading_deg": 270.0})
    assert np.array_equal(
        west, toy_world(None).render_pinhole(CENTRE, **{**kw, "heading_deg": 270.0})
    )
    wall_e = np.abs(east.astype(int) - ref).sum(axis=2)[20]
    cols = np.flatnonzero(wall_e > 30)
    # the wall spans +-11.3 deg around the optical axis: tan(11.3 deg) * 32 = 6.4 px each side
    assert abs(cols.mean() - 31.5) < 1.0 and 11 <= len(cols) <= 15


def test_time_gap_removes_a_disappearing_building():
    from train.world._scene import DISAPPEARS

    world = toy_world(building_en=(CENTRE[0], CENTRE[1]), change=(0.5, DISAPPEARS))
    before = world.render_satellite(
        CENTRE, 64, 0.5, gap=DomainGap(time_gap=0.3, sun_elevation_deg=90)
    )
    after = world.render_satellite(
        CENTRE, 64, 0.5, gap=DomainGap(time_gap=0.7, sun_elevation_deg=90)
    )
    assert _red_mask(before).sum() == 400  # 20 x 20 cells of a 10 m roof
    assert _red_mask(after).sum() == 0


def test_georef_round_trip_of_rendered_position(small_world):
    rng = np.random.default_rng(0)
    pts = small_world.sample_street_points(5, rng)
    lat, lon = small_world.georef.metres_to_latlon(pts[:, 0], pts[:, 1])
    east, north = small_world.georef.latlon_to_metres(lat, lon)
    np.testing.assert_allclose(np.stack([east, north], 1), pts, atol=1e-6)
    # the tile rendered at the round-tripped position is the same tile
    a = small_world.render_satellite(pts[0], 32, 0.5)
    b = small_world.render_satellite((east[0], north[0]), 32, 0.5)
    np.testing.assert_array_equal(a, b)
    # and the world raster pixel of a position is metres / resolution, row growing south
    x, y = small_world.georef.latlon_to_pixel(lat, lon)
    np.testing.assert_allclose(x, pts[:, 0] / 0.5, atol=1e-6)
    np.testing.assert_allclose(y, -pts[:, 1] / 0.5, atol=1e-6)


def test_off_nadir_roof_leans_away_from_the_satellite():
    """A 20 m roof seen 20 deg off nadir from the south appears 20 * tan(20 deg) = 7.28 m
    (14.6 px at 0.5 m) north of its footprint; the south wall shows below it."""
    world = toy_world(building_en=CENTRE, wall_h=20.0)
    kw = {"size_px": 128, "gsd_m": 0.5}
    nadir = world.render_satellite(CENTRE, gap=HIGH_SUN, **kw)
    oblique = world.render_satellite(
        CENTRE, gap=DomainGap(sun_elevation_deg=90.0, off_nadir_deg=20.0), **kw
    )  # off_nadir_azimuth_deg=0 would be north; use south:
    south = world.render_satellite(
        CENTRE,
        gap=DomainGap(sun_elevation_deg=90.0, off_nadir_deg=20.0, off_nadir_azimuth_deg=180.0),
        **kw,
    )
    r_nadir = np.nonzero(_red_mask(nadir))[0].mean()
    r_south = np.nonzero(_red_mask(south))[0].mean()
    r_north = np.nonzero(_red_mask(oblique))[0].mean()
    assert abs((r_nadir - r_south) - 14.6) < 1.0  # moved up (north), rows grow south
    assert abs((r_north - r_nadir) - 14.6) < 1.0
    # the wall facing the satellite fills the gap between roof and footprint
    cols = slice(60, 68)
    below_roof = south[int(r_south) + 11 : int(r_nadir) + 10, cols]
    assert not (_red_mask(below_roof)).any()
    assert np.abs(below_roof.astype(int) - nadir[0, 0]).sum(axis=2).min() > 30  # not grass


def test_cloud_shadows_darken_part_of_the_tile_only():
    world = toy_world(None)
    clear = world.render_satellite(CENTRE, 64, 0.5, gap=HIGH_SUN)
    cloudy = world.render_satellite(
        CENTRE, 64, 0.5, gap=DomainGap(sun_elevation_deg=90.0, cloud_cover=0.4),
        rng=np.random.default_rng(0),
    )  # fmt: skip
    darker = cloudy.astype(int).sum(axis=2) < clear.astype(int).sum(axis=2) - 30
    assert 0.2 < darker.mean() < 0.6
