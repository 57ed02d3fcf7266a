"""d4g_edge.build.tiles: XYZ folders, world-file images (degrees, UTM, .prj) and GeoTIFFs yield
tiles whose centres round-trip to the pixels they were cut from."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from d4g_edge.build.tiles import open_tile_source
from d4g_edge.build.tiles.raster import read_world_file
from d4g_edge.build.tiles.xyz import XYZTileSource, xyz_tile_id
from d4g_edge.errors import TileSourceError
from d4g_edge.geo import GeoReference
from train.datasets.utm import latlon_to_utm, utm_to_latlon

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


# ---- issue 21, items 17, 18, 20: ground metres, no silent hangs, nodata ---------------------

NYC_LAT, NYC_LON = 40.76, -73.97


def _ground_side_m(src, tile_id, crs):
    """Ground metres across a tile's box (west-east, north-south edges' midpoints), measured
    independently: pyproj to WGS84, then haversine."""
    from pyproj import Transformer

    from d4g_edge.geo import haversine_m

    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    r = src.grid.row_of(tile_id)
    x0, y0, x1, y1 = src.grid.boxes(r)[tile_id - src.grid.starts[r]]
    a = src.affine
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    (w_lon, e_lon, c_lon, _), (w_lat, e_lat, n_lat, s_lat) = to_ll.transform(
        *a(np.array([x0, x1, xm, xm]), np.array([ym, ym, y0, y1]))
    )
    return (
        float(haversine_m(w_lat, w_lon, e_lat, e_lon)),
        float(haversine_m(n_lat, c_lon, s_lat, c_lon)),
    )


def _projected_world_file(path, x0, y0, px):
    path.write_text(f"{px!r}\n0\n0\n{-px!r}\n{x0 + px / 2!r}\n{y0 - px / 2!r}\n")


@pytest.mark.parametrize(
    ("crs", "px"),
    [("EPSG:3857", 0.5), ("EPSG:2263", 1.0)],  # Web Mercator; NY State Plane in US feet
)
def test_projected_rasters_are_tiled_in_ground_metres(tmp_path, crs, px):
    """Item 17: a "60 m" tile of an EPSG:3857 raster at 40.76 N covers 60 m of ground (not
    60 Mercator units = 45 m), and a raster in US survey feet is read in metres."""
    from pyproj import Transformer

    x0, y0 = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(NYC_LON, NYC_LAT)
    Image.fromarray(_rgb(400, 400)).save(tmp_path / "m.png")
    _projected_world_file(tmp_path / "m.pgw", x0, y0, px)
    src = open_tile_source(tmp_path / "m.png", tile_size_m=60, stride_m=30, crs=crs)
    tiles = list(src)
    ground_px = _ground_side_m(src, 0, crs)[0] / (src.grid.tx[0])  # ground metres per pixel
    per_axis = math.floor((400 * ground_px - 60) / 30) + 1
    assert len(tiles) == len(src) == per_axis**2
    for t in (tiles[0], tiles[per_axis + 1], tiles[-1]):
        assert t.footprint_m == 60
        we, ns = _ground_side_m(src, t.tile_id, crs)
        assert we == pytest.approx(60, rel=3e-3) and ns == pytest.approx(60, rel=3e-3)
    from d4g_edge.geo import haversine_m

    step = haversine_m(tiles[0].lat, tiles[0].lon, tiles[1].lat, tiles[1].lon)
    assert step == pytest.approx(30, rel=3e-3)
    d = src.describe()
    assert (d["tile_size_m"], d["stride_m"], d["crs"]) == (60.0, 30.0, crs)
    if crs == "EPSG:3857":  # grid units per ground metre: 1/cos(latitude)
        k = 1 / math.cos(math.radians(NYC_LAT))
        assert d["crs_units_per_ground_m"] == pytest.approx([k, k], rel=2e-3)
    assert tiles[0].read().shape[:2] == (round(src.grid.tx[0]),) * 2


def test_degree_check_covers_every_corner(tmp_path):
    """Item 18: a world file whose top-left corner looks like degrees but whose extent runs
    past 180 degrees of longitude is not read as degrees."""
    Image.fromarray(_rgb(400, 400)).save(tmp_path / "x.png")
    (tmp_path / "x.pgw").write_text("0.5\n0\n0\n-0.5\n10.25\n45.25\n")  # x 10..210
    with pytest.raises(TileSourceError, match=r"not degrees.*--crs"):
        open_tile_source(tmp_path / "x.png", tile_size_m=50)


def test_geotiff_in_utm_without_crs_is_refused(tmp_path):
    """Item 18: UTM coordinates in a GeoTIFF with no CRS were read as degrees (5e12 tiles)."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    profile = dict(driver="GTiff", width=64, height=64, count=3, dtype="uint8")
    with rasterio.open(
        tmp_path / "u.tif", "w", transform=from_origin(585000, 4512000, 0.5, 0.5), **profile
    ) as ds:
        ds.write(_rgb(64, 64).transpose(2, 0, 1))
    with pytest.raises(TileSourceError, match=r"not degrees.*pass its CRS, e.g. --crs"):
        open_tile_source(tmp_path / "u.tif", tile_size_m=20)
    from pyproj import Transformer

    src = open_tile_source(tmp_path / "u.tif", tile_size_m=20, crs="EPSG:32618")  # its CRS
    tile = next(iter(src))
    x, y = src.centre_pixel(0)
    lon, lat = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True).transform(
        585000 + 0.5 * x, 4512000 - 0.5 * y
    )
    assert (tile.lat, tile.lon) == pytest.approx((lat, lon), abs=1e-9)


