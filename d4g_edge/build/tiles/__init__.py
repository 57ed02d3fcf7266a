"""Tile sources for index building: XYZ web-map folders and georeferenced rasters.

Dataset layouts (CVUSA/CVACT/VIGOR) and the procedural world are sources too, but they live in
the repository's ``train.tile_sources`` (the device SDK does not import training code).

Usage::

    from d4g_edge.build.tiles import open_tile_source
    src = open_tile_source("tiles/")                                    # XYZ folder
    src = open_tile_source("ortho.jpg", tile_size_m=90, stride_m=30)    # + ortho.jgw
"""

from __future__ import annotations

from pathlib import Path

from d4g_edge.build.tiles.base import Tile, TileSource
from d4g_edge.errors import TileSourceError
from d4g_edge.tiletable import TileTable

__all__ = ["Tile", "TileSource", "TileTable", "open_raster", "open_tile_source"]


def open_tile_source(
    src: str | Path,
    *,
    tile_size_m: float | None = None,
    stride_m: float | None = None,
    crs: str | None = None,
    zoom: int | None = None,
) -> TileSource:
    """A folder is an XYZ tile tree; a file is a raster (world file or GeoTIFF).

    A raster needs ``tile_size_m``; ``stride_m`` defaults to half of it (given, it must be
    > 0: a zero stride is an error, not the default)."""
    path = Path(src)
    if path.is_dir():
        from d4g_edge.build.tiles.xyz import XYZTileSource

        return XYZTileSource(path, zoom=zoom)
    if path.is_file():
        if tile_size_m is None:
            raise TileSourceError(f"{path} is a raster: give --tile-size-m (and --stride-m)")
        from d4g_edge.build.tiles.raster import check_tile_metres

        tile_size_m, _ = check_tile_metres(tile_size_m, 1.0)
        stride_m = tile_size_m / 2 if stride_m is None else stride_m
        return open_raster(path, *check_tile_metres(tile_size_m, stride_m), crs)
    raise TileSourceError(
        f"tile source {path} does not exist; expected an XYZ folder (z/x/y.png) or a "
        "georeferenced image (world file or GeoTIFF)"
    )


def open_raster(path, tile_size_m, stride_m, crs=None):
    """A world-file image, else a GeoTIFF read with rasterio. (Here rather than in
    :mod:`~d4g_edge.build.tiles.raster`: the GeoTIFF reader builds on that module, which would
    otherwise import it back.)"""
    from d4g_edge.build.tiles.raster import (
        check_tile_metres,
        open_world_file_image,
        world_file_for,
    )

    path = Path(path)
    check_tile_metres(tile_size_m, stride_m)
    if world_file_for(path) is not None:
        return open_world_file_image(path, tile_size_m, stride_m, crs)
    if path.suffix.lower() in (".tif", ".tiff"):
        from d4g_edge.build.tiles.geotiff import open_geotiff

        return open_geotiff(path, tile_size_m, stride_m, crs)
    raise TileSourceError(
        f"{path}: no world file next to it (.pgw/.jgw/.tfw/.wld) and not a GeoTIFF (.tif)"
    )
