"""UTM on the WGS84 ellipsoid (train.datasets.utm) against published values and an
independent meridian-arc quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest

from train.datasets.utm import UTMError, UTMZone, latlon_to_utm, utm_to_latlon, utm_zone


# --- UTM -------------------------------------------------------------------------------------
def meridian_arc_wgs84(lat_deg: float) -> float:
    """Meridian arc from the equator, by Gauss-Legendre quadrature of the radius of curvature
    M = a(1-e^2)/(1-e^2 sin^2 phi)^1.5 (independent of the Krüger series under test)."""
    a, f = 6_378_137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    x, w = np.polynomial.legendre.leggauss(64)
    phi = (x + 1) / 2 * math.radians(lat_deg)
    m = a * (1 - e2) / (1 - e2 * np.sin(phi) ** 2) ** 1.5
    return float((w * m).sum() * math.radians(lat_deg) / 2)


@pytest.mark.parametrize(
    ("lat", "lon", "zone", "easting", "northing", "tol"),
    [
        # GeographicLib GeoConvert manual: "33.3 44.4" -> "38n 444140.54 3684706.36" (1 cm)
        (33.3, 44.4, "38n", 444_140.54, 3_684_706.36, 0.006),
        # On a central meridian at the equator: the false origin itself
        (0.0, 3.0, "31n", 500_000.0, 0.0, 1e-6),
        # The following were computed with PROJ 9 (pyproj 3.7, EPSG:326xx/327xx), an
        # independent implementation: Canberra (CVACT), New York, Bergen (32V), Svalbard (33X)
        (-35.2809, 149.13, "55s", 693_714.4345, 6_093_725.1845, 0.001),
        (40.748817, -73.985428, "18n", 585_650.8369, 4_511_369.0029, 0.001),
        (60.39, 5.32, "32n", 297_230.2202, 6_700_510.1753, 0.001),
        (78.22, 15.65, "33n", 514_813.5273, 8_683_004.1533, 0.001),
    ],
)
def test_utm_known_points(lat, lon, zone, easting, northing, tol):
    e, n, z = latlon_to_utm(lat, lon)
    assert str(z) == zone
    assert e == pytest.approx(easting, abs=tol)
    assert n == pytest.approx(northing, abs=tol)
    back = utm_to_latlon(easting, northing, zone)
    # 1 mm is ~1e-8 degrees
    assert back == pytest.approx((lat, lon), abs=tol / 111_000 + 1e-11)


@pytest.mark.parametrize("lat", [10.0, 45.0, 70.0, -45.0])
def test_utm_northing_on_central_meridian_is_scaled_meridian_arc(lat):
    _, n, z = latlon_to_utm(lat, 147.0)  # 147 E is zone 55's central meridian
    expected = 0.9996 * meridian_arc_wgs84(abs(lat))
    if lat < 0:
        expected = 10_000_000.0 - expected
    assert n == pytest.approx(expected, abs=1e-4)
    assert z.number == 55 and z.central_meridian == 147.0


def test_utm_round_trip_is_sub_millimetre():
    rng = np.random.default_rng(0)
    for number, north in [(1, True), (31, False), (55, False), (60, True)]:
        zone = UTMZone(number, north)
        lat = rng.uniform(0, 84, 500) if north else rng.uniform(-80, 0, 500)
        lon = zone.central_meridian + rng.uniform(-4, 4, 500)  # a bit beyond the 6 deg zone
        e, n, _ = latlon_to_utm(lat, lon, zone)
        lat2, lon2 = utm_to_latlon(e, n, zone)
        np.testing.assert_allclose(lat2, lat, atol=1e-10)
        np.testing.assert_allclose((lon2 - lon + 180) % 360 - 180, 0, atol=1e-10)
        e2, n2, _ = latlon_to_utm(lat2, lon2, zone)
        np.testing.assert_allclose((e2, n2), (e, n), atol=1e-4)


def test_utm_zone_rules_and_notation():
    assert utm_zone(0.0, 179.9) == UTMZone(60, True)
    assert utm_zone(0.0, -180.0) == UTMZone(1, True)
    assert utm_zone(-1e-9, 0.5).north is False
    assert utm_zone(61.0, 4.0).number == 32  # Norway: 32V widened west
    assert utm_zone(61.0, 2.0).number == 31
    assert [utm_zone(80.0, lon).number for lon in (5, 10, 25, 40)] == [31, 33, 35, 37]
    assert UTMZone.parse("55S") == UTMZone(55, False) and str(UTMZone(38, True)) == "38n"
    assert UTMZone(55, False).epsg == 32755 and UTMZone(38, True).epsg == 32638


def test_forced_zone_projects_across_boundary():
    # 5.9 E belongs to zone 31 but can be expressed in zone 32: west of its meridian (9 E)
    e, _, z = latlon_to_utm(45.0, 5.9, zone="32n")
    assert z == UTMZone(32, True) and e < 500_000.0
    assert utm_to_latlon(*latlon_to_utm(45.0, 5.9, zone="32n")[:2], z) == pytest.approx(
        (45.0, 5.9), abs=1e-10
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: latlon_to_utm([10.0, 10.0], [5.0, 7.0]), "span UTM zones"),
        (lambda: latlon_to_utm([1.0, -1.0], [5.0, 5.0]), "both hemispheres"),
        (lambda: latlon_to_utm(85.0, 0.0), "UPS"),
        (lambda: utm_zone(-81.0, 0.0), "UPS"),
        (lambda: latlon_to_utm(0.0, 100.0, zone="31n"), ">= 90 degrees"),
        (lambda: UTMZone(61, True), "1..60"),
        (lambda: UTMZone.parse("55x"), "'38n'"),
        (lambda: latlon_to_utm(float("nan"), 0.0), "finite"),
    ],
)
def test_utm_errors(call, match):
    with pytest.raises(UTMError, match=match):
        call()
