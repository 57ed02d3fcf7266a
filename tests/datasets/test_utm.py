"""UTM conversion against a published value and independent geodesy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from train.datasets._utm import latlon_to_utm, utm_to_latlon, utm_zone


def test_geographiclib_example():
    # GeoConvert(1) man page: "33.3 44.4" is the same point as "38n 444140.54 3684706.36"
    e, n = latlon_to_utm(33.3, 44.4, zone=38, south=False)
    assert (float(e), float(n)) == pytest.approx((444140.54, 3684706.36), abs=0.006)
    assert utm_zone(44.4) == 38 and utm_zone(149.13) == 55


def test_central_meridian_is_scaled_meridian_arc():
    # On the central meridian, northing = 0.9996 * meridian arc; integrate the WGS84
    # meridian radius of curvature numerically instead of using the series.
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    arc, _ = quad(lambda p: a * (1 - e2) / (1 - e2 * np.sin(p) ** 2) ** 1.5, 0, np.radians(35.3))
    e, n = latlon_to_utm(-35.3, 147.0, zone=55, south=True)
    assert float(e) == pytest.approx(500000.0, abs=1e-6)
    assert float(n) == pytest.approx(10_000_000 - 0.9996 * arc, abs=1e-4)


def test_round_trip_over_a_zone():
    lat = np.linspace(-60, 60, 25)
    lon = np.linspace(144.01, 149.99, 25)
    e, n = latlon_to_utm(lat, lon, zone=55, south=True)
    lat2, lon2 = utm_to_latlon(e, n, zone=55, south=True)
    np.testing.assert_allclose(lat2, lat, atol=1e-10)
    np.testing.assert_allclose(lon2, lon, atol=1e-10)
