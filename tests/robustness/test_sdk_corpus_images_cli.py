"""SDK corpus, images and CLI arguments (issue 21): every variant ends in a typed
``D4GEdgeError`` (the CLI: exit 2 and one ``error:`` line) or a correct answer; no traceback,
no hang (a time limit per case, :mod:`tests.robustness.sdk_case`).

Images go through the API (``Localizer.localize``, ``retrieve``, ``embed``) and the command
line (``d4g-edge localize FILE``); the arguments of ``localize``, ``info`` and ``bench`` are
each given missing, mistyped, out of range, NaN, inf and negative. A correct answer is
checked: finite, inside the bundle's area, the right tile for a query made from a tile.
Everything runs on a tiny real bundle (random conv encoders run by onnxruntime, a real
index), so the whole file takes seconds.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.robustness.sdk_case import Outcome, call, cli
from tests.sdk._models import (
    GROUND_HW,
    conv_onnx,
    degrees_world_file,
    pano_of_tile,
    student_config,
)

TIMEOUT_S = 30.0


# ---- the bundle and the checks of an answer ------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A bundle whose ground and satellite encoders share weights (a panorama made from a
    tile embeds like that tile), and a query made from tile 10."""
    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source
    from d4g_edge.localizer import Localizer

    d = tmp_path_factory.mktemp("sdk_corpus_images")
    rgb = np.random.default_rng(5).integers(0, 256, (96, 120, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ortho.png")
    degrees_world_file(d / "ortho.pgw", 40.0, -88.0, 0.5)
    src = open_tile_source(d / "ortho.png", tile_size_m=32, stride_m=8)
    ground = conv_onnx(d / "ground.onnx", student_config("ground"), seed=4)
    sat = conv_onnx(d / "satellite.onnx", student_config("satellite"), seed=4)
    bundle = build_index(src, sat, d / "bundle", ground=ground)
    tiles = list(src)
    tile = tiles[10]
    query = d / "query.png"
    Image.fromarray(pano_of_tile(tile.read())).save(query)
    loc = Localizer(bundle, threads=1)
    lat, lon = loc.bundle.tiles.lat, loc.bundle.tiles.lon
    return {
        "dir": d,
        "bundle": bundle,
        "loc": loc,
        "tile": tile,
        "query": query,
        "area": (float(lat.min()), float(lat.max()), float(lon.min()), float(lon.max())),
        "count": len(lat),
    }


def _in_area(world, lat, lon) -> bool:
    s, n, w, e = world["area"]
    return math.isfinite(lat) and math.isfinite(lon) and s <= lat <= n and w <= lon <= e


def _check_fix(world, fix: dict) -> None:
    """A correct answer: a position inside the bundle's area, finite scores; an answer that
    says "not in the map" (the lead's trust levels) need not carry a position."""
    if fix.get("status") == "not_in_map":
        assert fix.get("uncertainty_m") is None
        if fix.get("lat") is None or not math.isfinite(fix["lat"]):
            return
    assert _in_area(world, fix["lat"], fix["lon"]), fix
    assert fix["candidates"], fix
    for c in fix["candidates"]:
        assert _in_area(world, c["lat"], c["lon"]) and math.isfinite(c["score"]), c
    if fix.get("uncertainty_m") is not None:
        assert math.isfinite(fix["uncertainty_m"]) and fix["uncertainty_m"] >= 0


def _check_api(world, api: str, value) -> None:
    if api == "localize":
        _check_fix(world, value.to_dict())
    elif api == "retrieve":
        ids, scores = value[0], value[1]
        assert len(ids) >= 1 and ((0 <= ids) & (ids < world["count"])).all()
        assert np.isfinite(scores).all()
    else:  # embed: unit vectors
        z = np.asarray(value)
        assert z.ndim == 2 and np.isfinite(z).all()
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-4)


def _strict_json(line: str):
    def refuse(name):
        raise AssertionError(f"--json printed {name}, which is not JSON")

    return json.loads(line, parse_constant=refuse)


def _ok_or_typed(out: Outcome) -> None:
    assert out.kind in ("ok", "typed"), out.detail


# ---- image files ---------------------------------------------------------------------------


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b""))
        + _chunk(b"IEND", b"")
    )