@pytest.mark.parametrize(
    ("tile", "stride"),
    [(50, 0), (50, -5), (50, float("nan")), (50, float("inf")), (0, 10), (-1, None)],
)
def test_bad_tile_size_or_stride_is_an_error(tmp_path, tile, stride):
    """Item 19: a zero stride was silently replaced by half the tile size."""
    Image.fromarray(_rgb(300, 300)).save(tmp_path / "o.png")
    _degrees_world_file(tmp_path / "o.pgw", GeoReference(LAT0, LON0, MPP))
    with pytest.raises(TileSourceError, match="must be a number of metres > 0"):
        open_tile_source(tmp_path / "o.png", tile_size_m=tile, stride_m=stride)


def test_tile_count_is_counted_not_listed(tmp_path):
    """Item 18: a 0.1 mm stride is counted at once (rows x columns), never listed; a grid
    too tall even to count row by row is refused with its size."""
    Image.fromarray(_rgb(300, 300)).save(tmp_path / "o.png")
    _degrees_world_file(tmp_path / "o.pgw", GeoReference(LAT0, LON0, MPP))
    src = open_tile_source(tmp_path / "o.png", tile_size_m=50, stride_m=1e-4)
    per_axis = (150 - 50) / 1e-4 + 1
    assert len(src) == pytest.approx(per_axis**2, rel=1e-3)
    with pytest.raises(TileSourceError, match=r"rows of tiles.*increase --stride-m"):
        open_tile_source(tmp_path / "o.png", tile_size_m=50, stride_m=1e-9)


