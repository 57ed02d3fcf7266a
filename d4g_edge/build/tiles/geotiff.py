"""GeoTIFF rasters (rasterio, extra ``d4g-edge[geotiff]``), read window by window.

Bands: the red/green/blue bands by colour interpretation, else bands 1-3; a single gray band
is replicated to RGB and a palette band expanded through its colour map (as Pillow does for
images); a second band of a gray raster is its alpha. Pixels must be 8-bit (``uint8``): a
16-bit or float raster has no agreed 8-bit rendering (a 12-bit sensor's 0..4095 divided by
257 is black), so it is refused with the ``gdal_translate`` line that converts it. Nodata
comes from rasterio's ``dataset_mask`` (nodata value, alpha band or GDAL mask band; see
:mod:`d4g_edge.build.tiles.nodata`). Every problem found in the header (no georeference, GCPs only,
bands, dtype, CRS) is a typed error when the source is opened, before any tile is read.

Usage::

    from d4g_edge.build.tiles.geotiff import open_geotiff
    src = open_geotiff("ortho.tif", tile_size_m=90, stride_m=45)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from d4g_edge.build.tiles.raster import Affine, RasterTileSource, crop_resize
from d4g_edge.errors import TileSourceError
from d4g_edge.log import logger

# A window this many times larger than the tile's output is decimated by GDAL while reading
# (overviews when present), not read whole and then shrunk.
DECIMATE_ABOVE = 2


def _rasterio():
    try:
        import rasterio
    except ImportError:
        raise TileSourceError("GeoTIFFs need rasterio: pip install 'd4g-edge[geotiff]'") from None
    return rasterio


def _bands(ds, path: Path) -> tuple[tuple[int, ...], np.ndarray | None]:
    """Band indexes to read as RGB (1 index: gray or palette) and a palette lookup table."""
    from rasterio.enums import ColorInterp

    ci = list(ds.colorinterp)
    rgb = [
        ci.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue) if c in ci
    ]
    colour = [
        i + 1 for i, c in enumerate(ci) if c not in (ColorInterp.alpha, ColorInterp.undefined)
    ]
    if len(rgb) == 3:
        return tuple(rgb), None
    if ci and ci[0] == ColorInterp.palette:
        try:
            cmap = ds.colormap(1)
        except ValueError:
            cmap = {}
        lut = np.zeros((256, 3), np.uint8)
        for k, v in cmap.items():
            if 0 <= k < 256:
                lut[k] = v[:3]
        return (1,), lut
    usable = [i for i in range(1, ds.count + 1) if ci[i - 1] != ColorInterp.alpha]
    if len(usable) >= 3:
        if ds.count > 3:
            logger.info(
                "%s: %d bands without RGB colour interpretation; reading bands %s as RGB",
                path,
                ds.count,
                usable[:3],
            )
        return tuple(usable[:3]), None
    if len(usable) == 1 and (len(colour) <= 1):
        logger.warning("%s: one gray band replicated to RGB; the models saw colour", path)
        return (usable[0],), None
    raise TileSourceError(
        f"{path} has {ds.count} band(s) ({', '.join(c.name for c in ci)}); expected RGB (3 "
        "bands), gray or palette; convert it: gdal_translate -b 1 -b 2 -b 3 in.tif out.tif"
    )


def _check(ds, path: Path, bands: tuple[int, ...]) -> None:
    t = ds.transform
    if ds.gcps[0] and t.is_identity:
        raise TileSourceError(
            f"{path} is georeferenced by ground control points only; warp it north-up: "
            "gdalwarp -t_srs EPSG:NNNN in.tif out.tif"
        )
    if t.is_identity or not ds.transform:
        raise TileSourceError(
            f"{path} has no georeference (no geotransform); add a world file ({path.stem}.tfw) "
            "or georeference it (gdal_translate -a_srs ... -a_ullr ...)"
        )
    dtypes = {ds.dtypes[b - 1] for b in bands}
    if dtypes != {"uint8"}:
        raise TileSourceError(
            f"{path} holds {'/'.join(sorted(dtypes))} pixels; expected 8-bit RGB (uint8). "
            "Convert it with a stretch you choose: gdal_translate -ot Byte -scale MIN MAX 0 255 "
            "in.tif out.tif"
        )
    nbits = ds.tags(bands[0], ns="IMAGE_STRUCTURE").get("NBITS")
    if nbits and nbits.isdigit() and int(nbits) < 8:
        raise TileSourceError(
            f"{path} is a {nbits}-bit raster (a mask, not imagery); expected 8-bit RGB"
        )


def _crs_text(ds, crs) -> str | None:
    if crs is not None:
        return crs
    if ds.crs is None:
        return None
    epsg = ds.crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else ds.crs.to_wkt()


def open_geotiff(path, tile_size_m, stride_m, crs=None) -> RasterTileSource:
    rasterio = _rasterio()
    from rasterio.enums import MaskFlags, Resampling
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rasterio.windows import Window

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioError as err:
        raise TileSourceError(f"{path} is not a GeoTIFF rasterio can read: {err}") from None
    bands, lut = _bands(ds, path)
    _check(ds, path, bands)
    t = ds.transform
    masked = any(f != [MaskFlags.all_valid] for f in ds.mask_flag_enums)

    def read(box, out):
        x0, y0, x1, y1 = box
        win = Window(x0, y0, x1 - x0, y1 - y0)
        shrink = max(x1 - x0, y1 - y0) > DECIMATE_ABOVE * out
        shape = (
            dict(out_shape=(len(bands), out, out), resampling=Resampling.average) if shrink else {}
        )
        try:
            arr = ds.read(bands, window=win, **shape)
            valid = None
            if masked:
                m = ds.dataset_mask(window=win, **({"out_shape": (out, out)} if shrink else {}))
                valid = m > 0
        except RasterioError as err:
            why = f"{err}: {err.__cause__}" if err.__cause__ else str(err)
            raise TileSourceError(
                f"{path}: cannot read pixels {x0}..{x1} x {y0}..{y1} (truncated or corrupt?): {why}"
            ) from None
        rgb = lut[arr[0]] if lut is not None else arr.transpose(1, 2, 0)
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        rgb = np.ascontiguousarray(rgb)
        full = (0, 0, rgb.shape[1], rgb.shape[0])
        return crop_resize(rgb, full, out), None if valid is None else crop_resize(valid, full, out)

    affine = Affine(t.a, t.b, t.c, t.d, t.e, t.f)
    return RasterTileSource(
        path, ds.width, ds.height, affine, _crs_text(ds, crs), read, tile_size_m, stride_m
    )
