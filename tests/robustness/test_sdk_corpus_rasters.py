"""SDK corpus, rasters and build-index command lines (issue 21): every variant ends in a typed
``D4GEdgeError`` (the CLI: exit 2 and one ``error:`` line) or a correct bundle; no traceback,
no hang (a time limit per case, :mod:`tests.robustness.sdk_case`).

Rasters: CRS missing, wrong or exotic (EPSG:3857, UTM, US feet, LAEA, NAD83, compound, a
local engineering CRS, a vertical CRS, garbage WKT), band counts 1/2/3/4/5, dtypes (uint16,
float32 with NaN, int8, int16, 1-bit), nodata (half, all; value, alpha, mask), tiny (1 x 1,
smaller than a tile, 7-pixel tiles), huge declared extents (a 1e6 m or 1e-9 m pixel, 10
degree pixels, a 0.1 mm stride), rotated and malformed world files, corrupt and truncated
files, XYZ folders with junk. Command lines: every build-index and merge flag given zero,
negative, NaN, inf, malformed or pointing at the wrong thing. A correct bundle is checked:
the tile count the case expects, every tile centre inside the raster's own footprint
(computed here with pyproj, not by the SDK), footprints of the asked ground size. Everything
runs with a tiny random conv encoder under onnxruntime, so the file takes seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.robustness.sdk_case import Outcome, call, cli
from tests.sdk._models import conv_onnx, degrees_world_file, student_config

rasterio = pytest.importorskip("rasterio")
pyproj = pytest.importorskip("pyproj")
pytest.importorskip("mercantile")

from rasterio.transform import from_origin  # noqa: E402

TIMEOUT_S = 30.0
LAT0, LON0, MPP = 40.0, -88.0, 0.5  # UTM zone 16N
UTM16 = "EPSG:32616"


@dataclass(frozen=True)
class Case:
    """``make(d)`` writes the raster(s) into ``d`` and returns the build-index flags; the
    answer must be ``expect`` ("typed" or "ok"), "ok" with ``tiles`` rows (None: any > 0)."""

    make: Callable[[Path], list[str]]
    expect: str = "typed"
    tiles: int | None = None


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png(d: Path, rgb=None, name="o.png", mode=None) -> Path:
    img = Image.fromarray(_rgb(200, 200) if rgb is None else rgb)
    (img.convert(mode) if mode else img).save(d / name)
    return d / name


def _utm_origin():
    t = pyproj.Transformer.from_crs("EPSG:4326", UTM16, always_xy=True)
    return (float(np.floor(v)) for v in t.transform(LON0, LAT0))


def _world(path: Path, a, e, x0, y0, b=0.0, d=0.0) -> None:
    """World file of a raster whose top-left *corner* is (x0, y0)."""
    path.write_text(f"{a!r}\n{d!r}\n{b!r}\n{e!r}\n{x0 + a / 2!r}\n{y0 + e / 2!r}\n")


def _deg(d: Path, rgb=None, name="o.png", mode=None, mpp=MPP, lat=LAT0, lon=LON0) -> list[str]:
    path = _png(d, rgb, name, mode)
    degrees_world_file(path.with_suffix(".wld"), lat, lon, mpp)
    return ["--tiles", str(path), "--tile-size-m", "40", "--stride-m", "20"]


def _utm_png(d: Path, crs_flag=True, px=MPP, size=200) -> list[str]:
    path = _png(d, _rgb(size, size))
    e0, n0 = _utm_origin()
    _world(path.with_suffix(".pgw"), px, -px, e0, n0)
    return ["--tiles", str(path), "--tile-size-m", "40"] + (["--crs", UTM16] if crs_flag else [])


def _tif(d: Path, bands: np.ndarray, crs=UTM16, px=MPP, name="o.tif", origin=None, **kw) -> Path:
    e0, n0 = origin or _utm_origin()
    count, h, w = bands.shape
    profile = dict(driver="GTiff", width=w, height=h, count=count, dtype=bands.dtype, **kw)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(d / name, "w", transform=from_origin(e0, n0, px, px), **profile) as ds:
        ds.write(bands)
    return d / name


def _tif_flags(path: Path, *extra: str) -> list[str]:
    return ["--tiles", str(path), "--tile-size-m", "40", "--stride-m", "20", *extra]


def _bands(count, dtype="uint8", h=200, w=200) -> np.ndarray:
    return np.random.default_rng(count).integers(0, 120, (count, h, w)).astype(dtype)


def _projected(d: Path, crs: str, lat: float, lon: float, px: float, size=200) -> list[str]:
    path = _png(d, _rgb(size, size))
    x0, y0 = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    _world(path.with_suffix(".pgw"), px, -px, x0, y0)
    return ["--tiles", str(path), "--tile-size-m", "40", "--crs", crs]


def _half_nodata(d: Path, how: str) -> list[str]:
    """360 x 360 px, columns < 170 nodata: 60 m tiles every 30 m, 5 x 5, 15 kept."""
    rgb = _rgb(360, 360)
    rgb[:, :170] = 9
    valid = np.ones((360, 360), bool)
    valid[:, :170] = False
    alpha = valid * np.uint8(255)
    if how == "value":
        path = _tif(d, rgb.transpose(2, 0, 1), nodata=9)
    elif how == "alpha":
        bands = np.dstack([rgb, alpha]).transpose(2, 0, 1)
        path = _tif(d, bands, photometric="RGB", alpha="YES")
    elif how == "png-alpha":
        path = _png(d, np.dstack([rgb, alpha]))
        degrees_world_file(path.with_suffix(".pgw"), LAT0, LON0, MPP)
    else:
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            path = _tif(d, rgb.transpose(2, 0, 1))
            with rasterio.open(path, "r+") as ds:
                ds.write_mask(valid)
    return ["--tiles", str(path), "--tile-size-m", "60", "--stride-m", "30"]


def _all_nodata(d: Path) -> list[str]:
    return _tif_flags(_tif(d, np.zeros((3, 200, 200), np.uint8), nodata=0))


def _palette(d: Path) -> list[str]:
    path = _tif(d, _bands(1), photometric="palette")
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, {k: (k, 255 - k, (3 * k) % 256, 255) for k in range(256)})
    return _tif_flags(path)


def _gray_alpha(d: Path) -> list[str]:
    bands = np.stack([_bands(1)[0], np.full((200, 200), 255, np.uint8)])
    path = _tif(d, bands)
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [rasterio.enums.ColorInterp.gray, rasterio.enums.ColorInterp.alpha]
    return _tif_flags(path)


def _one_bit(d: Path) -> list[str]:
    return _tif_flags(_tif(d, _bands(3) % 2, nbits=1))


def _float_nan(d: Path) -> list[str]:
    bands = _bands(3, "float32")
    bands[:, :50] = np.nan
    return _tif_flags(_tif(d, bands))


def _truncated(path: Path, keep=0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _junk(d: Path, name: str, data: bytes = b"\x00junk\xff" * 40) -> Path:
    (d / name).write_bytes(data)
    return d / name


def _no_georef(d: Path) -> list[str]:
    path = d / "plain.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8"
    ) as ds:
        ds.write(_bands(3, h=64, w=64))
    return _tif_flags(path)


def _local_crs(d: Path) -> list[str]:
    wkt = (
        'LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
    )
    return [*_utm_png(d, crs_flag=False), "--crs", wkt]


def _prj(d: Path, text: str | bytes) -> list[str]:
    flags = _utm_png(d, crs_flag=False)
    prj = d / "o.prj"
    prj.write_bytes(text) if isinstance(text, bytes) else prj.write_text(text)
    return flags


def _xyz(d: Path, tiles=((0, 0), (1, 0)), z=18, junk=False, ext="png", img=None) -> Path:
    import mercantile

    t0 = mercantile.tile(LON0, LAT0, z)
    root = d / "xyz"
    for dx, dy in tiles:
        folder = root / str(z) / str(t0.x + dx)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb(64, 64) if img is None else img).save(folder / f"{t0.y + dy}.{ext}")
    if junk:
        (root / "README.txt").write_text("tiles from somewhere")
        (root / ".DS_Store").write_bytes(b"\x00\x01")
        (root / "notes").mkdir()
        (root / str(z) / "abc").mkdir()
        (root / str(z) / str(t0.x) / "abc.png").write_bytes(b"x")
        (root / str(z) / str(t0.x) / "1.txt").write_text("x")
        (root / str(z) / "thumbs.db").write_bytes(b"x")
    return root


def _xyz_flags(root: Path, *extra: str) -> list[str]:
    return ["--tiles", str(root), *extra]


def _xyz_x(d: Path, x: int, z=3) -> list[str]:
    (d / "xyz" / str(z) / str(x)).mkdir(parents=True)
    Image.fromarray(_rgb(64, 64)).save(d / "xyz" / str(z) / str(x) / "1.png")
    return _xyz_flags(d / "xyz")


def _xyz_bad_tile(d: Path, data: bytes) -> list[str]:
    root = _xyz(d)
    next(root.rglob("*.png")).write_bytes(data)
    return _xyz_flags(root)


def _xyz_dup(d: Path) -> list[str]:
    root = _xyz(d)
    png = next(root.rglob("*.png"))
    Image.fromarray(_rgb(64, 64)).save(png.with_suffix(".jpg"))
    return _xyz_flags(root)


def _rotated(b: float):
    def make(d: Path) -> list[str]:
        path = _png(d)
        _world(path.with_suffix(".pgw"), 1e-5, -1e-5, LON0, LAT0, b=b)
        return ["--tiles", str(path), "--tile-size-m", "40"]

    return make


def _world_text(text: str | bytes):
    def make(d: Path) -> list[str]:
        path = _png(d)
        pgw = path.with_suffix(".pgw")
        pgw.write_bytes(text) if isinstance(text, bytes) else pgw.write_text(text)
        return ["--tiles", str(path), "--tile-size-m", "40"]

    return make


def _junk_png(d: Path) -> list[str]:
    path = _junk(d, "j.png")
    degrees_world_file(d / "j.pgw", LAT0, LON0, MPP)
    return ["--tiles", str(path), "--tile-size-m", "40"]


def _text_with_world_file(d: Path) -> list[str]:
    (d / "notes.txt").write_text("not an image")
    degrees_world_file(d / "notes.wld", LAT0, LON0, MPP)
    return ["--tiles", str(d / "notes.txt"), "--tile-size-m", "40"]


def _empty_dir(d: Path) -> Path:
    (d / "empty").mkdir()
    return d / "empty"


def _truncated_png(d: Path) -> list[str]:
    flags = _deg(d)
    _truncated(Path(flags[1]))
    return flags


def _coarse(d: Path) -> list[str]:
    """10-degree pixels: the whole world in 36 x 17 pixels."""
    path = _png(d, _rgb(17, 36))
    _world(path.with_suffix(".pgw"), 10.0, -10.0, -180.0, 85.0)
    return ["--tiles", str(path), "--tile-size-m", "40"]


RASTERS: dict[str, Case] = {
    # -- CRS: missing, exotic, wrong
    "degrees-no-crs": Case(_deg, "ok", 16),
    "degrees-crs-4326": Case(lambda d: [*_deg(d), "--crs", "EPSG:4326"], "ok", 16),
    "degrees-crs-nad83": Case(lambda d: [*_deg(d), "--crs", "EPSG:4269"], "ok", 16),
    "degrees-across-antimeridian": Case(lambda d: _deg(d, lon=179.9995), "ok", 16),
    "degrees-given-utm-crs": Case(lambda d: [*_deg(d), "--crs", UTM16]),
    "utm-world-file-crs": Case(_utm_png, "ok", 16),
    "utm-world-file-no-crs": Case(lambda d: _utm_png(d, crs_flag=False)),
    "utm-world-file-prj": Case(lambda d: _prj(d, pyproj.CRS(UTM16).to_wkt()), "ok", 16),
    "utm-compound-crs": Case(lambda d: [*_utm_png(d, False), "--crs", f"{UTM16}+5703"], "ok", 16),
    "utm-geotiff": Case(lambda d: _tif_flags(_tif(d, _bands(3))), "ok", 16),
    "utm-geotiff-no-crs": Case(lambda d: _tif_flags(_tif(d, _bands(3), crs=None))),
    "utm-geotiff-crs-override": Case(
        lambda d: _tif_flags(_tif(d, _bands(3), crs=None), "--crs", UTM16), "ok", 16
    ),
    "web-mercator": Case(lambda d: _projected(d, "EPSG:3857", 40.76, -73.97, 0.5), "ok", 4),
    "web-mercator-geotiff": Case(
        lambda d: _tif_flags(
            _tif(d, _bands(3), crs="EPSG:3857", origin=(-8234000.0, 4977000.0), px=0.5)
        ),
        "ok",
        4,
    ),
    "us-survey-feet": Case(lambda d: _projected(d, "EPSG:2263", 40.76, -73.97, 1.0), "ok", 4),
    "laea-europe": Case(lambda d: _projected(d, "EPSG:3035", 50.0, 10.0, 0.5), "ok", 16),
    "laea-europe-used-in-new-york": Case(lambda d: _projected(d, "EPSG:3035", 40.7, -74.0, 0.5)),
    "local-engineering-crs": Case(_local_crs),
    "vertical-crs": Case(lambda d: [*_utm_png(d, False), "--crs", "EPSG:5703"]),
    "garbage-crs-flag": Case(lambda d: [*_utm_png(d, False), "--crs", "EPSG:99999999"]),
    "empty-crs-flag": Case(lambda d: [*_utm_png(d, False), "--crs", ""]),
    "garbage-wkt-prj": Case(lambda d: _prj(d, 'PROJCS["broken",GEOGCS[')),
    "binary-prj": Case(lambda d: _prj(d, b"\xff\xfe\x00\x81junk")),
    # -- bands and dtypes
    "gray-1-band": Case(lambda d: _tif_flags(_tif(d, _bands(1))), "ok", 16),
    "palette-1-band": Case(_palette, "ok", 16),
    "gray-alpha-2-bands": Case(_gray_alpha, "ok", 16),
    "two-undefined-bands": Case(lambda d: _tif_flags(_tif(d, _bands(2)))),
    "rgba-4-bands": Case(
        lambda d: _tif_flags(_tif(d, _bands(4), photometric="RGB", alpha="YES")), "ok", 16
    ),
    "rgbn-4-bands": Case(lambda d: _tif_flags(_tif(d, _bands(4))), "ok", 16),
    "five-bands": Case(lambda d: _tif_flags(_tif(d, _bands(5))), "ok", 16),
    "uint16": Case(lambda d: _tif_flags(_tif(d, _bands(3, "uint16")))),
    "int16-1-band": Case(lambda d: _tif_flags(_tif(d, _bands(1, "int16")))),
    "int8": Case(lambda d: _tif_flags(_tif(d, _bands(3, "int8")))),
    "float32-nan": Case(_float_nan),
    "one-bit": Case(_one_bit),
    "png-16-bit-gray": Case(
        lambda d: _deg(d, (np.arange(200 * 200).reshape(200, 200) % 65535).astype(np.uint16)),
        "ok",
        16,
    ),
    "png-1-bit": Case(lambda d: _deg(d, mode="1"), "ok", 16),
    "png-palette": Case(lambda d: _deg(d, mode="P"), "ok", 16),
    "png-gray-alpha": Case(lambda d: _deg(d, mode="LA"), "ok", 16),
    "jpeg-cmyk": Case(lambda d: _deg(d, name="o.jpg", mode="CMYK"), "ok", 16),
    # -- nodata
    "half-nodata-value": Case(lambda d: _half_nodata(d, "value"), "ok", 15),
    "half-nodata-alpha-band": Case(lambda d: _half_nodata(d, "alpha"), "ok", 15),
    "half-nodata-mask-band": Case(lambda d: _half_nodata(d, "mask"), "ok", 15),
    "half-nodata-png-alpha": Case(lambda d: _half_nodata(d, "png-alpha"), "ok", 15),
    "all-nodata": Case(_all_nodata),
    "all-transparent-png": Case(lambda d: _deg(d, np.zeros((200, 200, 4), np.uint8))),
    # -- tiny
    "one-pixel-png": Case(lambda d: _deg(d, _rgb(1, 1))),
    "one-pixel-geotiff": Case(lambda d: _tif_flags(_tif(d, _bands(3, h=1, w=1)))),
    "smaller-than-a-tile": Case(lambda d: _deg(d, _rgb(50, 50))),
    "exactly-one-tile": Case(lambda d: _deg(d, _rgb(80, 80)), "ok", 1),
    "tile-of-7-pixels": Case(lambda d: _deg(d, _rgb(200, 200), mpp=40 / 7)),
    # -- huge or absurd declared extents
    "pixel-1e6-m": Case(lambda d: _utm_png(d, px=1e6)),
    "pixel-1e-9-m": Case(lambda d: _utm_png(d, px=1e-9)),
    "pixel-10-degrees": Case(_coarse),
    "pixel-1e-12-degrees": Case(lambda d: _deg(d, mpp=1e-7)),
    "stride-0.1-mm": Case(lambda d: [*_deg(d)[:-1], "0.0001"]),
    "stride-1e-9-m": Case(lambda d: [*_deg(d)[:-1], "1e-9"]),
    "max-tiles-below-count": Case(lambda d: [*_deg(d), "--max-tiles", "15"]),
    "max-tiles-at-count": Case(lambda d: [*_deg(d), "--max-tiles", "16"], "ok", 16),
    "stride-larger-than-tile": Case(lambda d: [*_deg(d)[:-1], "60"], "ok", 4),
    "near-the-pole": Case(lambda d: _deg(d, lat=89.999), "ok", None),
    # -- world files: rotated, flipped, malformed
    "rotated-world-file": Case(_rotated(1e-6)),
    "float-noise-rotation": Case(_rotated(1e-22), "ok", None),
    "south-up-world-file": Case(_world_text(f"1e-5\n0\n0\n1e-5\n{LON0}\n{LAT0}\n")),
    "east-left-world-file": Case(_world_text(f"-1e-5\n0\n0\n-1e-5\n{LON0}\n{LAT0}\n")),
    "zero-pixel-world-file": Case(_world_text(f"0\n0\n0\n-1e-5\n{LON0}\n{LAT0}\n")),
    "five-number-world-file": Case(_world_text("1e-5\n0\n0\n-1e-5\n-88\n")),
    "text-world-file": Case(_world_text("pixel size: 0.5 m\n")),
    "nan-world-file": Case(_world_text(f"nan\n0\n0\n-1e-5\n{LON0}\n{LAT0}\n")),
    "empty-world-file": Case(_world_text("")),
    "binary-world-file": Case(_world_text(b"\xff\xfe\x00\x81\x00")),
    # -- corrupt files
    "truncated-png": Case(_truncated_png),
    "junk-png": Case(_junk_png),
    "truncated-geotiff": Case(lambda d: _tif_flags(_truncated(_tif(d, _bands(3, h=400, w=400))))),
    "junk-geotiff": Case(lambda d: _tif_flags(_junk(d, "j.tif"))),
    "empty-geotiff": Case(lambda d: _tif_flags(_junk(d, "e.tif", b""))),
    "png-named-tif": Case(lambda d: _tif_flags(_png(d, name="p.tif"))),
    "geotiff-without-georeference": Case(_no_georef),
    "text-file-with-world-file": Case(_text_with_world_file),
    "missing-path": Case(lambda d: ["--tiles", str(d / "nowhere.tif"), "--tile-size-m", "40"]),
    "raster-without-tile-size": Case(lambda d: _deg(d)[:2]),
    # -- XYZ folders
    "xyz": Case(lambda d: _xyz_flags(_xyz(d)), "ok", 2),
    "xyz-with-junk": Case(lambda d: _xyz_flags(_xyz(d, junk=True)), "ok", 2),
    "xyz-tms-style-duplicates": Case(_xyz_dup, "ok", 2),
    "xyz-gray-1px-tile": Case(
        lambda d: _xyz_flags(_xyz(d, img=np.zeros((1, 1), np.uint8))), "ok", 2
    ),
    "xyz-corrupt-tile": Case(lambda d: _xyz_bad_tile(d, b"\x89PNG\r\n\x1a\nbroken")),
    "xyz-empty-tile-file": Case(lambda d: _xyz_bad_tile(d, b"")),
    "xyz-x-outside-zoom": Case(lambda d: _xyz_x(d, 8)),
    "xyz-zoom-99-only": Case(lambda d: _xyz_x(d, 1, z=99)),
    "xyz-missing-zoom-flag": Case(lambda d: _xyz_flags(_xyz(d), "--zoom", "12")),
    "xyz-no-zoom-folders": Case(lambda d: _xyz_flags(_empty_dir(d))),
}


# ---- command-line flags of build-index and merge ----------------------------------------

FLAGS: dict[str, list[str]] = {
    **{f"stride-{v}": ["--stride-m", v] for v in ("0", "-5", "nan", "inf", "abc", "")},
    **{f"tile-size-{v}": ["--tile-size-m", v] for v in ("0", "-40", "nan", "-inf", "1e400")},
    **{f"batch-size-{v}": ["--batch-size", v] for v in ("0", "-1", "1.5", "x")},
    **{f"zoom-{v}": ["--zoom", v] for v in ("-1", "29", "1.5", "z")},
    **{f"threads-{v}": ["--threads", v] for v in ("0", "-2", "many")},
    **{f"shard-{v}": ["--shard", v] for v in ("2/2", "1/0", "-1/3", "x", "1/2/3", "", "0/-1")},
    **{f"max-tiles-{v}": ["--max-tiles", v] for v in ("0", "-1", "1e3", "")},
    **{f"cell-deg-{v}": ["--cell-deg", v] for v in ("0", "-0.01", "nan", "1000", "1e-12")},
    "M-1": ["--M", "1"],
    "ef-0": ["--ef", "0"],
    "ef-construction-neg": ["--ef-construction", "-1"],
    "exact-threshold-neg": ["--exact-threshold", "-1"],
    "storage-bogus": ["--storage", "bogus"],
}


# ---- running a case ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sat(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("corpus_rasters_models")
    return {
        "satellite": conv_onnx(d / "satellite.onnx", student_config("satellite"), seed=2),
        "ground": conv_onnx(d / "ground.onnx", student_config("ground"), seed=2),
    }


def _check_ok(out: Path, flags: list[str], case: Case) -> None:
    from d4g_edge.bundle import Bundle

    b = Bundle.load(out)
    lat, lon, side = b.tiles.lat, b.tiles.lon, b.tiles.footprint_m
    if case.tiles is not None:
        assert len(b.tiles) == case.tiles, f"{len(b.tiles)} tiles, expected {case.tiles}"
    assert len(b.tiles) > 0
    assert np.isfinite(lat).all() and np.isfinite(lon).all()
    assert (np.abs(lat) <= 90).all() and (np.abs(lon) <= 180).all()
    if "--tile-size-m" in flags and not Path(flags[1]).is_dir():
        size = float(flags[flags.index("--tile-size-m") + 1])
        np.testing.assert_allclose(side, size)
        geo = b.manifest["georeference"]
        assert geo["tile_size_m"] == size and geo["source"]["tile_size_m"] == size
        # neighbouring centres are one stride of ground apart, whatever the CRS
        stride = geo["stride_m"]
        from d4g_edge.geo import haversine_m

        if len(lat) > 1:
            near = haversine_m(lat[0], lon[0], lat[1:], lon[1:]).min()
            assert near == pytest.approx(stride, rel=0.01) or near > stride
    expected_area = _area(flags)
    if expected_area is not None:
        s, n, w, e = expected_area
        assert ((lat >= s) & (lat <= n)).all(), (lat.min(), lat.max(), expected_area)
        assert ((lon >= w) & (lon <= e)).all(), (lon.min(), lon.max(), expected_area)


def _area(flags: list[str]) -> tuple[float, float, float, float] | None:
    """S, N, W, E of a raster from its own georeference (rasterio / world file + pyproj),
    independently of the SDK; None for XYZ folders."""
    path = Path(flags[flags.index("--tiles") + 1])
    if path.is_dir():
        return None
    crs = flags[flags.index("--crs") + 1] if "--crs" in flags else None
    if path.suffix == ".tif" and not any(path.with_suffix(s).exists() for s in (".tfw", ".wld")):
        with rasterio.open(path) as ds:
            t, w, h = ds.transform, ds.width, ds.height
            crs = crs or (ds.crs.to_string() if ds.crs else None)
            xs, ys = [t.c, t.c + t.a * w], [t.f, t.f + t.e * h]
    else:
        wf = next(p for s in (".pgw", ".wld") if (p := path.with_suffix(s)).exists())
        a, _, _, e, c, f = (float(v) for v in wf.read_text().split())
        with Image.open(path) as im:
            w, h = im.size
        xs, ys = [c - a / 2, c - a / 2 + a * w], [f - e / 2, f - e / 2 + e * h]
        if crs is None and path.with_suffix(".prj").exists():
            crs = path.with_suffix(".prj").read_text()
    gx, gy = np.meshgrid(np.linspace(*xs, 5), np.linspace(*ys, 5))
    if crs is None:
        lon, lat = gx, gy
    else:
        t = pyproj.Transformer.from_crs(pyproj.CRS(crs), "EPSG:4326", always_xy=True)
        lon, lat = t.transform(gx, gy)
    lon = np.where(lon > 180, lon - 360, lon)
    if lon.max() - lon.min() > 180:  # across the antimeridian: skip the longitude check
        return float(lat.min()) - 1e-9, float(lat.max()) + 1e-9, -180.0, 180.0
    eps = 1e-9
    return (
        float(lat.min()) - eps,
        float(lat.max()) + eps,
        float(lon.min()) - eps,
        float(lon.max()) + eps,
    )


def _run(argv: list[str]) -> Outcome:
    out = cli(argv, timeout_s=TIMEOUT_S)
    assert out.kind in ("ok", "typed"), f"{out.kind}: {out.detail}"
    if out.kind == "typed":
        assert out.code == 2
        errors = [line for line in out.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1, out.stderr
        assert "Traceback" not in out.stderr
    return out


def test_sdk_corpus_rasters_size():
    assert len(RASTERS) + len(FLAGS) + len(MERGE) >= 60
    kinds = {"typed": 0, "ok": 0}
    for case in RASTERS.values():
        kinds[case.expect] += 1
    assert kinds["ok"] >= 20 and kinds["typed"] >= 30, kinds


@pytest.mark.parametrize("name", sorted(RASTERS))
def test_sdk_corpus_rasters_cli(sat, tmp_path, name):
    """``d4g-edge build-index`` on each raster: the expected typed error, or a bundle whose
    tiles are where the raster is, of the asked ground size, as many as the case expects."""
    case = RASTERS[name]
    d = tmp_path / "in"
    d.mkdir()
    flags = case.make(d)
    out_dir = tmp_path / "bundle"
    argv = ["build-index", *flags, "--model", str(sat["satellite"]), "--out", str(out_dir)]
    out = _run([*argv, "--threads", "1"])
    assert out.kind == case.expect, f"expected {case.expect}, got {out.kind}: {out.detail}"
    if out.kind == "ok":
        _check_ok(out_dir, flags, case)
    else:
        assert not out_dir.exists()


@pytest.mark.parametrize("name", sorted(RASTERS))
def test_sdk_corpus_rasters_api(sat, tmp_path, name):
    """The same rasters through the API: ``open_tile_source`` + ``build_index`` end alike."""
    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source

    case = RASTERS[name]
    d = tmp_path / "in"
    d.mkdir()
    flags = case.make(d)

    def opt(flag, kind=str):
        return kind(flags[flags.index(flag) + 1]) if flag in flags else None

    def build():
        src = open_tile_source(
            opt("--tiles", Path),
            tile_size_m=opt("--tile-size-m", float),
            stride_m=opt("--stride-m", float),
            crs=opt("--crs"),
            zoom=opt("--zoom", int),
        )
        kw = {"max_tiles": opt("--max-tiles", int)} if "--max-tiles" in flags else {}
        return build_index(src, sat["satellite"], tmp_path / "bundle", threads=1, **kw)

    out = call(build, timeout_s=TIMEOUT_S)
    assert out.kind == case.expect, f"expected {case.expect}, got {out.kind}: {out.detail}"
    if out.kind == "ok":
        _check_ok(out.value, flags, case)


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_sdk_corpus_rasters_flags(sat, tmp_path, name):
    """Each bad flag value: exit 2 with one error line, before any tile is embedded."""
    flags = _deg(tmp_path)
    if name.startswith("zoom"):
        flags = _xyz_flags(_xyz(tmp_path))
    argv = ["build-index", *flags, "--model", str(sat["satellite"]), "--out", str(tmp_path / "b")]
    out = _run([*argv, *FLAGS[name]])
    assert out.kind == "typed", out.detail
    assert not (tmp_path / "b.parts").exists() and not (tmp_path / "b").exists()


# ---- --out, --model, --ground, and merge -------------------------------------------------


def _out_file(d: Path) -> list[str]:
    (d / "taken").write_text("x")
    return ["--out", str(d / "taken")]


def _out_foreign(d: Path) -> list[str]:
    (d / "photos").mkdir()
    (d / "photos" / "a.jpg").write_bytes(b"x")
    return ["--out", str(d / "photos")]


def _out_under_file(d: Path) -> list[str]:
    (d / "taken").write_text("x")
    return ["--out", str(d / "taken" / "bundle")]


def _model(d: Path, which: str) -> list[str]:
    if which == "missing":
        return ["--model", str(d / "nope.onnx")]
    return ["--model", str(_junk(d, "junk.onnx"))]


def _shards(d: Path, sat: Path, n=2, break_one=None) -> list[str]:
    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source

    flags = _deg(d)
    src = open_tile_source(Path(flags[1]), tile_size_m=40, stride_m=20)
    dirs = [build_index(src, sat, d / f"s{i}", shard=(i, n), threads=1) for i in range(n)]
    if break_one == "json":
        (dirs[0] / "shard.json").write_text("{not json")
    elif break_one == "schema":
        (dirs[0] / "shard.json").write_text('{"schema": 3}')
    elif break_one == "shard-field":
        meta = json.loads((dirs[0] / "shard.json").read_text())
        (dirs[0] / "shard.json").write_text(json.dumps({**meta, "shard": "0/2"}))
    elif break_one == "missing-file":
        (dirs[0] / "embeddings.npy").unlink()
    elif break_one == "flipped":
        data = bytearray((dirs[0] / "tiles.npz").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (dirs[0] / "tiles.npz").write_bytes(bytes(data))
    elif break_one == "only-one":
        dirs = dirs[:1]
    elif break_one == "twice":
        dirs = [dirs[0], dirs[0]]
    return [str(p) for p in dirs]


OUTS: dict[str, Callable[[Path], list[str]]] = {
    "out-is-a-file": _out_file,
    "out-is-a-foreign-folder": _out_foreign,
    "out-under-a-file": _out_under_file,
    "model-missing": lambda d: _model(d, "missing"),
    "model-junk": lambda d: _model(d, "junk"),
    "ground-missing": lambda d: ["--ground", str(d / "nope.onnx")],
}

MERGE = (
    "ok",
    "json",
    "schema",
    "shard-field",
    "missing-file",
    "flipped",
    "only-one",
    "twice",
    "out-is-a-file",
    "not-a-shard",
)


@pytest.mark.parametrize("name", sorted(OUTS))
def test_sdk_corpus_rasters_out_and_models(sat, tmp_path, name):
    flags = _deg(tmp_path)
    extra = OUTS[name](tmp_path)
    model = [] if "--model" in extra else ["--model", str(sat["satellite"])]
    out = ["--out", str(tmp_path / "b")] if "--out" not in extra else []
    res = _run(["build-index", *flags, *model, *out, *extra])
    assert res.kind == "typed", res.detail
    assert not list(tmp_path.glob("*.parts"))


@pytest.mark.parametrize("name", MERGE)
def test_sdk_corpus_rasters_merge(sat, tmp_path, name):
    if name == "not-a-shard":
        dirs = [str(tmp_path)]
    else:
        dirs = _shards(tmp_path, sat["satellite"], break_one=name)
    out = ["--out", str(tmp_path / "m")]
    if name == "out-is-a-file":
        out = _out_file(tmp_path)
    res = _run(["merge", *dirs, *out, "--ground", str(sat["ground"])])
    assert res.kind == ("ok" if name == "ok" else "typed"), res.detail
    if name == "ok":
        from d4g_edge.bundle import Bundle

        assert len(Bundle.load(tmp_path / "m").tiles) == 16
