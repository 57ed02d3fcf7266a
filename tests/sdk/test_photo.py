"""d4g_edge.photo: pinhole photos cut from panoramas, put back, and their FoV from EXIF.

Expected values come from the geometry (where a landmark's azimuth lands by tan, the slope
of a rolled horizon, the CIPA definition of the 35 mm equivalent), never from the module.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from d4g_edge.config import EncoderConfig, ViewInput
from d4g_edge.errors import D4GEdgeError, ImageError
from d4g_edge.photo import (
    FILL_RGB,
    CameraError,
    canvas_for,
    horizontal_fov_from_exif,
    pano_to_pinhole,
    photo_to_pano,
)
from d4g_edge.preprocess import crop_rows

GREY, RED = (90, 90, 90), (250, 10, 10)


def _angles(h: int, w: int, band=(-90.0, 90.0)):
    """Azimuth (cols) and elevation (rows) in degrees of every pixel centre, by the convention
    written in the world renderer: north at W/2, clockwise; the top row at the band's top."""
    az = (np.arange(w) + 0.5) * 360.0 / w - 180.0
    el = band[1] - (np.arange(h) + 0.5) * (band[1] - band[0]) / h
    return az, el


def _smooth_pano(h=256, w=512) -> np.ndarray:
    """Low-frequency colours (so two bilinear resamplings barely change them)."""
    az, el = np.meshgrid(np.radians(_angles(h, w)[0]), np.radians(_angles(h, w)[1]))
    chans = [
        128 + 90 * np.sin(az) * np.cos(el),
        128 + 90 * np.cos(2 * az + 0.5) * np.cos(el),
        128 + 100 * np.sin(el),
    ]
    return np.stack(chans, axis=2).round().astype(np.uint8)


def _red(img: np.ndarray) -> np.ndarray:
    return (img[..., 0] > 200) & (img[..., 1] < 60)


def test_fill_is_the_imagenet_mean_as_uint8():
    assert FILL_RGB == (round(0.485 * 255), round(0.456 * 255), round(0.406 * 255))


@pytest.mark.parametrize("heading", [90.0, 60.0, -20.0])
def test_a_column_at_azimuth_90_lands_where_tan_says(heading):
    pano = np.full((128, 720, 3), GREY, np.uint8)
    az, _ = _angles(128, 720)
    pano[:, np.abs(az - 90.0) < 1.0] = RED  # a landmark 2 degrees wide, due east
    w = 401
    photo = pano_to_pinhole(pano, fov_deg=90, heading_deg=heading, size=(301, w))
    cols = np.flatnonzero(_red(photo[150]))
    offset = 90.0 - heading
    if abs(offset) >= 45.0:
        assert cols.size == 0  # outside the 90-degree view
        return
    # pinhole: f = (w / 2) / tan(45) = w / 2; a ray offset a from the axis is at f tan(a)
    expected = w / 2 + (w / 2) * math.tan(math.radians(offset)) - 0.5
    assert cols.size > 0
    assert abs(cols.mean() - expected) < 1.5, (cols.mean(), expected)


def test_heading_60_fov_90_puts_east_at_tan30_right_of_centre():
    pano = np.full((128, 720, 3), GREY, np.uint8)
    pano[:, np.abs(_angles(128, 720)[0] - 90.0) < 1.0] = RED
    photo = pano_to_pinhole(pano, fov_deg=90, heading_deg=60, size=(480, 640))
    centre = np.flatnonzero(_red(photo[240])).mean() + 0.5
    assert centre == pytest.approx(320 + 320 * math.tan(math.radians(30)), abs=1.5)  # 504.8


def test_wider_than_120_is_cylindrical_unless_asked_for_a_pinhole():
    pano = np.full((128, 720, 3), GREY, np.uint8)
    pano[:, np.abs(_angles(128, 720)[0] - 90.0) < 1.0] = RED
    w = 601  # the landmark is 60 degrees right of a 150-degree view's axis (heading 30)
    wide = pano_to_pinhole(pano, fov_deg=150, heading_deg=30, size=(200, w))
    centre = np.flatnonzero(_red(wide[100])).mean() + 0.5
    assert centre == pytest.approx(w / 2 + w / 2 * 60 / 75, abs=1.5)  # evenly spaced angles
    pin = pano_to_pinhole(pano, fov_deg=150, heading_deg=30, size=(200, w), projection="pinhole")
    centre = np.flatnonzero(_red(pin[100])).mean() + 0.5
    tan = math.tan(math.radians(60)) / math.tan(math.radians(75))
    assert centre == pytest.approx(w / 2 + w / 2 * tan, abs=1.5)
    level = pano_to_pinhole(pano, fov_deg=120, heading_deg=60, size=(200, w))  # still pinhole
    centre = np.flatnonzero(_red(level[100])).mean() + 0.5
    tan = math.tan(math.radians(30)) / math.tan(math.radians(60))
    assert centre == pytest.approx(w / 2 + w / 2 * tan, abs=1.5)