def _half_nodata_raster(tmp_path, kind):
    """360 x 360 px at 0.5 m (tiles 120 px every 60 px: 5 x 5) whose columns x < 170 are
    nodata, marked the ``kind`` way. Columns 0-1 of tiles are > 50 % nodata, column 2 is
    50/120."""
    rgb = _rgb(360, 360, seed=4)
    rgb[:, :170] = 7  # the nodata value, where a nodata value marks it
    valid = np.ones((360, 360), bool)
    valid[:, :170] = False
    georef = GeoReference(LAT0, LON0, MPP)
    if kind == "png-alpha":
        Image.fromarray(np.dstack([rgb, valid * np.uint8(255)])).save(tmp_path / "n.png")
        _degrees_world_file(tmp_path / "n.pgw", georef)
        return tmp_path / "n.png", rgb
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    a = math.degrees(MPP / (6_371_008.8 * math.cos(math.radians(LAT0))))
    e = math.degrees(MPP / 6_371_008.8)
    profile = dict(
        driver="GTiff",
        width=360,
        height=360,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(LON0, LAT0, a, e),
    )
    path = tmp_path / "n.tif"
    if kind == "nodata-value":
        with rasterio.open(path, "w", count=3, nodata=7, **profile) as ds:
            ds.write(rgb.transpose(2, 0, 1))
    elif kind == "alpha-band":
        with rasterio.open(path, "w", count=4, photometric="RGB", alpha="YES", **profile) as ds:
            ds.write(np.dstack([rgb, valid * np.uint8(255)]).transpose(2, 0, 1))
    else:  # an internal GDAL mask band
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            with rasterio.open(path, "w", count=3, **profile) as ds:
                ds.write(rgb.transpose(2, 0, 1))
                ds.write_mask(valid)
    return path, rgb


@pytest.mark.parametrize("kind", ["nodata-value", "alpha-band", "mask-band", "png-alpha"])
def test_mostly_nodata_tiles_are_skipped(tmp_path, kind):
    """Item 20: of a half-nodata raster's 25 tiles, the 10 that are > 50 % nodata raise
    NoDataTile (a build skips them); a kept tile's nodata pixels are black, not the value."""
    from d4g_edge.build.tiles.nodata import NoDataTile

    path, rgb = _half_nodata_raster(tmp_path, kind)
    src = open_tile_source(path, tile_size_m=60, stride_m=30)
    assert len(src) == 25
    kept, skipped = {}, []
    for t in src:
        try:
            kept[t.tile_id] = t.read()
        except NoDataTile as err:
            assert "nodata" in str(err)
            skipped.append(t.tile_id)
    assert sorted(skipped) == [r * 5 + c for r in range(5) for c in (0, 1)]
    third = kept[2]  # pixels 120..240: 50 nodata columns, then the raster
    assert (third[:, :50] == 0).all()
    np.testing.assert_array_equal(third[:, 50:], rgb[:120, 170:240])


def test_geotiff_gray_and_palette_bands_become_rgb(tmp_path):
    """One gray band is replicated, a palette band expanded through its colour map (as Pillow
    does for images); 16-bit and two-band rasters are refused when opened, not mid-build."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    e0, n0, zone = latlon_to_utm(LAT0, LON0)
    gray = np.random.default_rng(2).integers(0, 256, (1, 120, 120), dtype=np.uint8)
    profile = dict(driver="GTiff", width=120, height=120, crs=f"EPSG:{zone.epsg}")
    profile["transform"] = from_origin(float(np.floor(e0)), float(np.floor(n0)), MPP, MPP)
    with rasterio.open(tmp_path / "g.tif", "w", count=1, dtype="uint8", **profile) as ds:
        ds.write(gray)
    tile = next(iter(open_tile_source(tmp_path / "g.tif", tile_size_m=40)))
    np.testing.assert_array_equal(tile.read(), np.repeat(gray[0, :80, :80, None], 3, axis=2))
    cmap = {k: (k, 255 - k, (7 * k) % 256, 255) for k in range(256)}
    with rasterio.open(
        tmp_path / "p.tif", "w", count=1, dtype="uint8", photometric="palette", **profile
    ) as ds:
        ds.write(gray)
        ds.write_colormap(1, cmap)
    lut = np.array([cmap[k][:3] for k in range(256)], np.uint8)
    tile = next(iter(open_tile_source(tmp_path / "p.tif", tile_size_m=40)))
    np.testing.assert_array_equal(tile.read(), lut[gray[0, :80, :80]])
    for count, dtype, match in ((3, "uint16", "uint16 pixels"), (2, "uint8", "2 band")):
        with rasterio.open(tmp_path / "x.tif", "w", count=count, dtype=dtype, **profile) as ds:
            ds.write(np.zeros((count, 120, 120), dtype))
        with pytest.raises(TileSourceError, match=match):
            open_tile_source(tmp_path / "x.tif", tile_size_m=40)
