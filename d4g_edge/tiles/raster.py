"""A georeferenced north-up raster cut into overlapping square tiles of given metres.

Two readers share the cutting: an image with a world file (``.pgw/.jgw/.tfw/.wld`` or
``<image>.<ext>w``; Pillow reads the pixels) and a GeoTIFF (``rasterio``, optional extra
``d4g-edge[geotiff]``; read window by window). The raster's CRS is EPSG:4326 (degrees) or a
projected CRS in metres transformed with ``pyproj`` (extra ``d4g-edge[tiles]``). World files
carry no CRS: it comes from ``crs=``, a ``.prj`` next to the image, or — when the numbers can
only be degrees — EPSG:4326. Rotated rasters (world-file terms B, D != 0) are refused.

A tile is ``tile_size_m`` on a side, centres every ``stride_m`` from the raster's top-left
corner; metres per pixel are taken at the raster's centre. In a projected CRS "up" is grid
north, which differs from true north by the meridian convergence (< 3 degrees in a UTM zone).

Usage::

    from d4g_edge.tiles.raster import open_raster
    src = open_raster("ortho.png", tile_size_m=90, stride_m=30)     # finds ortho.pgw
    for tile in src: tile.lat, tile.lon, tile.read()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from d4g_edge.errors import TileSourceError
from d4g_edge.geo import EARTH_RADIUS_M
from d4g_edge.image import load_rgb
from d4g_edge.tiles.base import Tile

WORLD_FILE_SUFFIXES = {
    ".png": ".pgw",
    ".jpg": ".jgw",
    ".jpeg": ".jgw",
    ".tif": ".tfw",
    ".tiff": ".tfw",
}
MAX_RASTER_PIXELS = 1 << 31  # an orthophoto is big on purpose; only absurd sizes are refused


@dataclass(frozen=True)
class Affine:
    """GDAL geotransform: ``X = c + a*col + b*row``, ``Y = f + d*col + e*row`` (pixel corner)."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    def __call__(self, col, row):
        col, row = np.asarray(col, np.float64), np.asarray(row, np.float64)
        return self.c + self.a * col + self.b * row, self.f + self.d * col + self.e * row


def read_world_file(path: str | Path) -> Affine:
    """Parse a world file (A, D, B, E, C, F; C/F the *centre* of the top-left pixel)."""
    path = Path(path)
    try:
        values = [float(v) for v in path.read_text().split()]
    except (OSError, ValueError) as err:
        raise TileSourceError(f"cannot read world file {path}: {err}") from None
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise TileSourceError(f"world file {path} must hold 6 finite numbers, got {values}")
    a, d, b, e, c, f = values
    return Affine(a, b, c - a / 2 - b / 2, d, e, f - d / 2 - e / 2)


def world_file_for(image: Path) -> Path | None:
    suffix = image.suffix.lower()
    candidates = [
        image.with_suffix(WORLD_FILE_SUFFIXES.get(suffix, ".wld")),
        image.with_suffix(".wld"),
        image.with_name(image.name + "w"),
        image.with_suffix(suffix + "w"),
    ]
    return next((p for p in candidates if p.is_file()), None)


def _to_latlon(crs) -> Callable:
    """(X, Y) in ``crs`` -> (lat, lon); ``crs`` None means EPSG:4326 (X = lon, Y = lat)."""
    if crs is None:
        return lambda x, y: (np.asarray(y, np.float64), np.asarray(x, np.float64))
    try:
        from pyproj import CRS, Transformer
    except ImportError:
        raise TileSourceError(
            f"a raster in {crs} needs pyproj: pip install 'd4g-edge[tiles]'"
        ) from None
    try:
        src = CRS.from_user_input(crs)
    except Exception as err:  # pyproj.exceptions.CRSError
        raise TileSourceError(f"unknown CRS {crs!r}: {err}") from None
    if src.is_geographic:
        if src.to_epsg() != 4326:
            raise TileSourceError(f"geographic CRS {src.name} is not WGS84; reproject to 4326")
        return _to_latlon(None)
    units = {a.unit_name for a in src.axis_info}
    if units - {"metre"}:
        raise TileSourceError(f"projected CRS {src.name} uses {units}, not metres")
    t = Transformer.from_crs(src, "EPSG:4326", always_xy=True)
    return lambda x, y: tuple(np.asarray(v, np.float64) for v in t.transform(x, y)[::-1])


