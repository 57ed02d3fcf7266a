"""d4g-edge follow: frames dropped in a folder are localized, tracked and published as
MAVLink GPS_INPUT, decoded here by a real pymavlink listener on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from d4g_edge.geo import haversine_m
from tests.sdk._models import pano_of_tile

mavutil = pytest.importorskip("pymavlink.mavutil")
ROOT = Path(__file__).resolve().parents[2]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_follow_publishes_gps_input(paired, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    tiles = [paired["tiles"][k] for k in (30, 31, 32)]  # moving east one stride per frame
    for i, t in enumerate(tiles):
        Image.fromarray(pano_of_tile(t.read())).save(frames / f"f{i:03d}.png")
        if i:
            (frames / f"f{i:03d}.png.json").write_text(json.dumps({"odometry": [8.0, 90.0]}))
    port = _free_udp_port()
    listener = mavutil.mavlink_connection(f"udpin:127.0.0.1:{port}")
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "d4g_edge",
                "follow",
                str(frames),
                "--bundle",
                str(paired["bundle"]),
                "--mavlink",
                f"udpout:127.0.0.1:{port}",
                "--max-frames",
                "3",
                "--heading",
                "0",
                "--json",
                "--interval",
                "0.05",
                "--idle-timeout",
                "60",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        got = []
        deadline = time.monotonic() + 90
        while len(got) < 3 and time.monotonic() < deadline:
            msg = listener.recv_match(type="GPS_INPUT", blocking=True, timeout=1)
            if msg is not None:
                got.append(msg)
        out, err = proc.communicate(timeout=60)
    finally:
        listener.close()
    assert proc.returncode == 0, err
    fixes = [json.loads(line) for line in out.splitlines()]
    assert len(fixes) == 3 and len(got) == 3
    for msg, fix, tile in zip(got, fixes, tiles, strict=True):
        assert msg.lat == round(fix["lat"] * 1e7) and msg.lon == round(fix["lon"] * 1e7)
        assert msg.horiz_accuracy == pytest.approx(fix["uncertainty_m"], rel=1e-5)
        assert float(haversine_m(msg.lat / 1e7, msg.lon / 1e7, tile.lat, tile.lon)) < 8.0
        expected_fix = (
            3 if fix["uncertainty_m"] <= 25 else (2 if fix["uncertainty_m"] <= 100 else 1)
        )
        assert msg.fix_type == expected_fix
        assert msg.ignore_flags & mavutil.mavlink.GPS_INPUT_IGNORE_FLAG_ALT
        assert not msg.ignore_flags & mavutil.mavlink.GPS_INPUT_IGNORE_FLAG_HORIZONTAL_ACCURACY
        assert msg.time_week > 2000
    assert got[-1].fix_type == 3  # three agreeing frames with odometry: a confident fix


def test_quality_mapping():
    from d4g_edge.follow import MavlinkPublisher

    pub = MavlinkPublisher(f"udpout:127.0.0.1:{_free_udp_port()}", good_m=25, poor_m=100)
    m = mavutil.mavlink
    assert pub.quality(10) == (m.GPS_FIX_TYPE_3D_FIX, 10)
    assert pub.quality(60) == (m.GPS_FIX_TYPE_2D_FIX, 6)
    assert pub.quality(500) == (m.GPS_FIX_TYPE_NO_FIX, 0)