def test_pitch_up_puts_a_ring_at_that_elevation_on_the_centre_row():
    pano = np.full((360, 720, 3), GREY, np.uint8)
    _, el = _angles(360, 720)
    pano[np.abs(el - 20.0) < 0.5] = RED
    photo = pano_to_pinhole(pano, fov_deg=60, heading_deg=33, pitch_deg=20, size=(200, 200))
    rows = np.flatnonzero(_red(photo[:, 100]))
    assert rows.size and abs(rows.mean() + 0.5 - 100) < 1.0
    level = pano_to_pinhole(pano, fov_deg=60, heading_deg=33, size=(200, 200))
    # level camera: elevation 20 is f tan(20) above the centre, f = 100 / tan(30)
    rows = np.flatnonzero(_red(level[:, 100]))
    f = 100 / math.tan(math.radians(30))
    assert abs(rows.mean() + 0.5 - (100 - f * math.tan(math.radians(20)))) < 1.0


def test_roll_turns_the_horizon_counter_clockwise():
    pano = np.full((360, 720, 3), GREY, np.uint8)
    _, el = _angles(360, 720)
    pano[el < 0] = (30, 30, 30)  # dark ground below the horizon
    roll, h, w = 8.0, 300, 400
    photo = pano_to_pinhole(pano, fov_deg=90, heading_deg=0, roll_deg=roll, size=(h, w))
    for col in (50, 200, 350):
        horizon = np.flatnonzero(photo[:, col, 0] < 60)[0]  # first ground row
        # the horizon is the line y = x tan(roll) through the centre (y up, x right)
        expected = h / 2 - (col + 0.5 - w / 2) * math.tan(math.radians(roll))
        assert abs(horizon - expected) < 1.5, (col, horizon, expected)


@pytest.mark.parametrize(
    ("fov", "heading", "pitch", "roll", "size"),
    [
        (90.0, 200.0, 7.0, 3.0, (480, 640)),
        (60.0, -170.0, -10.0, -2.0, (360, 480)),
        (120.0, 10.0, 0.0, 0.0, (480, 640)),
        (150.0, 10.0, 0.0, 0.0, (480, 640)),  # cylindrical from here on
        (180.0, 95.0, 4.0, 1.0, (240, 640)),
        (360.0, 0.0, 0.0, 0.0, (300, 1024)),
    ],
)
def test_photo_back_into_the_canvas_reproduces_the_panorama(fov, heading, pitch, roll, size):
    pano = _smooth_pano()
    pose = dict(fov_deg=fov, heading_deg=heading, pitch_deg=pitch, roll_deg=roll)
    photo = pano_to_pinhole(pano, size=size, **pose)
    canvas, mask = photo_to_pano(photo, out_size=pano.shape[:2], **pose)
    assert mask.dtype == bool and 0.02 < mask.mean() < 1.0
    diff = np.abs(canvas.astype(int) - pano.astype(int))[mask]
    assert diff.mean() < 1.0 and diff.max() <= 8, (diff.mean(), diff.max())
    assert (canvas[~mask] == FILL_RGB).all()
    # the same photo put at another heading does not fit: the check above can fail
    moved = {**pose, "heading_deg": heading + 20}
    wrong, wmask = photo_to_pano(photo, out_size=pano.shape[:2], **moved)
    assert np.abs(wrong.astype(int) - pano.astype(int))[wmask].mean() > 5


