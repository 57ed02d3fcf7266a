"""TileTable.within reads only a latitude band and longitude window: it must return exactly
the rows a haversine over every row returns, anywhere on the globe."""

import numpy as np
import pytest

from d4g_edge.geo import haversine_m
from d4g_edge.tiletable import TileTable


def brute(t: TileTable, lat, lon, r) -> np.ndarray:
    return np.flatnonzero(haversine_m(lat, lon, t.lat, t.lon) <= r)


def table(lat, lon) -> TileTable:
    n = len(lat)
    return TileTable.from_rows(np.arange(n), lat, lon, np.full(n, 50.0))


@pytest.mark.parametrize(
    "centre",
    [
        (41.9, -87.6),
        (0.0, 0.0),
        (-33.9, 151.2),
        (10.0, 179.99),
        (-5.0, -179.995),
        (89.99, 20.0),
        (-89.95, -100.0),
        (70.0, 0.0),
    ],
)
@pytest.mark.parametrize("radius", [0.0, 30.0, 1_000.0, 50_000.0, 3_000_000.0])
def test_same_rows_as_a_full_scan(centre, radius):
    rng = np.random.default_rng(abs(hash((centre, radius))) % 2**32)
    lat0, lon0 = centre
    # a dense cluster around the centre (the map) plus points all over the globe
    lat = np.clip(lat0 + rng.normal(0, 0.05, 4_000), -90, 90)
    lon = (lon0 + rng.normal(0, 0.05, 4_000) + 180) % 360 - 180
    lat = np.r_[lat, rng.uniform(-90, 90, 2_000), lat0]
    lon = np.r_[lon, rng.uniform(-180, 180, 2_000), lon0]
    t = table(lat, lon)
    for qlat, qlon in [(lat0, lon0), (lat[7], lon[7]), (np.clip(lat0 + 0.01, -90, 90), lon0)]:
        got = t.within(qlat, qlon, radius)
        np.testing.assert_array_equal(got, brute(t, qlat, qlon, radius))


def test_rows_across_the_antimeridian():
    # rows just inside r metres east (across the antimeridian) and west of a point next to it
    lat0, lon0, r = 12.0, 179.999, 500.0
    dlon = np.degrees(0.999 * r / (6_371_008.8 * np.cos(np.radians(lat0))))
    lon = np.array([lon0 + dlon - 360.0, lon0 - dlon, lon0 + 2 * dlon - 360.0, lon0])
    t = table(np.full(4, lat0), lon)
    got = t.within(lat0, lon0, r)
    np.testing.assert_array_equal(got, brute(t, lat0, lon0, r))
    assert 0 in got and 3 in got and 2 not in got  # the wrapped neighbour is found


def test_result_is_ascending_like_before():
    rng = np.random.default_rng(3)
    t = table(rng.uniform(41.0, 41.1, 5_000)[::-1].copy(), rng.uniform(-87.1, -87.0, 5_000))
    got = t.within(41.05, -87.05, 2_000.0)
    assert got.size > 100 and np.all(np.diff(got) > 0)
