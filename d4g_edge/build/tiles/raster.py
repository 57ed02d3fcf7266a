"""A georeferenced north-up raster cut into overlapping square tiles of given ground metres.

Two readers share the cutting: an image with a world file (``.pgw/.jgw/.tfw/.wld`` or
``<image>.<ext>w``; Pillow reads the pixels) and a GeoTIFF (``rasterio``, optional extra
``d4g-edge[geotiff]``; read window by window, :mod:`d4g_edge.build.tiles.geotiff`). The CRS is
any geographic or projected CRS pyproj knows (extra ``d4g-edge[tiles]``); without pyproj,
EPSG:4326. World files carry no CRS: it comes from ``crs=``, a ``.prj`` next to the image,
or, when every corner is in degree ranges, EPSG:4326. Coordinates outside degree ranges with
no CRS (e.g. UTM metres in a world file or a GeoTIFF without CRS) are refused with a hint
to pass ``--crs``, never read as degrees. Rotated rasters (world-file terms B, D != 0) are
refused.

Tiles are ``tile_size_m`` x ``tile_size_m`` metres *of ground*, centres every ``stride_m``
ground metres from the raster's top-left corner (:mod:`d4g_edge.build.tiles._grid`): in Web
Mercator (EPSG:3857) a ground metre is 1/cos(latitude) grid units, so tiles are cut larger
in pixels toward the pole; ``describe()`` records the ground sizes used and the grid scale.
The tile count is computed before any tile exists. Tiles that are mostly nodata are skipped
(:mod:`d4g_edge.build.tiles.nodata`). In a projected CRS "up" is grid north, which differs from
true north by the meridian convergence (< 3 degrees in a UTM zone; above 5 refused).

Usage::

    from d4g_edge.build.tiles.raster import open_raster
    src = open_raster("ortho.png", tile_size_m=90, stride_m=30)     # finds ortho.pgw
    for tile in src: tile.lat, tile.lon, tile.read()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from d4g_edge.build.tiles._crs import raster_crs
from d4g_edge.build.tiles._grid import MIN_TILE_PX, TileGrid
from d4g_edge.build.tiles.base import Tile
from d4g_edge.build.tiles.nodata import MAX_NODATA_FRACTION, mask_nodata
from d4g_edge.errors import TileSourceError
from d4g_edge.image import load_rgb
from d4g_edge.log import logger

WORLD_FILE_SUFFIXES = {
    ".png": ".pgw",
    ".jpg": ".jgw",
    ".jpeg": ".jgw",
    ".tif": ".tfw",
    ".tiff": ".tfw",
}
MAX_RASTER_PIXELS = 1 << 31  # an orthophoto is big on purpose; only absurd sizes are refused
MAX_TILE_READ_PX = 1024  # tiles are read at most this big: encoders take <= 384 px anyway
ROTATION_TOL = 1e-9  # |B|, |D| below this fraction of the pixel size are float noise
ReadWindow = Callable[[tuple[int, int, int, int], int], tuple[np.ndarray, np.ndarray | None]]


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
    except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        raise TileSourceError(f"cannot read world file {path}: {err}") from None
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise TileSourceError(
            f"world file {path} must hold 6 finite numbers (A D B E C F, one a line), got "
            f"{values[:8]}"
        )
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


def check_tile_metres(tile_size_m, stride_m) -> tuple[float, float]:
    """``(tile_size_m, stride_m)`` as floats, or a typed error: both finite and > 0."""
    for what, v in (("tile size (--tile-size-m)", tile_size_m), ("stride (--stride-m)", stride_m)):
        try:
            ok = math.isfinite(float(v)) and float(v) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise TileSourceError(
                f"the raster tile {what} must be a number of metres > 0, got {v!r}"
            )
    return float(tile_size_m), float(stride_m)


class RasterTileSource:
    """Cuts ``width x height`` pixels with ``affine`` into tiles (see module docstring).

    ``read_window((x0, y0, x1, y1), out)`` returns the integer pixel box resized to
    ``out x out`` as uint8 RGB, and a boolean valid-pixel mask of the same size (or None)."""

    def __init__(
        self, name, width, height, affine, crs, read_window: ReadWindow, tile_size_m, stride_m
    ):
        tile_size_m, stride_m = check_tile_metres(tile_size_m, stride_m)
        size = max(abs(affine.a), abs(affine.e))
        if abs(affine.b) > ROTATION_TOL * size or abs(affine.d) > ROTATION_TOL * size:
            raise TileSourceError(
                f"{name} is rotated (world-file B/D != 0); warp it north-up "
                "(gdalwarp -t_srs EPSG:NNNN in out)"
            )
        if not (affine.a > 0 and affine.e < 0):
            raise TileSourceError(
                f"{name}: expected x growing east and y south (A>0, E<0), got A={affine.a!r}, "
                f"E={affine.e!r}; flip or warp it north-up"
            )
        if width < 1 or height < 1:
            raise TileSourceError(f"{name} is empty ({width} x {height} pixels)")
        affine = Affine(affine.a, 0.0, affine.c, 0.0, affine.e, affine.f)
        self.name, self.width, self.height = str(name), int(width), int(height)
        self.affine, self.crs, self._read = affine, crs, read_window
        self.tile_size_m, self.stride_m = tile_size_m, stride_m
        if stride_m > tile_size_m:
            logger.warning(
                "%s: a %g m stride over %g m tiles leaves ground between tiles unindexed",
                name,
                stride_m,
                tile_size_m,
            )
        self.crs_info = raster_crs(crs)
        self.to_latlon = self.crs_info.to_latlon
        self.grid = TileGrid(width, height, affine, self.crs_info, tile_size_m, stride_m, name)
        self.px_m = self.grid.px_m

    def __len__(self) -> int:
        return len(self.grid)

    def describe(self) -> dict:
        """What the build used (in the manifest's georeference): ground metres throughout."""
        g = self.grid
        used = g.ncols > 0
        return {
            "kind": "raster",
            "path": self.name,
            "crs": self.crs_info.name,
            "tile_size_m": self.tile_size_m,  # on the ground, at every tile's latitude
            "stride_m": self.stride_m,
            "metres_per_pixel": [float(v) for v in self.px_m],  # ground, at the centre
            "crs_units_per_ground_m": g.scale_range(),  # top row, bottom row
            "tile_px": [float(np.min(g.tx[used])), float(np.max(g.tx[used]))],
            "tiles": len(g),
            "max_nodata_fraction": MAX_NODATA_FRACTION,
        }

    def centre_pixel(self, tile_id: int) -> tuple[float, float]:
        r = self.grid.row_of(tile_id)
        x0, y0, x1, y1 = self.grid.boxes(r)[int(tile_id) - int(self.grid.starts[r])]
        return (x0 + x1) / 2, (y0 + y1) / 2

    def __iter__(self) -> Iterator[Tile]:
        g = self.grid
        for r in range(len(g.ncols)):
            if not g.ncols[r]:
                continue
            boxes = g.boxes(r)
            lat, lon = self.to_latlon(
                *self.affine((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2)
            )
            out = int(np.clip(round(max(g.tx[r], g.ty[r])), MIN_TILE_PX, MAX_TILE_READ_PX))
            for c, box in enumerate(boxes):
                tid = int(g.starts[r]) + c
                yield Tile(
                    tid,
                    float(lat[c]),
                    float(lon[c]),
                    self.tile_size_m,
                    lambda box=box, tid=tid, out=out: self._read_tile(box, tid, out),
                )

    def _read_tile(self, box, tid: int, out: int) -> np.ndarray:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        x0, y0 = min(max(0, x0), self.width - 1), min(max(0, y0), self.height - 1)
        x1, y1 = min(max(x0 + 1, x1), self.width), min(max(y0 + 1, y1), self.height)
        rgb, valid = self._read((x0, y0, x1, y1), out)
        return mask_nodata(rgb, valid, f"{self.name} tile {tid}")


def crop_resize(arr: np.ndarray, box, out: int, resample=Image.Resampling.BILINEAR) -> np.ndarray:
    """``arr[y0:y1, x0:x1]`` resized to ``out x out`` (bool masks: nearest)."""
    x0, y0, x1, y1 = box
    part = arr[y0:y1, x0:x1]
    if part.shape[:2] == (out, out):
        return np.ascontiguousarray(part)
    if part.dtype == bool:
        img = Image.fromarray(part.astype(np.uint8) * 255)
        return np.asarray(img.resize((out, out), Image.Resampling.NEAREST)) > 127
    return np.asarray(Image.fromarray(np.ascontiguousarray(part)).resize((out, out), resample))


_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def _image_size(path: Path) -> tuple[int, int, bool]:
    """Width, height and whether the image has an alpha channel, from its header."""
    try:
        with Image.open(path) as im:
            alpha = im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)
            return im.size[0], im.size[1], alpha
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise TileSourceError(f"{path} is not an image Pillow can read: {err}") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise TileSourceError(f"{path} is truncated or corrupt: {err}") from None


def _alpha_valid(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGBA"))[..., 3] > 0
    except (OSError, ValueError, SyntaxError) as err:
        raise TileSourceError(f"cannot read the alpha channel of {path}: {err}") from None


def _read_prj(prj: Path) -> str:
    try:
        return prj.read_text()
    except (OSError, ValueError) as err:
        raise TileSourceError(f"cannot read the CRS file {prj}: {err}") from None


def open_world_file_image(path, tile_size_m, stride_m, crs=None, world_file=None):
    path = Path(path)
    wf = Path(world_file) if world_file else world_file_for(path)
    if wf is None:
        raise TileSourceError(f"{path} has no world file (.pgw/.jgw/.tfw/.wld) next to it")
    affine = read_world_file(wf)
    prj = path.with_suffix(".prj")
    if crs is None and prj.is_file():
        crs = _read_prj(prj)
    width, height, alpha = _image_size(path)
    cache: dict[str, np.ndarray | None] = {}

    def read(box, out):
        if "rgb" not in cache:  # decoded once, on the first tile
            cache["rgb"] = load_rgb(path, max_pixels=MAX_RASTER_PIXELS)
            cache["valid"] = _alpha_valid(path) if alpha else None
        valid = cache["valid"]
        rgb = crop_resize(cache["rgb"], box, out)
        return rgb, None if valid is None else crop_resize(valid, box, out)

    return RasterTileSource(path, width, height, affine, crs, read, tile_size_m, stride_m)
