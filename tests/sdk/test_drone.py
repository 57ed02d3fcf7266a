"""Drone frames on the device: quarter-turn heading search, altitude crop, pitch offset.

The bundle pairs a drone "student" and a satellite student that share the same random conv
weights (real onnxruntime models), so a frame that *is* a tile, turned north-up, embeds
exactly like that tile: the answers below are exact, not statistical.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from d4g_edge import drone
from d4g_edge.bundle import Bundle
from d4g_edge.config import ViewInput
from d4g_edge.errors import BundleError, SearchError
from d4g_edge.geo import EARTH_RADIUS_M, haversine_m
from d4g_edge.localizer import Localizer
from tests.sdk._models import SAT_SIZE, conv_onnx, degrees_world_file, student_config

TILE_M = 32.0


@pytest.fixture(scope="module")
def drone_bundle(tmp_path_factory) -> dict:
    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source

    d = tmp_path_factory.mktemp("drone")
    rgb = np.random.default_rng(5).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ortho.png")
    degrees_world_file(d / "ortho.pgw", 40.0, -88.0, 0.5)
    src = open_tile_source(d / "ortho.png", tile_size_m=TILE_M, stride_m=8)
    square = ViewInput(size=(SAT_SIZE, SAT_SIZE))
    drone_cfg = student_config("drone", inputs={"drone": square})
    sat_cfg = student_config("satellite", inputs={"satellite": square})
    frame_model = conv_onnx(d / "drone_fp32.onnx", drone_cfg, seed=7)
    sat_model = conv_onnx(d / "satellite_fp32.onnx", sat_cfg, seed=7)
    bundle = build_index(src, sat_model, d / "bundle", ground=frame_model)
    return {"bundle": bundle, "tiles": list(src), "drone": frame_model, "dir": d}


@pytest.fixture(scope="module")
def loc(drone_bundle) -> Localizer:
    return Localizer(drone_bundle["bundle"], threads=1)


def test_bundle_says_it_serves_drone_frames(drone_bundle, loc):
    manifest = json.loads((drone_bundle["bundle"] / "manifest.json").read_text())
    assert manifest["views"] == ["drone"]
    assert manifest["models"]["query"]["file"] == "drone.onnx"
    assert (drone_bundle["bundle"] / "drone.onnx").is_file()
    assert Bundle.load(drone_bundle["bundle"]).views == ("drone",)
    assert loc.view == "drone"


@pytest.mark.parametrize("quarter", [0, 1, 2, 3])
def test_known_heading_turns_the_frame_north_up(loc, drone_bundle, quarter):
    tile = drone_bundle["tiles"][21]
    # a frame whose top points at heading 90 q shows the north-up tile turned q quarters
    # counter-clockwise (what was east is at the top)
    frame = np.ascontiguousarray(np.rot90(tile.read(), quarter))
    fix = loc.localize(frame, heading=90.0 * quarter, top_k=3)
    assert fix.candidates[0].tile_id == tile.tile_id
    assert fix.score > 0.999
    assert (fix.lat, fix.lon) == (tile.lat, tile.lon)


@pytest.mark.parametrize("quarter", [1, 3])
def test_unknown_heading_is_searched_over_quarter_turns(loc, drone_bundle, quarter):
    tile = drone_bundle["tiles"][40]
    frame = np.ascontiguousarray(np.rot90(tile.read(), quarter))
    fix = loc.localize(frame)
    assert fix.candidates[0].tile_id == tile.tile_id
    assert fix.heading_deg == pytest.approx(90.0 * quarter)
    # told the wrong heading, the frame is encoded sideways and no longer matches exactly
    wrong = loc.localize(frame, heading=90.0 * quarter + 90.0)
    assert wrong.score < fix.score - 1e-3


def test_pitch_moves_the_answer_back_to_the_drone(loc, drone_bundle):
    tile = drone_bundle["tiles"][30]
    frame = tile.read()
    # nadir (pitch 0): the drone is where the frame's centre looks
    nadir = loc.localize(frame, heading=0.0, altitude_m=10.0, pitch_deg=0.0)
    assert (nadir.lat, nadir.lon) == pytest.approx((tile.lat, tile.lon))
    # 45 degrees from nadir at 10 m looking north: the drone is 10 m south of that point
    fix = loc.localize(frame, heading=0.0, altitude_m=10.0, pitch_deg=45.0)
    assert fix.candidates[0].tile_id == tile.tile_id
    assert fix.lon == pytest.approx(tile.lon)
    assert tile.lat - fix.lat == pytest.approx(np.degrees(10.0 / EARTH_RADIUS_M), rel=1e-6)
    # looking east instead: the drone is 10 m west (frame turned so its top is east)
    east = loc.localize(
        np.ascontiguousarray(np.rot90(frame, 1)), heading=90.0, altitude_m=10.0, pitch_deg=45.0
    )
    assert east.lat == pytest.approx(tile.lat)
    assert float(haversine_m(east.lat, east.lon, tile.lat, tile.lon)) == pytest.approx(10.0, 1e-3)
    assert east.lon < tile.lon


def test_altitude_keeps_the_centre_that_covers_one_tile(loc, drone_bundle):
    tile = drone_bundle["tiles"][33]
    img = tile.read()
    # a frame from so high that it shows 3 tiles across: 3 x 3 copies, the centre one the tile
    frame = np.tile(img, (3, 3, 1))
    altitude = 3 * TILE_M / (2 * np.tan(np.radians(drone.DEFAULT_FOV_DEG) / 2))
    assert drone.footprint_m(altitude) == pytest.approx(3 * TILE_M)
    np.testing.assert_array_equal(drone.crop_to_footprint(frame, altitude, TILE_M), img)
    fix = loc.localize(frame, heading=0.0, altitude_m=float(altitude))
    assert fix.candidates[0].tile_id == tile.tile_id
    assert fix.score > 0.999
    # without the altitude the whole 3 x 3 frame is encoded: not that tile's embedding
    assert loc.localize(frame, heading=0.0).score < 0.99


def test_crop_is_a_no_op_below_one_tile():
    frame = np.zeros((60, 80, 3), np.uint8)
    low = 0.5 * TILE_M / (2 * np.tan(np.radians(30.0)))  # half a tile across
    assert drone.crop_to_footprint(frame, low, TILE_M) is frame


def test_turns_and_offsets_by_hand():
    assert [drone.north_up_turns(h) for h in (0, 90, 180, 270, 359, 44, 46)] == [
        0, 3, 2, 1, 0, 0, 3,
    ]  # fmt: skip
    for k in range(4):
        assert drone.north_up_turns(drone.heading_of_turn(k)) == k
    east, north = drone.camera_offset_m(100.0, 45.0, 90.0)
    assert (east, north) == pytest.approx((100.0, 0.0), abs=1e-9)
    east, north = drone.camera_offset_m(50.0, 60.0, 225.0)
    assert (east, north) == pytest.approx((-50 * np.sqrt(3) / np.sqrt(2),) * 2)


def test_camera_to_drone_moves_back_against_the_heading():
    # camera 45 deg from nadir at 100 m looking east: it sees a point 100 m east of the drone,
    # so the drone is 100 m west of what the frame shows (measured on the sphere)
    seen = (47.0, 8.0)
    lat, lon = drone.camera_to_drone(*seen, drone.Flight(100.0, 45.0), 90.0)
    assert float(haversine_m(lat, lon, *seen)) == pytest.approx(100.0, rel=1e-4)
    assert float(lat) == pytest.approx(seen[0], abs=1e-9) and float(lon) < seen[1]
    # arrays of candidates move together; north-looking: the drone is south of them
    lats, lons = drone.camera_to_drone(
        np.array([47.0, 47.001]), np.array([8.0, 8.0]), drone.Flight(50.0, 45.0), 0.0
    )
    assert np.all(lats < [47.0, 47.001]) and np.allclose(lons, 8.0)
    # no offset without both altitude and pitch (nadir, or unknown): the same objects back
    for flight in (None, drone.Flight(altitude_m=100.0), drone.Flight(pitch_deg=30.0)):
        assert drone.camera_to_drone(*seen, flight, 90.0) == seen


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"altitude_m": -5.0}, "altitude_m"),
        ({"altitude_m": float("nan")}, "altitude_m"),
        ({"pitch_deg": 95.0}, "pitch_deg"),
        ({"fov_deg": 0.0}, "fov_deg"),
    ],
)
def test_bad_flight_values_are_typed_errors(loc, drone_bundle, kwargs, match):
    with pytest.raises(SearchError, match=match):
        loc.localize(drone_bundle["tiles"][0].read(), heading=0.0, **kwargs)
    with pytest.raises(SearchError, match=match):  # the same check where a Flight is made
        drone.Flight(**kwargs)


def test_a_flight_is_a_named_frozen_record():
    flight = drone.Flight(altitude_m=120.0, pitch_deg=30.0)
    assert flight.fov_deg is None and flight.camera_fov_deg == drone.DEFAULT_FOV_DEG
    assert flight.offset_known and not drone.Flight(altitude_m=120.0).offset_known
    assert drone.Flight(fov_deg=84.0).camera_fov_deg == 84.0
    with pytest.raises(AttributeError):
        flight.altitude_m = 10.0  # frozen: a flight is a value, shared safely
    with pytest.raises(SearchError, match="altitude_m must be a number"):
        drone.Flight(altitude_m="high")


def test_fov_deg_none_is_the_default_camera_for_drone_frames(loc, drone_bundle):
    tile = drone_bundle["tiles"][33]
    frame = np.tile(tile.read(), (3, 3, 1))
    altitude = float(3 * TILE_M / (2 * np.tan(np.radians(drone.DEFAULT_FOV_DEG) / 2)))
    default = loc.localize(frame, heading=0.0, altitude_m=altitude)
    given = loc.localize(frame, heading=0.0, altitude_m=altitude, fov_deg=drone.DEFAULT_FOV_DEG)
    assert default == given and default.candidates[0].tile_id == tile.tile_id
    # a wider camera at that height shows more ground: a smaller centre is kept, another score
    wide = loc.localize(frame, heading=0.0, altitude_m=altitude, fov_deg=90.0)
    assert wide.score != default.score


def test_panorama_bundles_refuse_drone_flight_values(paired):
    from tests.sdk.test_localize import pano_of_tile

    pano_loc = Localizer(paired["bundle"], threads=1)
    with pytest.raises(SearchError, match="drone frames"):
        pano_loc.localize(pano_of_tile(paired["tiles"][0].read()), heading=0.0, altitude_m=50.0)


def test_one_bundle_holds_one_query_view(drone_bundle, paired, tmp_path):
    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source

    src = open_tile_source(drone_bundle["dir"] / "ortho.png", tile_size_m=TILE_M, stride_m=16)
    with pytest.raises(BundleError, match="different views"):
        build_index(
            src,
            drone_bundle["dir"] / "satellite_fp32.onnx",
            tmp_path / "b",
            ground=[drone_bundle["drone"], paired["ground"]],
        )
    assert not (tmp_path / "b").exists()


def _follow_one(bundle, folder, image, meta, capsys) -> dict:
    from d4g_edge.cli.app import main

    folder.mkdir()
    Image.fromarray(image).save(folder / "f0.png")
    (folder / "f0.png.json").write_text(json.dumps(meta))
    argv = ["follow", str(folder), "--bundle", str(bundle), "--json", "--max-frames", "1"]
    assert main([*argv, "--idle-timeout", "5"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_follow_reads_the_autopilot_sidecar(drone_bundle, tmp_path, capsys):
    tile = drone_bundle["tiles"][25]
    frame = np.ascontiguousarray(np.rot90(tile.read(), 2))  # looking south
    args = (drone_bundle["bundle"], tmp_path / "a", frame)
    seen = _follow_one(*args, {"heading_deg": 180.0, "altitude_m": 10.0}, capsys)
    assert seen["heading_deg"] == 180.0
    assert (seen["single_frame_lat"], seen["single_frame_lon"]) == (tile.lat, tile.lon)
    args = (drone_bundle["bundle"], tmp_path / "b", frame)
    meta = {"heading_deg": 180.0, "altitude_m": 10.0, "pitch_deg": 45.0}
    drone_fix = _follow_one(*args, meta, capsys)
    # looking south from 10 m at 45 degrees: the drone is 10 m north of the point it sees
    assert drone_fix["lat"] - seen["lat"] == pytest.approx(np.degrees(10 / EARTH_RADIUS_M), 1e-6)
    assert drone_fix["lon"] == pytest.approx(seen["lon"])
