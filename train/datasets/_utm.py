"""WGS84 <-> UTM (numpy), for CVACT, whose ``ACT_data.mat`` stores positions as UTM only.

Private to the loaders until ``d4g_edge.geo`` grows a shared UTM helper. It implements the
Krüger series to sixth order in the third flattening (Karney 2011, "Transverse Mercator
with an accuracy of a few nanometers"), far below a pixel anywhere inside a UTM zone.

CVACT covers Canberra, UTM zone 55 south (:data:`CVACT_ZONE`).

Usage::

    east, north = latlon_to_utm(-35.28, 149.13, zone=55, south=True)
    lat, lon = utm_to_latlon(east, north, zone=55, south=True)
"""

from __future__ import annotations

import numpy as np

_A = 6378137.0
_F = 1 / 298.257223563
_K0 = 0.9996
_FALSE_EASTING = 500_000.0
_FALSE_NORTHING_SOUTH = 10_000_000.0

CVACT_ZONE = (55, True)  # (zone, southern hemisphere): Canberra

_N = _F / (2 - _F)
_E = 2 * np.sqrt(_N) / (1 + _N)  # first eccentricity
_RECT = _A / (1 + _N) * (1 + _N**2 / 4 + _N**4 / 64 + _N**6 / 256)  # rectifying radius
# Krüger series coefficients: row j lists the factors of n, n^2, ..., n^6 in alpha_j
# (forward) and beta_j (inverse), j = 1..6, from Karney (2011).
_ALPHA_COEFFS = (
    (1 / 2, -2 / 3, 5 / 16, 41 / 180, -127 / 288, 7891 / 37800),
    (0, 13 / 48, -3 / 5, 557 / 1440, 281 / 630, -1983433 / 1935360),
    (0, 0, 61 / 240, -103 / 140, 15061 / 26880, 167603 / 181440),
    (0, 0, 0, 49561 / 161280, -179 / 168, 6601661 / 7257600),
    (0, 0, 0, 0, 34729 / 80640, -3418889 / 1995840),
    (0, 0, 0, 0, 0, 212378941 / 319334400),
)
_BETA_COEFFS = (
    (1 / 2, -2 / 3, 37 / 96, -1 / 360, -81 / 512, 96199 / 604800),
    (0, 1 / 48, 1 / 15, -437 / 1440, 46 / 105, -1118711 / 3870720),
    (0, 0, 17 / 480, -37 / 840, -209 / 4480, 5569 / 90720),
    (0, 0, 0, 4397 / 161280, -11 / 504, -830251 / 7257600),
    (0, 0, 0, 0, 4583 / 161280, -108847 / 3991680),
    (0, 0, 0, 0, 0, 20648693 / 638668800),
)
_ALPHA = tuple(sum(c * _N ** (k + 1) for k, c in enumerate(row)) for row in _ALPHA_COEFFS)
_BETA = tuple(sum(c * _N ** (k + 1) for k, c in enumerate(row)) for row in _BETA_COEFFS)


def utm_zone(lon: float) -> int:
    """Standard UTM zone number (1..60) of a longitude in degrees (no Norway exceptions)."""
    return int(np.floor((lon + 180.0) / 6.0)) % 60 + 1


def _central_meridian(zone: int) -> float:
    if not 1 <= zone <= 60:
        raise ValueError(f"UTM zone must be in 1..60, got {zone}")
    return 6.0 * zone - 183.0


def latlon_to_utm(lat, lon, *, zone: int, south: bool) -> tuple[np.ndarray, np.ndarray]:
    """(easting, northing) in metres of WGS84 degrees in the given zone."""
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64) - _central_meridian(zone))
    sin_phi = np.sin(phi)
    tau = np.sinh(np.arctanh(sin_phi) - _E * np.arctanh(_E * sin_phi))  # conformal tan(lat)
    xi_p = np.arctan2(tau, np.cos(lam))
    eta_p = np.arctanh(np.sin(lam) / np.sqrt(1 + tau**2))
    xi, eta = xi_p.copy(), eta_p.copy()
    for j, a in enumerate(_ALPHA, start=1):
        xi += a * np.sin(2 * j * xi_p) * np.cosh(2 * j * eta_p)
        eta += a * np.cos(2 * j * xi_p) * np.sinh(2 * j * eta_p)
    east = _FALSE_EASTING + _K0 * _RECT * eta
    north = _K0 * _RECT * xi + (_FALSE_NORTHING_SOUTH if south else 0.0)
    return east, north


def utm_to_latlon(east, north, *, zone: int, south: bool) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 (lat, lon) in degrees of UTM metres in the given zone."""
    n0 = _FALSE_NORTHING_SOUTH if south else 0.0
    xi = (np.asarray(north, dtype=np.float64) - n0) / (_K0 * _RECT)
    eta = (np.asarray(east, dtype=np.float64) - _FALSE_EASTING) / (_K0 * _RECT)
    xi_p, eta_p = xi.copy(), eta.copy()
    for j, b in enumerate(_BETA, start=1):
        xi_p -= b * np.sin(2 * j * xi) * np.cosh(2 * j * eta)
        eta_p -= b * np.cos(2 * j * xi) * np.sinh(2 * j * eta)
    tau_p = np.sin(xi_p) / np.sqrt(np.sinh(eta_p) ** 2 + np.cos(xi_p) ** 2)
    lam = np.arctan2(np.sinh(eta_p), np.cos(xi_p))
    # Newton's method for tan(lat) from the conformal tan(lat); converges in 2-3 steps.
    e2 = _E**2
    tau = tau_p.copy()
    for _ in range(5):
        sigma = np.sinh(_E * np.arctanh(_E * tau / np.sqrt(1 + tau**2)))
        tau_i = tau * np.sqrt(1 + sigma**2) - sigma * np.sqrt(1 + tau**2)
        dtau = (
            (tau_p - tau_i)
            * (1 + (1 - e2) * tau**2)
            / ((1 - e2) * np.sqrt(1 + tau_i**2) * np.sqrt(1 + tau**2))
        )
        tau = tau + dtau
    lat = np.degrees(np.arctan(tau))
    lon = np.degrees(lam) + _central_meridian(zone)
    return lat, lon
