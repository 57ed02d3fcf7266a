"""UTM on the WGS84 ellipsoid: WGS84 lat/lon <-> UTM metres in a zone (numpy only).

Training-side geodesy: only the CVACT layout (which ships UTM coordinates) and its synthetic
writer use it, so it does not ship in the device SDK (the SDK's spherical geodesy is
:mod:`d4g_edge.geo`).

Usage::

    from train.datasets.utm import UTMZone, latlon_to_utm, utm_to_latlon
    easting, northing, zone = latlon_to_utm(lat, lon)        # zone picked from the points
    lat, lon = utm_to_latlon(easting, northing, "55s")
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d4g_edge.errors import D4GEdgeError

# --- UTM (WGS84 ellipsoid) -------------------------------------------------------------------
# Transverse Mercator by Krüger's series in the third flattening n, to order n^6 as given by
# Karney (2011), "Transverse Mercator with an accuracy of a few nanometers", J. Geodesy 85,
# eqs. (35)-(36). Truncation error is ~5 nm within 3900 km of the central meridian, so the
# implementation, not the series, limits accuracy (double precision: ~1e-9 m). Unlike the
# rest of this module this is ellipsoidal: UTM coordinates (CVACT ships them) are defined on
# WGS84, not on the mean sphere.
WGS84_A = 6_378_137.0
WGS84_F = 1 / 298.257223563
UTM_K0 = 0.9996
UTM_FALSE_EASTING = 500_000.0
UTM_FALSE_NORTHING_SOUTH = 10_000_000.0

_N = WGS84_F / (2 - WGS84_F)
_E = np.sqrt(WGS84_F * (2 - WGS84_F))  # first eccentricity
# rectifying radius: meridian arc = _A_RECT * rectifying latitude
_A_RECT = WGS84_A / (1 + _N) * (1 + _N**2 / 4 + _N**4 / 64 + _N**6 / 256)
_ALPHA = np.array(
    [
        _N / 2 - 2 * _N**2 / 3 + 5 * _N**3 / 16 + 41 * _N**4 / 180 - 127 * _N**5 / 288
        + 7891 * _N**6 / 37800,
        13 * _N**2 / 48 - 3 * _N**3 / 5 + 557 * _N**4 / 1440 + 281 * _N**5 / 630
        - 1983433 * _N**6 / 1935360,
        61 * _N**3 / 240 - 103 * _N**4 / 140 + 15061 * _N**5 / 26880 + 167603 * _N**6 / 181440,
        49561 * _N**4 / 161280 - 179 * _N**5 / 168 + 6601661 * _N**6 / 7257600,
        34729 * _N**5 / 80640 - 3418889 * _N**6 / 1995840,
        212378941 * _N**6 / 319334400,
    ]
)  # fmt: skip
_BETA = np.array(
    [
        _N / 2 - 2 * _N**2 / 3 + 37 * _N**3 / 96 - _N**4 / 360 - 81 * _N**5 / 512
        + 96199 * _N**6 / 604800,
        _N**2 / 48 + _N**3 / 15 - 437 * _N**4 / 1440 + 46 * _N**5 / 105
        - 1118711 * _N**6 / 3870720,
        17 * _N**3 / 480 - 37 * _N**4 / 840 - 209 * _N**5 / 4480 + 5569 * _N**6 / 90720,
        4397 * _N**4 / 161280 - 11 * _N**5 / 504 - 830251 * _N**6 / 7257600,
        4583 * _N**5 / 161280 - 108847 * _N**6 / 3991680,
        20648693 * _N**6 / 638668800,
    ]
)  # fmt: skip
_J2 = 2 * np.arange(1, 7, dtype=np.float64)  # 2j for j = 1..6


class UTMError(D4GEdgeError, ValueError):
    """Coordinates outside what UTM (or the requested zone) can represent."""


@dataclass(frozen=True)
class UTMZone:
    """A UTM zone: number 1..60 and hemisphere (which false northing applies)."""

    number: int
    north: bool

    def __post_init__(self) -> None:
        if not 1 <= self.number <= 60:
            raise UTMError(f"UTM zone number must be in 1..60, got {self.number}")

    @property
    def central_meridian(self) -> float:
        return 6.0 * self.number - 183.0

    @property
    def epsg(self) -> int:
        """EPSG code of WGS 84 / UTM in this zone (326xx north, 327xx south)."""
        return (32600 if self.north else 32700) + self.number

    def __str__(self) -> str:  # GeoConvert's notation, e.g. "38n", "55s"
        return f"{self.number}{'n' if self.north else 's'}"

    @classmethod
    def parse(cls, text: str) -> UTMZone:
        """Parse ``"55s"`` / ``"38N"`` (hemisphere letter, not an MGRS latitude band)."""
        t = text.strip().lower()
        if len(t) < 2 or t[-1] not in "ns" or not t[:-1].isdigit():
            raise UTMError(f"UTM zone must look like '38n' or '55s', got {text!r}")
        return cls(int(t[:-1]), t[-1] == "n")


def utm_zone_number(lat, lon) -> np.ndarray:
    """Standard zone numbers, including the Norway (32V) and Svalbard (31X-37X) exceptions."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
    zone = np.floor((lon + 180.0) / 6.0).astype(np.int64) + 1
    zone = np.where((lat >= 56) & (lat < 64) & (lon >= 3) & (lon < 12), 32, zone)
    svalbard = (lat >= 72) & (lat <= 84) & (lon >= 0) & (lon < 42)
    # 31X: [0, 9), 33X: [9, 21), 35X: [21, 33), 37X: [33, 42); zones 32, 34, 36 do not exist
    zone = np.where(svalbard, 31 + 2 * np.searchsorted([9.0, 21.0, 33.0], lon, "right"), zone)
    return zone


