"""Geodesy on the sphere: GeoReference round trips, haversine on known arcs, offsets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from d4g_edge.geo import EARTH_RADIUS_M, GeoReference, haversine_m

R = 6_371_008.8  # IUGG mean radius, the sphere the module documents


# --- haversine -------------------------------------------------------------------------------
def test_one_degree_of_latitude():
    assert haversine_m(10.0, 20.0, 11.0, 20.0) == pytest.approx(111_195.08, abs=0.01)
    assert EARTH_RADIUS_M == R


@pytest.mark.parametrize(
    ("a", "b", "arc"),
    [
        ((0, 0), (0, 90), math.pi / 2),  # quarter of the equator
        ((0, 0), (90, 123), math.pi / 2),  # equator to pole, any longitude
        ((45, 0), (45, 180), math.pi / 2),  # over the pole: 45 + 45 degrees
        ((0, 0), (0, 180), math.pi),  # antipodes
        ((-30, 10), (-30, 10), 0.0),
    ],
)
def test_haversine_known_arcs(a, b, arc):
    assert haversine_m(*a, *b) == pytest.approx(arc * R, abs=1e-6)


def test_haversine_broadcasts():
    d = haversine_m(np.zeros(3), np.zeros(3), np.array([1.0, 2.0, 3.0]), 0.0)
    np.testing.assert_allclose(d, np.radians([1.0, 2.0, 3.0]) * R)


# --- GeoReference ----------------------------------------------------------------------------
def test_georeference_round_trips():
    g = GeoReference(origin_lat=40.0, origin_lon=-88.0, metres_per_pixel=0.5)
    east, north = np.array([0.0, 123.4, -50.0]), np.array([0.0, -600.0, 250.5])
    lat, lon = g.metres_to_latlon(east, north)
    np.testing.assert_allclose(g.latlon_to_metres(lat, lon), (east, north), atol=1e-9)
    x, y = g.metres_to_pixel(east, north)
    np.testing.assert_allclose(g.pixel_to_metres(x, y), (east, north), atol=1e-12)
    np.testing.assert_allclose(g.latlon_to_pixel(*g.pixel_to_latlon(x, y)), (x, y), atol=1e-8)


def test_georeference_axes_and_scale():
    g = GeoReference(origin_lat=40.0, origin_lon=-88.0, metres_per_pixel=0.5)
    # y grows south: 10 m south of the origin is 20 pixels down, same column
    np.testing.assert_allclose(g.metres_to_pixel(0.0, -10.0), (0.0, 20.0))
    assert g.pixel_to_latlon(0, 0) == pytest.approx((40.0, -88.0))
    # local metres agree with great-circle distance to well under a centimetre at 100 m
    lat, lon = g.metres_to_latlon(100.0, 0.0)
    assert haversine_m(40.0, -88.0, lat, lon) == pytest.approx(100.0, abs=0.01)
    lat, lon = g.metres_to_latlon(0.0, 100.0)
    assert lat > 40.0 and lon == pytest.approx(-88.0)


@pytest.mark.parametrize(
    "kwargs", [{"origin_lat": 89.0}, {"origin_lon": 200.0}, {"metres_per_pixel": 0.0}]
)
def test_georeference_rejects_bad_values(kwargs):
    args = {"origin_lat": 0.0, "origin_lon": 0.0} | kwargs
    with pytest.raises(ValueError, match="must be"):
        GeoReference(**args)


def test_offset_latlon_moves_by_the_requested_metres():
    from d4g_edge.geo import offset_latlon

    lat, lon = offset_latlon([40.0, -33.9], [-88.0, 151.2], [30.0, -12.0], [-40.0, 5.0])
    d = haversine_m(np.array([40.0, -33.9]), np.array([-88.0, 151.2]), lat, lon)
    np.testing.assert_allclose(d, [50.0, 13.0], rtol=1e-5)  # 3-4-5 and 5-12-13 triangles
    assert lat[0] < 40.0 and lon[0] > -88.0 and lat[1] > -33.9 and lon[1] < 151.2
