"""d4g_edge.tiles: XYZ folders, world-file images (degrees, UTM, .prj) and GeoTIFFs yield
tiles whose centres round-trip to the pixels they were cut from."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from d4g_edge.errors import TileSourceError
from d4g_edge.geo import GeoReference, latlon_to_utm, utm_to_latlon
from d4g_edge.tiles import open_tile_source
from d4g_edge.tiles.raster import read_world_file
from d4g_edge.tiles.xyz import XYZTileSource, xyz_tile_id

mercantile = pytest.importorskip("mercantile")

LAT0, LON0, MPP = 40.0, -88.0, 0.5


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_xyz_folder(tmp_path):
    z = 18
    t0 = mercantile.tile(LON0, LAT0, z)
    written = {}
    for dx, dy in [(0, 0), (1, 0), (0, 1)]:
        x, y = t0.x + dx, t0.y + dy
        (tmp_path / str(z) / str(x)).mkdir(parents=True, exist_ok=True)
        rgb = _rgb(256, 256, seed=dx + 2 * dy)
        Image.fromarray(rgb).save(tmp_path / str(z) / str(x) / f"{y}.png")
        written[(x, y)] = rgb
    (tmp_path / "README.txt").write_text("not a zoom")
    src = open_tile_source(tmp_path)
    tiles = list(src)
    assert len(src) == len(tiles) == 3 and src.zoom == z
    for t in tiles:
        x, y = (t.tile_id >> 28) & ((1 << 28) - 1), t.tile_id & ((1 << 28) - 1)
        assert t.tile_id == xyz_tile_id(z, x, y)
        # round trip: the centre falls in its own tile, and the pixels are the file's
        assert mercantile.tile(t.lon, t.lat, z) == mercantile.Tile(x, y, z)
        b = mercantile.bounds(x, y, z)
        assert abs(t.lon - (b.west + b.east) / 2) < 1e-9
        np.testing.assert_array_equal(t.read(), written[(x, y)])
        expect = 2 * math.pi * 6378137.0 / 2**z * math.cos(math.radians(t.lat))
        assert t.footprint_m == pytest.approx(expect, rel=1e-9)
    tms = XYZTileSource(tmp_path, scheme="tms")
    ys = sorted((t.tile_id & ((1 << 28) - 1)) for t in tms)
    assert ys == sorted(2**z - 1 - y for (_, y) in written)


def test_xyz_errors(tmp_path):
    with pytest.raises(TileSourceError, match="no zoom folders"):
        open_tile_source(tmp_path)
    (tmp_path / "5").mkdir()
    with pytest.raises(TileSourceError, match="holds no"):
        open_tile_source(tmp_path)
    with pytest.raises(TileSourceError, match="no zoom 7"):
        XYZTileSource(tmp_path, zoom=7)
    with pytest.raises(TileSourceError, match="does not exist"):
        open_tile_source(tmp_path / "nowhere")


def _degrees_world_file(path, georef):
    a = math.degrees(georef.metres_per_pixel / (6_371_008.8 * math.cos(math.radians(LAT0))))
    e = -math.degrees(georef.metres_per_pixel / 6_371_008.8)
    path.write_text(f"{a!r}\n0\n0\n{e!r}\n{LON0 + a / 2!r}\n{LAT0 + e / 2!r}\n")


def test_world_file_degrees_round_trip(tmp_path):
    georef = GeoReference(LAT0, LON0, MPP)
    rgb = _rgb(300, 400)
    Image.fromarray(rgb).save(tmp_path / "ortho.png")
    _degrees_world_file(tmp_path / "ortho.pgw", georef)
    src = open_tile_source(tmp_path / "ortho.png", tile_size_m=50, stride_m=25)
    assert src.px_m == pytest.approx((MPP, MPP), rel=1e-4)
    tiles = list(src)
    # 100-px tiles every 50 px: (400-100)/50+1 = 7 columns, (300-100)/50+1 = 5 rows
    assert len(tiles) == len(src) == 35
    for t in tiles:
        x, y = src.centre_pixel(t.tile_id)
        lat, lon = georef.pixel_to_latlon(x, y)  # an independent georeference
        assert abs(t.lat - lat) < 1e-9 and abs(t.lon - lon) < 1e-9
        px, py = georef.latlon_to_pixel(t.lat, t.lon)
        assert abs(px - x) < 1e-3 and abs(py - y) < 1e-3
    t = tiles[8]  # row 1, column 1: pixels [50:150, 50:150]
    np.testing.assert_array_equal(t.read(), rgb[50:150, 50:150])


def _utm_world_file(path, e0, n0):
    path.write_text(f"{MPP}\n0\n0\n{-MPP}\n{e0 + MPP / 2}\n{n0 - MPP / 2}\n")


def test_world_file_utm_with_crs_and_prj(tmp_path):
    pytest.importorskip("pyproj")
    from pyproj import CRS

    e0, n0, zone = latlon_to_utm(LAT0, LON0)
    e0, n0 = float(np.floor(e0)), float(np.floor(n0))
    Image.fromarray(_rgb(200, 240)).save(tmp_path / "utm.jpg")
    _utm_world_file(tmp_path / "utm.jgw", e0, n0)
    with pytest.raises(TileSourceError, match="--crs"):
        open_tile_source(tmp_path / "utm.jpg", tile_size_m=40, stride_m=20)
    src = open_tile_source(
        tmp_path / "utm.jpg", tile_size_m=40, stride_m=20, crs=f"EPSG:{zone.epsg}"
    )
    (tmp_path / "utm.prj").write_text(CRS.from_epsg(zone.epsg).to_wkt())
    src_prj = open_tile_source(tmp_path / "utm.jpg", tile_size_m=40, stride_m=20)
    tiles, tiles_prj = list(src), list(src_prj)
    assert len(tiles) == ((240 - 80) // 40 + 1) * ((200 - 80) // 40 + 1)
    for t, tp in zip(tiles, tiles_prj, strict=True):
        x, y = src.centre_pixel(t.tile_id)
        # pyproj's answer agrees with this project's own Karney UTM inverse
        lat, lon = utm_to_latlon(e0 + x * MPP, n0 - y * MPP, zone)
        assert abs(t.lat - lat) < 1e-8 and abs(t.lon - lon) < 1e-8
        assert (t.lat, t.lon) == (tp.lat, tp.lon)
        assert t.read().shape == (80, 80, 3)


def test_geotiff_matches_world_file(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    e0, n0, zone = latlon_to_utm(LAT0, LON0)
    e0, n0 = float(np.floor(e0)), float(np.floor(n0))
    rgb = _rgb(200, 240, seed=3)
    profile = dict(
        driver="GTiff",
        width=240,
        height=200,
        count=3,
        dtype="uint8",
        crs=f"EPSG:{zone.epsg}",
        transform=from_origin(e0, n0, MPP, MPP),
    )
    with rasterio.open(tmp_path / "ortho.tif", "w", **profile) as ds:
        ds.write(rgb.transpose(2, 0, 1))
    Image.fromarray(rgb).save(tmp_path / "same.png")
    _utm_world_file(tmp_path / "same.pgw", e0, n0)
    tif = list(open_tile_source(tmp_path / "ortho.tif", tile_size_m=40, stride_m=20))
    png = list(
        open_tile_source(
            tmp_path / "same.png", tile_size_m=40, stride_m=20, crs=f"EPSG:{zone.epsg}"
        )
    )
    assert len(tif) == len(png) > 0
    for a, b in zip(tif, png, strict=True):
        assert abs(a.lat - b.lat) < 1e-12 and abs(a.lon - b.lon) < 1e-12
        np.testing.assert_array_equal(a.read(), b.read())
    np.testing.assert_array_equal(tif[0].read(), rgb[:80, :80])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1\n2\n3\n", "6 finite numbers"),
        ("0.5\n0.1\n0\n-0.5\n10\n10\n", "rotated"),
        ("0.5\n0\n0\n0.5\n10\n10\n", "A>0, E<0"),
    ],
)
def test_bad_world_files(tmp_path, text, match):
    Image.fromarray(_rgb(50, 50)).save(tmp_path / "x.png")
    (tmp_path / "x.pgw").write_text(text)
    with pytest.raises(TileSourceError, match=match):
        open_tile_source(tmp_path / "x.png", tile_size_m=10, stride_m=5, crs="EPSG:32616")


def test_raster_smaller_than_a_tile_and_missing_world_file(tmp_path):
    Image.fromarray(_rgb(20, 20)).save(tmp_path / "x.png")
    with pytest.raises(TileSourceError, match="no world file"):
        open_tile_source(tmp_path / "x.png", tile_size_m=10)
    _degrees_world_file(tmp_path / "x.pgw", GeoReference(LAT0, LON0, MPP))
    with pytest.raises(TileSourceError, match="smaller than one"):
        open_tile_source(tmp_path / "x.png", tile_size_m=100)
    assert read_world_file(tmp_path / "x.pgw").a > 0
