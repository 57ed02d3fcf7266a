"""Geodesy on the WGS84 sphere for the SDK, the world, the loaders and the metrics (numpy only).

UTM (ellipsoidal, used only by the CVACT loader) lives with the training tooling in
:mod:`train.datasets.utm`.

Conventions
-----------
* Latitude/longitude are WGS84 degrees; distances use a sphere of the mean Earth radius
  (haversine), the convention of the CVGL literature (error in metres, recall within X m).
* Local metres are east/north (ENU without up) around a :class:`GeoReference` origin, using
  the local equirectangular projection on that sphere. It is exact in both directions (the
  inverse is algebraic), and within a few km of the origin it agrees with geodesic distance
  to well under a centimetre per 100 m, far below a satellite pixel.
* Pixels of a north-up raster: column grows east, row grows south; pixel ``(r, c)`` has its
  centre at ``(c + 0.5, r + 0.5)`` in continuous pixel coordinates ``(x, y)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d4g_edge.errors import GeoError

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius


def offset_latlon(lat, lon, east_m, north_m) -> tuple[np.ndarray, np.ndarray]:
    """The points ``east_m``/``north_m`` metres from ``lat``/``lon`` (broadcast), by the local
    equirectangular projection around each start point (as :class:`GeoReference`)."""
    lat = np.asarray(lat, dtype=np.float64)
    out_lat = lat + np.degrees(np.asarray(north_m, dtype=np.float64) / EARTH_RADIUS_M)
    out_lon = np.asarray(lon, dtype=np.float64) + np.degrees(
        np.asarray(east_m, dtype=np.float64) / (EARTH_RADIUS_M * np.cos(np.radians(lat)))
    )
    return out_lat, out_lon


def haversine_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in metres between points given in **degrees** (broadcasts).

    Sample4Geo passes degrees to a radians formula; here conversion happens inside, once.
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass(frozen=True)
class GeoReference:
    """Georeference of a local frame: origin lat/lon (degrees) and metres per pixel.

    The origin is local ``(east, north) = (0, 0)`` and raster pixel ``(x, y) = (0, 0)`` (the
    raster's top-left corner); ``x`` grows east and ``y`` grows south.
    """

    origin_lat: float
    origin_lon: float
    metres_per_pixel: float = 1.0

    def __post_init__(self) -> None:
        if not -85.0 < self.origin_lat < 85.0:
            raise GeoError(f"origin_lat must be in (-85, 85) degrees, got {self.origin_lat}")
        if not -180.0 <= self.origin_lon <= 180.0:
            raise GeoError(f"origin_lon must be in [-180, 180] degrees, got {self.origin_lon}")
        if not self.metres_per_pixel > 0:
            raise GeoError(f"metres_per_pixel must be > 0, got {self.metres_per_pixel}")

    @property
    def _cos_lat0(self) -> float:
        return float(np.cos(np.radians(self.origin_lat)))

    # local metres <-> lat/lon ---------------------------------------------------------
    def metres_to_latlon(self, east, north) -> tuple[np.ndarray, np.ndarray]:
        lat = self.origin_lat + np.degrees(np.asarray(north, dtype=np.float64) / EARTH_RADIUS_M)
        lon = self.origin_lon + np.degrees(
            np.asarray(east, dtype=np.float64) / (EARTH_RADIUS_M * self._cos_lat0)
        )
        return lat, lon

    def latlon_to_metres(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        north = np.radians(np.asarray(lat, dtype=np.float64) - self.origin_lat) * EARTH_RADIUS_M
        east = (
            np.radians(np.asarray(lon, dtype=np.float64) - self.origin_lon)
            * EARTH_RADIUS_M
            * self._cos_lat0
        )
        return east, north

    # pixels <-> local metres ----------------------------------------------------------
    def pixel_to_metres(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        m = self.metres_per_pixel
        return np.asarray(x, dtype=np.float64) * m, -np.asarray(y, dtype=np.float64) * m

    def metres_to_pixel(self, east, north) -> tuple[np.ndarray, np.ndarray]:
        m = self.metres_per_pixel
        return np.asarray(east, dtype=np.float64) / m, -np.asarray(north, dtype=np.float64) / m

    # pixels <-> lat/lon ----------------------------------------------------------------
    def pixel_to_latlon(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        return self.metres_to_latlon(*self.pixel_to_metres(x, y))

    def latlon_to_pixel(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        return self.metres_to_pixel(*self.latlon_to_metres(lat, lon))