def test_mask_spans_the_field_of_view_around_the_heading():
    h, w, heading = 180, 720, 120.0
    photo = np.full((300, 400, 3), 200, np.uint8)
    _, mask = photo_to_pano(photo, fov_deg=90, heading_deg=heading, out_size=(h, w))
    az, _ = _angles(h, w)
    inside = az[mask[h // 2]]
    assert inside.min() == pytest.approx(heading - 45, abs=1.0)
    assert inside.max() == pytest.approx(heading + 45, abs=1.0)
    # vertically: 2 atan(300 / 400 * tan 45) = 73.7 degrees at the centre column
    _, el = _angles(h, w)
    col = int((heading + 180) / 360 * w)
    assert el[mask[:, col]].max() == pytest.approx(math.degrees(math.atan(0.75)), abs=1.0)


def test_band_panorama_fills_what_lies_outside_it():
    full = _smooth_pano(360, 720)
    band = full[115:245]  # 130 rows = 65 degrees around the horizon, as CVUSA
    pose = dict(fov_deg=90, heading_deg=40, size=(300, 400))
    from_full = pano_to_pinhole(full, **pose)
    from_band = pano_to_pinhole(band, vfov_band=(-32.5, 32.5), **pose)
    # a 4:3 photo at fov 90 spans +-36.9 degrees down the centre column: beyond the band
    # (not at the corners: atan(0.75 / sqrt(2)) = 27.9 degrees)
    assert (from_band[[0, -1], 150:250] == FILL_RGB).all()
    assert (from_band[[0, -1], :20] != FILL_RGB).any(axis=-1).all()
    middle = slice(110, 190)  # rows well inside +-32.5 degrees
    assert np.abs(from_band[middle].astype(int) - from_full[middle].astype(int)).max() <= 1


def test_canvas_for_the_default_bundles_ground_input():
    top, bottom = 0.3194444444444444, 0.6805555555555556
    cfg = EncoderConfig(
        model_id="x",
        kind="student",
        inputs={"ground": ViewInput(size=(64, 256), crop_rows=(top, bottom))},
        embed_dim=8,
    )
    (h, w), band = canvas_for(cfg)
    assert (h, w) == (177, 256) and band == (-90.0, 90.0)  # 64 / 0.3611 = 177.2
    assert abs(crop_rows(np.zeros((h, w, 3), np.uint8), (top, bottom)).shape[0] - 64) <= 1
    (h2, w2), _ = canvas_for(cfg, scale=2)
    assert (h2, w2) == (354, 512)


@pytest.mark.parametrize("fov", [0, -5, 360.5, float("nan"), "wide"])
def test_bad_fov_is_a_typed_error(fov):
    with pytest.raises(CameraError) as err:
        pano_to_pinhole(_smooth_pano(16, 32), fov_deg=fov, heading_deg=0)
    assert isinstance(err.value, D4GEdgeError) and "fov_deg" in str(err.value)


def test_bad_arrays_and_poses_are_typed_errors():
    pano = _smooth_pano(16, 32)
    with pytest.raises(ImageError, match="uint8"):
        pano_to_pinhole(pano.astype(np.float32), fov_deg=90, heading_deg=0)
    with pytest.raises(ImageError, match="H x W x 3"):
        photo_to_pano(pano[..., 0], fov_deg=90, heading_deg=0)
    with pytest.raises(CameraError, match="pinhole"):
        pano_to_pinhole(pano, fov_deg=200, heading_deg=0, projection="pinhole")
    with pytest.raises(CameraError, match="pitch"):
        pano_to_pinhole(pano, fov_deg=90, heading_deg=0, pitch_deg=120)
    with pytest.raises(CameraError, match="vfov_band"):
        pano_to_pinhole(pano, fov_deg=90, heading_deg=0, vfov_band=(30, -30))
    with pytest.raises(CameraError, match="size"):
        pano_to_pinhole(pano, fov_deg=90, heading_deg=0, size=(0, 10))


def _jpeg(tmp_path, size, focal=None, orientation=None, in_ifd0=False):
    exif = Image.Exif()
    if focal is not None:
        if in_ifd0:
            exif[0xA405] = focal
        else:
            exif.get_ifd(0x8769)[0xA405] = focal
    if orientation is not None:
        exif[0x0112] = orientation
    path = tmp_path / f"p{size[0]}x{size[1]}_{focal}_{orientation}_{in_ifd0}.jpg"
    Image.new("RGB", size, (120, 130, 140)).save(path, exif=exif)
    return path


def _expected_hfov(focal_mm: float, width: int, height: int) -> float:
    # The 35 mm equivalent: a frame with the image's aspect and the 36 x 24 frame's diagonal
    # (43.27 mm) behind a lens of that focal length; its width subtends the horizontal FoV.
    frame_w = 43.27 * width / math.hypot(width, height)
    return math.degrees(2 * math.atan(frame_w / 2 / focal_mm))


def test_exif_26mm_phone_main_camera(tmp_path):
    path = _jpeg(tmp_path, (640, 480), focal=26)
    fov = horizontal_fov_from_exif(path)
    assert fov == pytest.approx(_expected_hfov(26, 4, 3), abs=0.05)
    assert 66.5 < fov < 68.0  # 67.3: a 4:3 frame is narrower than 36 mm (69.4 at 3:2)
    with Image.open(path) as img:
        assert horizontal_fov_from_exif(img) == pytest.approx(fov)
    assert horizontal_fov_from_exif(path.read_bytes()) == pytest.approx(fov)
    # some writers put the tag in IFD0
    assert horizontal_fov_from_exif(_jpeg(tmp_path, (640, 480), 26, in_ifd0=True)) == (
        pytest.approx(fov)
    )


def test_exif_portrait_swaps_the_sides(tmp_path):
    portrait = _expected_hfov(26, 3, 4)  # 53.0
    stored_sideways = _jpeg(tmp_path, (640, 480), focal=26, orientation=6)
    assert horizontal_fov_from_exif(stored_sideways) == pytest.approx(portrait, abs=0.05)
    upright = _jpeg(tmp_path, (480, 640), focal=26, orientation=1)
    assert horizontal_fov_from_exif(upright) == pytest.approx(portrait, abs=0.05)
    upside_down = _jpeg(tmp_path, (640, 480), focal=26, orientation=3)
    assert horizontal_fov_from_exif(upside_down) == pytest.approx(_expected_hfov(26, 4, 3))


@pytest.mark.parametrize("focal", [None, 0, 3, 100000])
def test_exif_absent_or_absurd_is_none(tmp_path, focal):
    assert horizontal_fov_from_exif(_jpeg(tmp_path, (64, 48), focal=focal)) is None


def test_exif_of_a_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError):
        horizontal_fov_from_exif(tmp_path / "nope.jpg")
