"""The nodata rule of raster tiles: a tile that is mostly nodata is skipped, not indexed.

A raster pixel is nodata when the raster says so: a GeoTIFF's nodata value (all bands equal
to it), its alpha band or its GDAL mask band (rasterio's ``dataset_mask``), or a world-file
image's alpha channel (fully transparent). A tile with more than
:data:`MAX_NODATA_FRACTION` of its pixels nodata is skipped: ``tile.read()`` raises
:class:`NoDataTile` and the build counts it in its log. In a tile that is kept, the nodata
pixels are painted black (what the models saw for "nothing"), never the nodata value itself
(e.g. 255, which would read as white ground).

Usage::

    from d4g_edge.build.tiles.nodata import NoDataTile, mask_nodata
    rgb = mask_nodata(rgb, valid, "ortho.tif tile 12")   # may raise NoDataTile
"""

from __future__ import annotations

import numpy as np

from d4g_edge.errors import TileSourceError

MAX_NODATA_FRACTION = 0.5


class NoDataTile(TileSourceError):
    """A tile with more than :data:`MAX_NODATA_FRACTION` nodata pixels (skipped by a build)."""


def mask_nodata(rgb: np.ndarray, valid: np.ndarray | None, what: str) -> np.ndarray:
    """``rgb`` with its nodata pixels black, or :class:`NoDataTile` if they are too many."""
    if valid is None or valid.all():
        return rgb
    nodata = 1.0 - float(np.count_nonzero(valid)) / valid.size
    if nodata > MAX_NODATA_FRACTION:
        raise NoDataTile(
            f"{what} is {nodata:.0%} nodata (more than {MAX_NODATA_FRACTION:.0%}): skipped"
        )
    rgb = rgb.copy()
    rgb[~valid] = 0
    return rgb