def utm_zone(lat: float, lon: float) -> UTMZone:
    """The UTM zone of one point (UTM covers latitudes -80..84; beyond that is UPS)."""
    if not -80.0 <= lat <= 84.0:
        raise UTMError(f"latitude {lat} is outside UTM's -80..84 degrees (polar regions use UPS)")
    return UTMZone(int(utm_zone_number(lat, lon)), bool(lat >= 0))


def _tau_prime(tau: np.ndarray) -> np.ndarray:
    """Tangent of the conformal latitude from the tangent of the geodetic one (Karney eq. 7)."""
    sigma = np.sinh(_E * np.arctanh(_E * tau / np.hypot(1.0, tau)))
    return tau * np.hypot(1.0, sigma) - sigma * np.hypot(1.0, tau)


def latlon_to_utm(lat, lon, zone: UTMZone | str | None = None):
    """WGS84 degrees -> ``(easting, northing, zone)`` in metres.

    Without ``zone`` every point must fall in the same standard zone (planar coordinates from
    different zones do not mix); pass ``zone`` to project all points into one zone, e.g. a
    city that straddles a boundary. Returns float64 arrays shaped like the input.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise UTMError("latitude/longitude must be finite degrees")
    if zone is None:
        if lat.size == 0 or lat.min() < -80 or lat.max() > 84:
            raise UTMError("latitudes must lie in UTM's -80..84 degrees (polar regions use UPS)")
        numbers = np.unique(utm_zone_number(lat, lon))
        norths = np.unique(lat >= 0)
        if len(numbers) > 1 or len(norths) > 1:
            raise UTMError(
                f"points span UTM zones {sorted(numbers.tolist())} / both hemispheres; pass "
                "zone=UTMZone(...) to project them all into one zone"
            )
        zone = UTMZone(int(numbers[0]), bool(norths[0]))
    elif isinstance(zone, str):
        zone = UTMZone.parse(zone)
    if np.abs(lat).max(initial=0.0) >= 90.0:
        raise UTMError("latitude must be strictly between -90 and 90 degrees")
    dlon = (lon - zone.central_meridian + 180.0) % 360.0 - 180.0
    if np.abs(dlon).max(initial=0.0) >= 90.0:
        raise UTMError(f"points are >= 90 degrees of longitude from zone {zone}'s meridian")
    lam = np.radians(dlon)
    tau_p = _tau_prime(np.tan(np.radians(lat)))
    xi_p = np.arctan2(tau_p, np.cos(lam))
    eta_p = np.arcsinh(np.sin(lam) / np.hypot(tau_p, np.cos(lam)))
    j2 = _J2.reshape((-1,) + (1,) * lat.ndim)  # series index on a new leading axis
    xi = xi_p + (_ALPHA.reshape(j2.shape) * np.sin(j2 * xi_p) * np.cosh(j2 * eta_p)).sum(0)
    eta = eta_p + (_ALPHA.reshape(j2.shape) * np.cos(j2 * xi_p) * np.sinh(j2 * eta_p)).sum(0)
    easting = UTM_FALSE_EASTING + UTM_K0 * _A_RECT * eta
    northing = UTM_K0 * _A_RECT * xi + (0.0 if zone.north else UTM_FALSE_NORTHING_SOUTH)
    return easting, northing, zone


def utm_to_latlon(easting, northing, zone: UTMZone | str) -> tuple[np.ndarray, np.ndarray]:
    """UTM metres in ``zone`` -> WGS84 ``(lat, lon)`` degrees (lon wrapped to [-180, 180))."""
    zone = UTMZone.parse(zone) if isinstance(zone, str) else zone
    easting = np.asarray(easting, dtype=np.float64)
    northing = np.asarray(northing, dtype=np.float64)
    if not (np.isfinite(easting).all() and np.isfinite(northing).all()):
        raise UTMError("easting/northing must be finite metres")
    xi = (northing - (0.0 if zone.north else UTM_FALSE_NORTHING_SOUTH)) / (UTM_K0 * _A_RECT)
    eta = (easting - UTM_FALSE_EASTING) / (UTM_K0 * _A_RECT)
    j2 = _J2.reshape((-1,) + (1,) * xi.ndim)
    xi_p = xi - (_BETA.reshape(j2.shape) * np.sin(j2 * xi) * np.cosh(j2 * eta)).sum(0)
    eta_p = eta - (_BETA.reshape(j2.shape) * np.cos(j2 * xi) * np.sinh(j2 * eta)).sum(0)
    tau_p = np.sin(xi_p) / np.hypot(np.sinh(eta_p), np.cos(xi_p))
    lam = np.arctan2(np.sinh(eta_p), np.cos(xi_p))
    # Invert tau' -> tau by Newton (Karney eqs. 19-21); quadratic convergence, 3 steps reach
    # double precision for every latitude UTM uses.
    tau = tau_p.copy()
    for _ in range(4):
        tp = _tau_prime(tau)
        tau = tau + (tau_p - tp) / np.hypot(1.0, tp) * (1 + (1 - _E**2) * tau**2) / (
            (1 - _E**2) * np.hypot(1.0, tau)
        )
    lat = np.degrees(np.arctan(tau))
    lon = (zone.central_meridian + np.degrees(lam) + 180.0) % 360.0 - 180.0
    return lat, lon