class RasterTileSource:
    """Cuts ``width x height`` pixels with ``affine`` into tiles (see module docstring)."""

    def __init__(self, name, width, height, affine, crs, read_window, tile_size_m, stride_m):
        if affine.b or affine.d:
            raise TileSourceError(f"{name} is rotated (world-file B/D != 0); warp it north-up")
        if affine.a <= 0 or affine.e >= 0:
            raise TileSourceError(f"{name}: expected x growing east and y south (A>0, E<0)")
        if not (stride_m > 0 and tile_size_m > 0):
            raise TileSourceError(
                f"tile size and stride must be > 0 m, got {tile_size_m}, {stride_m}"
            )
        self.name, self.width, self.height = str(name), int(width), int(height)
        self.affine, self.crs, self._read = affine, crs, read_window
        self.tile_size_m, self.stride_m = float(tile_size_m), float(stride_m)
        self.to_latlon = _to_latlon(crs)
        lat, _ = self.to_latlon(*affine(width / 2, height / 2))
        if crs is None:  # degrees per pixel -> metres per pixel at the centre latitude
            k = math.pi / 180 * EARTH_RADIUS_M
            self.px_m = (affine.a * k * math.cos(math.radians(float(lat))), -affine.e * k)
        else:
            self.px_m = (affine.a, -affine.e)
        self.tile_px = (tile_size_m / self.px_m[0], tile_size_m / self.px_m[1])
        if self.tile_px[0] > width or self.tile_px[1] > height:
            raise TileSourceError(
                f"{name} is {width * self.px_m[0]:.0f} x {height * self.px_m[1]:.0f} m, smaller "
                f"than one {tile_size_m} m tile; lower --tile-size-m"
            )

    @cached_property
    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        sx, sy = (self.stride_m / m for m in self.px_m)
        cols = np.arange(0, self.width - self.tile_px[0] + 1e-6, sx)
        rows = np.arange(0, self.height - self.tile_px[1] + 1e-6, sy)
        return cols, rows

    def __len__(self) -> int:
        cols, rows = self._grid
        return len(cols) * len(rows)

    def describe(self) -> dict:
        return {
            "kind": "raster",
            "path": self.name,
            "crs": str(self.crs or "EPSG:4326"),
            "tile_size_m": self.tile_size_m,
            "stride_m": self.stride_m,
            "metres_per_pixel": list(self.px_m),
        }

    def centre_pixel(self, tile_id: int) -> tuple[float, float]:
        cols, rows = self._grid
        r, c = divmod(int(tile_id), len(cols))
        return cols[c] + self.tile_px[0] / 2, rows[r] + self.tile_px[1] / 2

    def __iter__(self) -> Iterator[Tile]:
        cols, rows = self._grid
        out = round(max(self.tile_px))
        for r, row0 in enumerate(rows):
            for c, col0 in enumerate(cols):
                tid = r * len(cols) + c
                lat, lon = self.to_latlon(*self.affine(*self.centre_pixel(tid)))
                box = (col0, row0, col0 + self.tile_px[0], row0 + self.tile_px[1])
                yield Tile(
                    tid,
                    float(lat),
                    float(lon),
                    self.tile_size_m,
                    lambda box=box: self._read(box, out),
                )


def _crop(rgb: np.ndarray, box, out: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    img = Image.fromarray(rgb).crop((round(x0), round(y0), round(x1), round(y1)))
    if img.size != (out, out):
        img = img.resize((out, out), Image.Resampling.BILINEAR)
    return np.asarray(img)


def open_world_file_image(path, tile_size_m, stride_m, crs=None, world_file=None):
    path = Path(path)
    wf = Path(world_file) if world_file else world_file_for(path)
    if wf is None:
        raise TileSourceError(f"{path} has no world file (.pgw/.jgw/.tfw/.wld) next to it")
    affine = read_world_file(wf)
    prj = path.with_suffix(".prj")
    if crs is None and prj.is_file():
        crs = prj.read_text()
    if crs is None and not (
        abs(affine.a) < 1 and -180 <= affine.c <= 180 and -90 <= affine.f <= 90
    ):
        raise TileSourceError(f"{wf} is in a projected CRS; name it with --crs EPSG:NNNN")
    with Image.open(path) as im:
        width, height = im.size
    cache: dict[str, np.ndarray] = {}

    def read(box, out):
        if "rgb" not in cache:  # decoded once, on the first tile
            cache["rgb"] = load_rgb(path, max_pixels=MAX_RASTER_PIXELS)
        return _crop(cache["rgb"], box, out)

    return RasterTileSource(path, width, height, affine, crs, read, tile_size_m, stride_m)


def open_geotiff(path, tile_size_m, stride_m, crs=None):
    try:
        import rasterio
        from rasterio.windows import Window
    except ImportError:
        raise TileSourceError("GeoTIFFs need rasterio: pip install 'd4g-edge[geotiff]'") from None
    path = Path(path)
    ds = rasterio.open(path)
    if ds.count < 3:
        raise TileSourceError(f"{path} has {ds.count} band(s); expected RGB (3+)")
    t = ds.transform
    affine = Affine(t.a, t.b, t.c, t.d, t.e, t.f)
    crs = crs or (ds.crs.to_string() if ds.crs else None)
    if crs in ("EPSG:4326", "OGC:CRS84"):
        crs = None

    def read(box, out):
        x0, y0, x1, y1 = (round(v) for v in box)
        arr = ds.read((1, 2, 3), window=Window(x0, y0, x1 - x0, y1 - y0))
        if arr.dtype != np.uint8:
            raise TileSourceError(f"{path} holds {arr.dtype} pixels; convert to 8-bit RGB")
        return _crop(np.ascontiguousarray(arr.transpose(1, 2, 0)), (0, 0, x1 - x0, y1 - y0), out)

    return RasterTileSource(path, ds.width, ds.height, affine, crs, read, tile_size_m, stride_m)


def open_raster(path, tile_size_m, stride_m, crs=None):
    """A world-file image, else a GeoTIFF read with rasterio."""
    path = Path(path)
    if world_file_for(path) is not None:
        return open_world_file_image(path, tile_size_m, stride_m, crs)
    if path.suffix.lower() in (".tif", ".tiff"):
        return open_geotiff(path, tile_size_m, stride_m, crs)
    raise TileSourceError(f"{path}: no world file next to it and not a GeoTIFF")
