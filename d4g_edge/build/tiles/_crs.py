"""What a raster's coordinates mean: WGS84 lat/lon, and ground metres per CRS unit.

A tile is cut ``tile_size_m`` metres *on the ground*, so the cutter needs, at any point of
the raster, how many ground metres one CRS unit spans along x and along y:

* no CRS (a world file without ``.prj``): WGS84 degrees, on the project's sphere
  (:data:`d4g_edge.geo.EARTH_RADIUS_M`), with no pyproj needed;
* a geographic CRS (any datum): its angle unit on that sphere, the coordinates moved to WGS84
  by pyproj;
* a projected CRS: its linear unit (metre, US survey foot, ...) divided by the projection's
  scale factor there (pyproj's ``Proj.get_factors``: 1/cos(latitude) for Web Mercator
  EPSG:3857, 0.9996..1.0004 in a UTM zone), so a Mercator "metre" is not taken for a ground
  metre. Grid north may differ from true north by the meridian convergence; above
  :data:`MAX_CONVERGENCE_DEG` the tiles would be visibly rotated and the raster is refused.

Facts about a CRS (geographic or projected, its units) come from pyproj, never from a table.

Usage::

    from d4g_edge.build.tiles._crs import raster_crs
    crs = raster_crs("EPSG:3857")
    lat, lon = crs.to_latlon(x, y)
    gx, gy = crs.ground_m_per_unit(x, y)      # ground metres per CRS unit along x, y
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from d4g_edge.errors import TileSourceError
from d4g_edge.geo import EARTH_RADIUS_M

# A UTM zone stays under ~3.5 degrees (extended zones reach ~5 at high latitudes); more than
# this and north-up tiles cut along the grid are rotated enough to hurt matching.
MAX_CONVERGENCE_DEG = 5.0
# A raster centred this far outside its CRS's area of use (pyproj) is in the wrong CRS: a
# degrees world file given --crs EPSG:32616 lands off the zone, on the equator.
AREA_MARGIN_DEG = 1.0
WGS84_NAMES = ("EPSG:4326", "OGC:CRS84", "WGS84", "WGS 84")


@dataclass(frozen=True)
class RasterCRS:
    name: str  # "EPSG:4326" or pyproj's name / EPSG code
    geographic: bool  # coordinates are angles (must be in degree ranges)
    to_latlon: Callable  # (x, y) -> (lat, lon) WGS84 degrees, float64 arrays
    _ground: Callable  # (x, y, lat) -> (gx, gy) ground metres per unit
    _convergence: Callable | None = None  # (lon, lat) -> degrees, projected CRSs only
    area: tuple[float, float, float, float] | None = None  # area of use: W, S, E, N degrees
    stated: bool = True  # False: no CRS was given, degrees were assumed

    def ground_m_per_unit(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        lat, lon = self.to_latlon(x, y)
        gx, gy = self._ground(lon, lat)
        return np.asarray(gx, np.float64), np.asarray(gy, np.float64)

    def convergence_deg(self, x, y) -> np.ndarray:
        """Angle between grid north and true north (0 for geographic CRSs)."""
        if self._convergence is None:
            return np.zeros(np.shape(x))
        lat, lon = self.to_latlon(x, y)
        return np.asarray(self._convergence(lon, lat), np.float64)

    def outside_area(self, lat: float, lon: float) -> bool:
        """Whether (lat, lon) lies more than :data:`AREA_MARGIN_DEG` outside the area of use."""
        if self.area is None:
            return False
        w, s, e, n = self.area
        m = AREA_MARGIN_DEG
        if not s - m <= lat <= n + m:
            return True
        if w > e:  # an area across the antimeridian: leave longitude unchecked
            return False
        return not w - m <= lon <= e + m


def _sphere_ground(rad_per_unit: float) -> Callable:
    k = rad_per_unit * EARTH_RADIUS_M

    def ground(lon, lat):
        return k * np.cos(np.radians(lat)), np.full(np.shape(lat), k)

    return ground


def wrap_lon(lon) -> np.ndarray:
    """Longitudes in -180..180 (a raster across the antimeridian runs to 180+ degrees)."""
    lon = np.asarray(lon, np.float64)
    return np.where(lon > 180.0, lon - 360.0, lon)


def _wgs84_degrees(stated: bool) -> RasterCRS:
    def to_latlon(x, y):
        return np.asarray(y, np.float64), wrap_lon(x)

    ground = _sphere_ground(math.pi / 180)
    return RasterCRS("EPSG:4326", True, to_latlon, ground, stated=stated)


def _pyproj():
    try:
        import pyproj
    except ImportError:
        raise TileSourceError(
            "a raster in a CRS other than EPSG:4326 needs pyproj: pip install 'd4g-edge[tiles]'"
        ) from None
    return pyproj


def raster_crs(crs) -> RasterCRS:
    """The :class:`RasterCRS` of ``crs`` (None: WGS84 degrees): an EPSG code, WKT, PROJ
    string or pyproj CRS. A CRS with no tie to the Earth (a local engineering frame, a
    vertical CRS) is refused: its tiles could not be placed."""
    if crs is None or (isinstance(crs, str) and crs.strip().upper() in WGS84_NAMES):
        return _wgs84_degrees(stated=crs is not None)
    pyproj = _pyproj()
    try:
        src = pyproj.CRS.from_user_input(crs)
    except Exception as err:  # pyproj.exceptions.CRSError (a RuntimeError), TypeError
        text = str(crs).strip().replace("\n", " ")
        raise TileSourceError(
            f"unknown CRS {text[:120]!r}: {err}; name it as EPSG:NNNN (e.g. --crs EPSG:32616 "
            "for UTM zone 16N)"
        ) from None
    if src.is_compound:  # e.g. UTM + a height datum: the horizontal part places the tiles
        horizontal = [c for c in src.sub_crs_list if c.is_projected or c.is_geographic]
        if horizontal:
            src = horizontal[0]
    name = f"EPSG:{src.to_epsg()}" if src.to_epsg() else src.name
    if not (src.is_geographic or src.is_projected):
        raise TileSourceError(
            f"CRS {src.name!r} ({src.type_name}) has no tie to the Earth, so its tiles "
            "cannot be given latitudes and longitudes; georeference the raster in a "
            "geographic or projected CRS (e.g. EPSG:4326 or its UTM zone)"
        )
    axes = src.axis_info[:2]
    if len(axes) < 2 or any(not (a.unit_conversion_factor > 0) for a in axes):
        raise TileSourceError(f"CRS {name!r} does not state the unit of its axes")
    factor = float(axes[0].unit_conversion_factor)  # radians or metres per unit
    try:
        to_wgs84 = pyproj.Transformer.from_crs(src, "EPSG:4326", always_xy=True)
    except Exception as err:  # no transformation known between the datums
        raise TileSourceError(f"cannot transform CRS {name!r} to WGS84: {err}") from None

    def to_latlon(x, y):
        lon, lat = to_wgs84.transform(np.asarray(x, np.float64), np.asarray(y, np.float64))
        return np.asarray(lat, np.float64), wrap_lon(lon)

    a = src.area_of_use
    area = (a.west, a.south, a.east, a.north) if a is not None else None
    if src.is_geographic:
        return RasterCRS(name, True, to_latlon, _sphere_ground(factor), area=area)
    proj = pyproj.Proj(src)

    def ground(lon, lat):
        f = proj.get_factors(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        par, mer = np.asarray(f.parallel_scale), np.asarray(f.meridional_scale)
        return factor / par, factor / mer

    def convergence(lon, lat):
        f = proj.get_factors(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        return f.meridian_convergence

    return RasterCRS(name, False, to_latlon, ground, convergence, area)