def _png_rgb16() -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one; the bytes are made by hand)."""
    rgb16 = _pano().astype(">u2") * 257
    rows = b"".join(b"\0" + row.tobytes() for row in rgb16)  # filter type 0 per row
    ihdr = struct.pack(">IIBBBBB", rgb16.shape[1], rgb16.shape[0], 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def _pano() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (*GROUND_HW, 3), dtype=np.uint8)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    return _encode(Image.fromarray(_pano()), "JPEG", quality=95, exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [Image.fromarray(np.roll(_pano(), i, axis=1)) for i in range(3)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


def _truncated(fmt: str) -> bytes:
    data = _encode(Image.fromarray(_pano()), fmt)
    return data[: len(data) // 2]


def _bad_crc_png() -> bytes:
    data = bytearray(_encode(Image.fromarray(_pano()), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0xFF  # a flipped byte inside the compressed pixels
    return bytes(data)


def _multipage_tiff() -> bytes:
    pages = [Image.fromarray(_pano()), Image.fromarray(_pano()[::-1])]
    return _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def _array_image(arr: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    img = Image.fromarray(arr)
    return _encode(img.convert(mode) if mode else img, fmt)


# name -> (file name, bytes or a callable making the path, expected: "ok" | "typed" | "either")
FILES = {
    "empty_file": ("empty.jpg", b"", "typed"),
    "truncated_jpeg": ("cut.jpg", lambda: _truncated("JPEG"), "typed"),
    "truncated_png": ("cut.png", lambda: _truncated("PNG"), "typed"),
    "only_jpeg_magic": ("magic.jpg", b"\xff\xd8\xff", "typed"),
    "png_bad_crc": ("crc.png", _bad_crc_png, "typed"),
    "html_as_jpg": ("page.jpg", b"<html><body>403 Forbidden</body></html>", "typed"),
    "svg_text": ("vector.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "typed"),
    "png_named_jpg": ("really_png.jpg", lambda: _array_image(_pano()), "ok"),
    "jpeg_named_png": ("really_jpeg.png", lambda: _array_image(_pano(), "JPEG"), "ok"),
    "no_extension": ("noext", lambda: _array_image(_pano()), "ok"),
    "jpeg_trailing_garbage": ("tail.jpg", lambda: _array_image(_pano(), "JPEG") + b"\0" * 99, "ok"),
    "one_by_one": ("1x1.png", lambda: _array_image(np.full((1, 1, 3), 128, np.uint8)), "either"),
    "one_by_100000": (
        "wide.png",
        lambda: _array_image(np.zeros((1, 100_000, 3), np.uint8)),
        "either",
    ),
    "100000_by_one": (
        "tall.png",
        lambda: _array_image(np.zeros((100_000, 1, 3), np.uint8)),
        "either",
    ),
    "grayscale_8bit": ("gray.png", lambda: _array_image(_pano()[..., 0]), "ok"),
    "grayscale_jpeg": ("gray.jpg", lambda: _array_image(_pano()[..., 0], "JPEG"), "ok"),
    "sixteen_bit_png": (
        "deep.png",
        lambda: _array_image(_pano()[..., 0].astype(np.uint16) * 257),
        "ok",
    ),
    "sixteen_bit_tiff": (
        "deep.tif",
        lambda: _array_image(_pano()[..., 0].astype(np.uint16) * 257, "TIFF"),
        "ok",
    ),
    "sixteen_bit_rgb_png": ("deep_rgb.png", _png_rgb16, "ok"),
    "float_tiff": (
        "float.tif",
        lambda: _array_image(_pano()[..., 0].astype(np.float32) / 255, "TIFF"),
        "typed",
    ),
    "int32_tiff_big": (
        "int32.tif",
        lambda: _array_image(_pano()[..., 0].astype(np.int32) * 10**6, "TIFF"),
        "typed",
    ),
    "rgba_opaque": (
        "rgba.png",
        lambda: _array_image(np.dstack([_pano(), np.full(GROUND_HW, 255, np.uint8)])),
        "ok",
    ),
    "rgba_transparent": (
        "rgba_t.png",
        lambda: _array_image(np.dstack([_pano(), np.zeros(GROUND_HW, np.uint8)])),
        "either",
    ),
    "la": ("la.png", lambda: _array_image(_pano(), "PNG", "LA"), "ok"),
    "palette": ("pal.png", lambda: _array_image(_pano(), "PNG", "P"), "ok"),
    "palette_gif": ("pal.gif", lambda: _encode(Image.fromarray(_pano()), "GIF"), "ok"),
    "one_bit": ("bits.png", lambda: _array_image(_pano(), "PNG", "1"), "ok"),
    "cmyk_jpeg": ("cmyk.jpg", lambda: _array_image(_pano(), "JPEG", "CMYK"), "ok"),
    "cmyk_tiff": ("cmyk.tif", lambda: _array_image(_pano(), "TIFF", "CMYK"), "ok"),
    "animated_gif": ("anim.gif", _animated_gif, "ok"),
    "multipage_tiff": ("pages.tif", _multipage_tiff, "ok"),
    "exif_rotated": ("rotated.jpg", _exif_rotated, "ok"),
    "webp": ("pic.webp", lambda: _array_image(_pano(), "WEBP"), "ok"),
    "bmp": ("pic.bmp", lambda: _array_image(_pano(), "BMP"), "ok"),
    "bomb_over_2x_limit": ("bomb.png", lambda: _png_header_only(20_000, 20_000), "typed"),
    "bomb_between_1x_2x": ("bomb2.png", lambda: _png_header_only(10_000, 10_000), "typed"),
    "zero_width_header": ("zero.png", lambda: _png_header_only(0, 10), "typed"),
    "unicode_name": ("pä nö 東京.png", lambda: _array_image(_pano()), "ok"),
}

# special paths: name -> (a function of tmp_path making the path, expected)


def _dangling(tmp: Path) -> Path:
    (tmp / "dangling.jpg").symlink_to(tmp / "gone.jpg")
    return tmp / "dangling.jpg"


def _symlink_ok(tmp: Path) -> Path:
    (tmp / "target.png").write_bytes(_array_image(_pano()))
    (tmp / "link.png").symlink_to(tmp / "target.png")
    return tmp / "link.png"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "pipe.jpg")  # opening it would block forever: must be refused, not read
    return tmp / "pipe.jpg"


def _directory(tmp: Path) -> Path:
    (tmp / "frames.jpg").mkdir()
    return tmp / "frames.jpg"


PATHS = {
    "missing": (lambda tmp: tmp / "does_not_exist.jpg", "typed"),
    "dev_null": (lambda tmp: Path(os.devnull), "typed"),
    "directory": (_directory, "typed"),
    "dangling_symlink": (_dangling, "typed"),
    "symlink_to_image": (_symlink_ok, "ok"),
    "fifo": (_fifo, "typed"),
}


def _make_file(tmp: Path, name: str) -> tuple[Path, str]:
    if name in PATHS:
        make, expect = PATHS[name]
        return make(tmp), expect
    fname, data, expect = FILES[name]
    (tmp / fname).write_bytes(data() if callable(data) else data)
    return tmp / fname, expect


def _expect(out: Outcome, expect: str) -> None:
    _ok_or_typed(out)
    if expect != "either":
        assert out.kind == expect, f"expected {expect}, got {out.kind}: {out.detail}"


@pytest.mark.parametrize("name", sorted(FILES) + sorted(PATHS))
def test_sdk_corpus_images_files_api(world, tmp_path, name):
    path, expect = _make_file(tmp_path, name)
    out = call(lambda: world["loc"].localize(path), TIMEOUT_S)
    _expect(out, expect)
    if out.kind == "ok":
        _check_api(world, "localize", out.value)


@pytest.mark.parametrize("name", sorted(FILES) + sorted(PATHS))
def test_sdk_corpus_images_files_cli(world, tmp_path, name):
    path, expect = _make_file(tmp_path, name)
    out = cli(["localize", str(path), "--bundle", str(world["bundle"]), "--json"], TIMEOUT_S)
    _expect(out, expect)
    if out.kind == "ok":
        (line,) = out.stdout.splitlines()
        _check_fix(world, _strict_json(line))


# ---- in-memory images: arrays, bytes, PIL objects, other types -----------------------------


def _closed_pil():
    img = Image.fromarray(_pano())
    img.close()
    return img


def _lazy_truncated_pil():
    return Image.open(io.BytesIO(_truncated("JPEG")))


def _with_block_ended():
    with Image.open(io.BytesIO(_array_image(_pano()))) as img:
        pass
    return img


def _gif_frame_2():
    img = Image.open(io.BytesIO(_animated_gif()))
    img.seek(2)
    return img


def _pil(mode: str):
    return lambda: Image.fromarray(_pano()).convert(mode)


H, W = GROUND_HW
OBJECTS = {
    # numpy arrays of every dtype and shape
    "uint8_hwc": (lambda: _pano(), "ok"),
    "uint8_hw": (lambda: _pano()[..., 0], "typed"),
    "uint8_hw1": (lambda: _pano()[..., :1], "typed"),
    "uint8_hw4": (lambda: np.dstack([_pano(), _pano()[..., :1]]), "typed"),
    "uint8_chw": (lambda: np.ascontiguousarray(_pano().transpose(2, 0, 1)), "typed"),
    "uint8_batch_1hwc": (lambda: _pano()[None], "typed"),
    "uint8_1d": (lambda: _pano().ravel(), "typed"),
    "uint8_0d": (lambda: np.array(7, np.uint8), "typed"),
    "uint8_empty": (lambda: np.zeros((0, 0, 3), np.uint8), "typed"),
    "uint8_zero_width": (lambda: np.zeros((H, 0, 3), np.uint8), "typed"),
    "uint8_1x1": (lambda: np.full((1, 1, 3), 200, np.uint8), "either"),
    "uint8_1x100000": (lambda: np.zeros((1, 100_000, 3), np.uint8), "either"),
    "uint8_strided": (lambda: np.concatenate([_pano(), _pano()], 1)[:, ::2], "ok"),
    "uint8_fortran": (lambda: np.asfortranarray(_pano()), "ok"),
    "uint8_readonly": (lambda: _readonly(), "ok"),
    "uint8_constant": (lambda: np.full((H, W, 3), 255, np.uint8), "either"),
    "float32_unit": (lambda: _pano().astype(np.float32) / 255, "typed"),
    "float64_0_255": (lambda: _pano().astype(np.float64), "typed"),
    "float16": (lambda: _pano().astype(np.float16), "typed"),
    "float_nan": (lambda: np.full((H, W, 3), np.nan, np.float32), "typed"),
    "float_inf": (lambda: np.full((H, W, 3), np.inf), "typed"),
    "bool": (lambda: _pano() > 127, "typed"),
    "int8": (lambda: _pano().astype(np.int8), "typed"),
    "int16": (lambda: _pano().astype(np.int16), "typed"),
    "int32": (lambda: _pano().astype(np.int32), "typed"),
    "int64": (lambda: _pano().astype(np.int64), "typed"),
    "uint16": (lambda: _pano().astype(np.uint16) * 257, "typed"),
    "uint32": (lambda: _pano().astype(np.uint32), "typed"),
    "complex64": (lambda: _pano().astype(np.complex64), "typed"),
    "object": (lambda: _pano().astype(object), "typed"),
    "structured": (lambda: np.zeros((H, W, 3), dtype=[("a", np.uint8)]), "typed"),
    # bytes
    "bytes_png": (lambda: _array_image(_pano()), "ok"),
    "bytearray_jpeg": (lambda: bytearray(_array_image(_pano(), "JPEG")), "ok"),
    "memoryview_png": (lambda: memoryview(_array_image(_pano())), "ok"),
    "bytes_empty": (lambda: b"", "typed"),
    "bytes_random": (lambda: np.random.default_rng(0).bytes(5000), "typed"),
    "bytes_truncated_png": (lambda: _truncated("PNG"), "typed"),
    "bytes_bomb": (lambda: _png_header_only(20_000, 20_000), "typed"),
    # PIL images in every state and mode
    "pil_closed": (_closed_pil, "typed"),
    "pil_with_block_ended": (_with_block_ended, "typed"),
    "pil_lazy_truncated": (_lazy_truncated_pil, "typed"),
    "pil_zero_size": (lambda: Image.new("RGB", (0, 0)), "typed"),
    "pil_gif_frame_2": (_gif_frame_2, "ok"),
    "pil_rgb": (_pil("RGB"), "ok"),
    "pil_rgba": (_pil("RGBA"), "ok"),
    "pil_rgba_premultiplied": (_pil("RGBa"), "ok"),
    "pil_la": (_pil("LA"), "ok"),
    "pil_la_premultiplied": (lambda: Image.new("La", (W, H), (90, 255)), "ok"),
    "pil_l": (_pil("L"), "ok"),
    "pil_1": (_pil("1"), "ok"),
    "pil_p": (_pil("P"), "ok"),
    "pil_pa": (_pil("PA"), "ok"),
    "pil_i": (_pil("I"), "ok"),
    "pil_i16": (lambda: Image.fromarray(_pano()[..., 0].astype(np.uint16) * 257), "ok"),
    "pil_f": (_pil("F"), "typed"),
    "pil_cmyk": (_pil("CMYK"), "ok"),
    "pil_ycbcr": (_pil("YCbCr"), "ok"),
    "pil_lab": (_pil("LAB"), "ok"),
    "pil_hsv": (_pil("HSV"), "ok"),
    "pil_rgbx": (_pil("RGBX"), "ok"),
    # not an image at all
    "none": (lambda: None, "typed"),
    "int": (lambda: 12, "typed"),
    "nested_list": (lambda: _pano().tolist(), "typed"),
    "dict": (lambda: {"image": "q.jpg"}, "typed"),
    "str_empty": (lambda: "", "typed"),
    "str_missing": (lambda: "/nonexistent/frame.jpg", "typed"),
    "str_dev_null": (lambda: os.devnull, "typed"),
}


def _readonly() -> np.ndarray:
    a = _pano()
    a.setflags(write=False)
    return a


def _api(world, api: str, image):
    loc = world["loc"]
    if api == "localize":
        return loc.localize(image, top_k=3)
    if api == "retrieve":
        return loc.retrieve(image, top_k=3)
    return loc.embed(image)


@pytest.mark.parametrize("api", ["localize", "retrieve", "embed"])
@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_sdk_corpus_images_objects_api(world, name, api):
    make, expect = OBJECTS[name]
    out = call(lambda: _api(world, api, make()), TIMEOUT_S)
    _expect(out, expect)
    if out.kind == "ok":
        _check_api(world, api, out.value)


def test_sdk_corpus_images_query_of_a_tile_is_that_tile(world):
    """The reference case the variants are judged against: a correct, checked answer."""
    fix = world["loc"].localize(world["query"], top_k=3, heading=0.0)
    assert fix.candidates[0].tile_id == world["tile"].tile_id
    assert fix.lat == pytest.approx(world["tile"].lat) and fix.lon == pytest.approx(
        world["tile"].lon
    )


# ---- CLI arguments of localize, info and bench ---------------------------------------------


def _localize_argv(world, *extra: str) -> list[str]:
    return ["localize", str(world["query"]), "--bundle", str(world["bundle"]), *extra]


LOCALIZE_BAD = {
    # flag: values that must be refused when the flags are parsed (exit 2, one error line)
    "--top-k": ["0", "-1", "abc", "2.5", "nan", "inf", ""],
    "--heading": ["nan", "inf", "-inf", "north", "", "1e400", "NaN"],
    "--prior": [
        "40,-88",
        "40,-88,30,1",
        "a,b,c",
        "nan,-88,30",
        "40,nan,30",
        "40,-88,nan",
        "40,-88,inf",
        "40,-88,0",
        "40,-88,-30",
        "91,-88,30",
        "-91,-88,30",
        "40,181,30",
        "",
    ],
    "--altitude": ["nan", "inf", "0", "-50", "6000", "high", ""],
    "--pitch": ["nan", "-inf", "-1", "80", "90", "down", ""],
    "--truth": ["40", "40,-88,1", "nan,-88", "40,inf", "95,-88", "40,-200", "x,y", ""],
    "--threads": ["0", "-2", "1.5", "many", ""],
    "--backend": ["tensorflow", ""],
}
LOCALIZE_VALUE_FLAGS = sorted([*LOCALIZE_BAD, "--bundle", "--plot"])
BENCH_BAD = {"--queries": ["0", "-1", "1.5", "nan", "x", ""], "--threads": ["0", "-1", "x"]}

CLI_BAD = [
    (f"localize {f}={v!r}", ("localize", f, v)) for f, vs in LOCALIZE_BAD.items() for v in vs
] + [(f"bench {f}={v!r}", ("bench", f, v)) for f, vs in BENCH_BAD.items() for v in vs]


@pytest.mark.parametrize(
    ("command", "flag", "value"), [c for _, c in CLI_BAD], ids=[i for i, _ in CLI_BAD]
)
def test_sdk_corpus_cli_bad_values_refused_at_parse_time(world, tmp_path, command, flag, value):
    if command == "localize":
        argv = _localize_argv(world, f"{flag}={value}", "--json")
    else:
        argv = ["bench", "--bundle", str(world["bundle"]), f"{flag}={value}"]
    out = cli(argv, TIMEOUT_S)
    assert out.kind == "typed", out.detail
    assert out.stdout == "", "refused only after work was done"
    assert flag in out.detail, out.detail  # the one error line names the flag


@pytest.mark.parametrize("flag", LOCALIZE_VALUE_FLAGS)
def test_sdk_corpus_cli_localize_flag_without_value(world, flag):
    out = cli(_localize_argv(world, flag), TIMEOUT_S)
    assert out.kind == "typed" and out.stdout == "", out.detail


@pytest.mark.parametrize("flag", ["--bundle", "--queries", "--threads"])
def test_sdk_corpus_cli_bench_flag_without_value(flag):
    out = cli(["bench", flag], TIMEOUT_S)
    assert out.kind == "typed", out.detail


GOOD_LOCALIZE = {
    # extra flags that must give a correct answer
    "defaults": [],
    "top_k_1": ["--top-k", "1"],
    "top_k_more_than_tiles": ["--top-k", "100000"],
    "top_k_huge": ["--top-k", str(10**12)],
    "heading_0": ["--heading", "0"],
    "heading_negative": ["--heading", "-90"],
    "heading_720": ["--heading", "720"],
    "heading_huge": ["--heading", "1e300"],
    "threads_1": ["--threads", "1"],
    "threads_many": ["--threads", "64"],
    "truth_given": ["--truth", "40.0,-88.0"],
    "prior_wide": ["--prior", "40.0,-88.0,1000000"],
}


@pytest.mark.parametrize("name", sorted(GOOD_LOCALIZE))
def test_sdk_corpus_cli_localize_good_values(world, name):
    out = cli(_localize_argv(world, "--json", *GOOD_LOCALIZE[name]), TIMEOUT_S)
    assert out.kind == "ok", out.detail
    (line,) = out.stdout.splitlines()
    fix = _strict_json(line)
    _check_fix(world, fix)
    if name.startswith("top_k") or name == "defaults":
        assert len(fix["candidates"]) >= 1
    if name == "truth_given":
        assert math.isfinite(fix["error_m"])


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("prior_far_from_the_map", ["--prior", "0,0,10"]),
        ("prior_just_off_the_map", ["--prior", "40.01,-88.0,5"]),
        ("altitude_on_a_ground_bundle", ["--altitude", "100"]),
        ("pitch_on_a_ground_bundle", ["--pitch", "10"]),
        ("executorch_backend_onnx_bundle", ["--backend", "executorch"]),
    ],
)
def test_sdk_corpus_cli_localize_valid_flags_that_may_not_apply(world, name, extra):
    """Well-formed values the bundle may refuse (no tile near the prior, a drone flag for a
    ground model, a backend without its artifact): a typed error, or a checked answer."""
    out = cli(_localize_argv(world, "--json", *extra), TIMEOUT_S)
    _ok_or_typed(out)
    if out.kind == "ok":
        _check_fix(world, _strict_json(out.stdout.splitlines()[0]))


def test_sdk_corpus_cli_localize_plot_targets(world, tmp_path):
    pytest.importorskip("matplotlib")
    refused = {
        "missing_folder": tmp_path / "no" / "such" / "p.png",
        "a_folder": tmp_path,
        "unknown_type": tmp_path / "p.docx",
        "empty": "",
        "under_a_file": world["query"] / "p.png",
    }
    for name, target in refused.items():
        out = cli(_localize_argv(world, "--plot", str(target)), TIMEOUT_S)
        assert out.kind == "typed" and out.stdout == "", (name, out.detail)
    for name in ("p.png", "p.svg", "p.pdf", "p"):
        out = cli(_localize_argv(world, "--plot", str(tmp_path / name)), TIMEOUT_S)
        assert out.kind == "ok" and (tmp_path / name).stat().st_size > 0, (name, out.detail)


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("no_command", []),
        ("unknown_command", ["localise"]),
        ("localize_no_image", ["localize"]),
        ("localize_unknown_flag", ["localize", "q.jpg", "--fast"]),
        ("bench_unknown_flag", ["bench", "--gpu"]),
        ("info_unknown_flag", ["info", "--verbose-rows-please"]),
        ("info_two_bundles", ["info", "a", "b"]),
    ],
)
def test_sdk_corpus_cli_usage_errors(name, argv):
    out = cli(argv, TIMEOUT_S)
    assert out.kind == "typed", out.detail


def test_sdk_corpus_cli_version():
    out = cli(["--version"], TIMEOUT_S)
    assert out.kind == "ok" and out.stdout.startswith("d4g-edge ")


@pytest.mark.parametrize(
    "bundle", ["missing", "a_file", "empty_folder", "empty_string", "dev_null"]
)
@pytest.mark.parametrize("command", ["localize", "info", "bench"])
def test_sdk_corpus_cli_bad_bundle_argument(world, tmp_path, command, bundle):
    path = {
        "missing": str(tmp_path / "nowhere"),
        "a_file": str(world["query"]),
        "empty_folder": str(tmp_path),
        "empty_string": "",
        "dev_null": os.devnull,
    }[bundle]
    if command == "localize":
        argv = ["localize", str(world["query"]), "--bundle", path]
    elif command == "info":
        argv = ["info", path]
    else:
        argv = ["bench", "--bundle", path, "--queries", "1"]
    if bundle == "empty_string" and Path("manifest.json").is_file():  # "" is the current folder
        pytest.skip("run from a folder that is a bundle")
    out = cli(argv, TIMEOUT_S)
    assert out.kind == "typed", out.detail


def test_sdk_corpus_cli_info_and_bench_good(world):
    out = cli(["info", str(world["bundle"])], TIMEOUT_S)
    assert out.kind == "ok" and "verified" in out.stdout, out.detail
    out = cli(["info", str(world["bundle"]), "--json"], TIMEOUT_S)
    assert out.kind == "ok", out.detail
    _strict_json(out.stdout)
    out = cli(["bench", "--bundle", str(world["bundle"]), "--queries", "1", "--json"], TIMEOUT_S)
    assert out.kind == "ok", out.detail
    report = _strict_json(out.stdout)
    assert report["tiles"] == world["count"]


def test_sdk_corpus_cli_several_images_one_json_line_each(world, tmp_path):
    pytest.importorskip("matplotlib")
    second = tmp_path / "second.jpg"
    second.write_bytes(_array_image(_pano(), "JPEG"))
    argv = ["localize", str(world["query"]), str(second), "--bundle", str(world["bundle"])]
    argv += ["--json", "--plot", str(tmp_path / "p.png")]
    out = cli(argv, TIMEOUT_S)
    assert out.kind == "ok", out.detail
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        _check_fix(world, _strict_json(line))
    assert (tmp_path / "p_0.png").is_file() and (tmp_path / "p_1.png").is_file()


def _lossless(world, name: str, tmp: Path):
    """The tile query re-encoded without loss: the answer must still be that tile."""
    rgb = np.asarray(Image.open(world["query"]).convert("RGB"))
    if name == "rgba_opaque_png":
        return tmp / "qa.png", _array_image(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))
    if name == "png_named_jpg":
        return tmp / "q.jpg", _array_image(rgb)
    if name == "bmp_no_extension":
        return tmp / "q", _array_image(rgb, "BMP")
    if name == "tiff":
        return tmp / "q.tif", _array_image(rgb, "TIFF")
    if name == "webp_lossless":
        return tmp / "q.webp", _encode(Image.fromarray(rgb), "WEBP", lossless=True)
    raise KeyError(name)


LOSSLESS = ["png_named_jpg", "bmp_no_extension", "tiff", "webp_lossless", "rgba_opaque_png"]


@pytest.mark.parametrize("name", LOSSLESS)
def test_sdk_corpus_images_lossless_query_finds_its_tile(world, tmp_path, name):
    path, data = _lossless(world, name, tmp_path)
    path.write_bytes(data)
    out = call(lambda: world["loc"].localize(path, heading=0.0), TIMEOUT_S)
    assert out.kind == "ok", out.detail
    assert out.value.candidates[0].tile_id == world["tile"].tile_id
    argv = ["localize", str(path), "--bundle", str(world["bundle"]), "--heading", "0", "--json"]
    out = cli(argv, TIMEOUT_S)
    assert out.kind == "ok", out.detail
    assert _strict_json(out.stdout)["candidates"][0]["tile_id"] == world["tile"].tile_id


@pytest.mark.parametrize(
    "name", ["bytes", "bytearray", "pil", "pil_rgba", "fortran", "strided", "readonly"]
)
def test_sdk_corpus_images_lossless_objects_find_their_tile(world, name):
    rgb = np.asarray(Image.open(world["query"]).convert("RGB"))
    image = {
        "bytes": lambda: world["query"].read_bytes(),
        "bytearray": lambda: bytearray(world["query"].read_bytes()),
        "pil": lambda: Image.open(world["query"]),
        "pil_rgba": lambda: Image.fromarray(rgb).convert("RGBA"),
        "fortran": lambda: np.asfortranarray(rgb),
        "strided": lambda: np.repeat(rgb, 2, axis=1)[:, ::2],
        "readonly": lambda: np.asarray(Image.open(world["query"])),
    }[name]()
    out = call(lambda: world["loc"].localize(image, heading=0.0), TIMEOUT_S)
    assert out.kind == "ok", out.detail
    assert out.value.candidates[0].tile_id == world["tile"].tile_id
