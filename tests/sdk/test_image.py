"""d4g_edge.image: every kind of input either becomes uint8 RGB or raises a typed ImageError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from d4g_edge.errors import D4GEdgeError, ImageError
from d4g_edge.image import load_rgb


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)


def test_path_bytes_pil_and_array_agree(tmp_path, rgb):
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    for source in (path, str(path), path.read_bytes(), Image.open(path), rgb):
        out = load_rgb(source)
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb)


def test_error_hierarchy():
    assert issubclass(ImageError, D4GEdgeError)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"definitely not an image", "not an image"),
        (b"", "not an image"),
    ],
)
def test_non_image_bytes(data, match):
    with pytest.raises(ImageError, match=match):
        load_rgb(data)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_rgb(tmp_path / "nope.jpg")


def test_truncated_jpeg(tmp_path, rgb):
    big = np.repeat(np.repeat(rgb, 8, 0), 8, 1)
    data = _png(Image.fromarray(big), format="JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_rgb(path)


def test_decompression_bomb_by_argument(rgb):
    with pytest.raises(ImageError, match="decompression bomb"):
        load_rgb(_png(Image.fromarray(rgb)), max_pixels=100)
    with pytest.raises(ImageError, match="decompression bomb"):
        load_rgb(Image.fromarray(rgb), max_pixels=100)


@pytest.mark.parametrize("factor", [1.5, 3.0])  # Pillow warns below 2x its limit, errors above
def test_decompression_bomb_pillow_limit(monkeypatch, factor):
    img = Image.new("RGB", (100, 100))
    data = _png(img)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(100 * 100 / factor))
    with pytest.raises(ImageError, match="decompression bomb"):
        load_rgb(data)


def test_sixteen_bit_grayscale_scaled():
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    img = Image.fromarray(values)  # mode I;16
    out = load_rgb(_png(img))
    np.testing.assert_array_equal(out[..., 0], [[0, 1, 255, 128]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_cmyk_converted():
    img = Image.new("CMYK", (4, 3), (0, 255, 255, 0))  # pure red in CMYK
    out = load_rgb(_png(img, format="JPEG", quality=100))
    assert out.shape == (3, 4, 3)
    assert out[..., 0].min() > 200 and out[..., 1].max() < 60


def test_palette_and_grayscale(rgb):
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    out = load_rgb(_png(pal))
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = load_rgb(_png(Image.fromarray(gray)))
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, 2))


def test_alpha_opaque_dropped_transparent_on_black(rgb):
    alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
    out = load_rgb(_png(Image.fromarray(np.concatenate([rgb, alpha], 2))))
    np.testing.assert_array_equal(out, rgb)
    alpha[0, 0] = 0
    out = load_rgb(_png(Image.fromarray(np.concatenate([rgb, alpha], 2))))
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(out[1:], rgb[1:])


def test_exif_orientation_applied(rgb):
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_rgb(_png(img, format="JPEG", quality=100, exif=exif.tobytes()))
    assert out.shape == (rgb.shape[1], rgb.shape[0], 3)
    plain = np.asarray(Image.open(io.BytesIO(_png(img, format="JPEG", quality=100))))
    np.testing.assert_array_equal(out, np.rot90(plain, -1))


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.zeros((4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((4, 4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((0, 4, 3), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((4, 4, 3), np.float32), "must be uint8"),
        (np.zeros((4, 4, 3), np.uint16), "must be uint8"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN/inf"),
        (np.array([[[0, np.inf, 0]]]), "NaN/inf"),
    ],
)
def test_bad_arrays(arr, match):
    with pytest.raises(ImageError, match=match):
        load_rgb(arr)


def test_wrong_type():
    with pytest.raises(ImageError, match="expected a path"):
        load_rgb(12)


@pytest.mark.parametrize("lazy", [False, True])
def test_closed_pil_image(rgb, lazy):
    img = Image.open(io.BytesIO(_png(Image.fromarray(rgb)))) if lazy else Image.fromarray(rgb)
    img.close()
    with pytest.raises(ImageError, match="is closed"):
        load_rgb(img)
    with Image.open(io.BytesIO(_png(Image.fromarray(rgb)))) as img:
        pass  # the `with` block closes it
    with pytest.raises(ImageError, match="is closed"):
        load_rgb(img)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_lazily_opened_truncated_pil_image(fmt):
    noise = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    data = _png(Image.fromarray(noise), format=fmt)
    img = Image.open(io.BytesIO(data[: len(data) // 2]))  # header fine, pixels not read yet
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_rgb(img)


def test_premultiplied_la_mode():
    img = Image.new("La", (4, 3), (200, 255))  # Pillow cannot convert La to RGBA directly
    out = load_rgb(img)
    assert out.shape == (3, 4, 3) and (out == 200).all()
