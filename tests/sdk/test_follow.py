"""d4g-edge follow: frames dropped in a folder are localized, tracked and published as MAVLink 2
GPS_INPUT + HEARTBEAT, decoded here by a real pymavlink listener on 127.0.0.1; bad sidecars,
bad folders and bad flags end in warnings or one ``error:`` line (issue 21 items 1-6, issue 20
item 3)."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from d4g_edge.cli.follow import (
    R95_PER_SIGMA,
    FollowError,
    FrameFolder,
    MavlinkError,
    MavlinkPublisher,
    SidecarError,
    parse_mavlink_url,
    read_sidecar,
)
from tests.robustness.sdk_case import cli
from tests.sdk._models import pano_of_tile

mavutil = pytest.importorskip("pymavlink.mavutil")
ROOT = Path(__file__).resolve().parents[2]
MAVLINK2_MAGIC = 0xFD


def _free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listener():
    """A real pymavlink UDP listener and the URL that sends to it."""
    port = _free_port()
    conn = mavutil.mavlink_connection(f"udpin:127.0.0.1:{port}")
    conn.url = f"udpout:127.0.0.1:{port}"
    yield conn
    conn.close()


@pytest.fixture
def warnings_log():
    """The d4g_edge logger's warning lines (a real handler on the package logger)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                lines.append(record.getMessage())

    handler = Collect()
    log = logging.getLogger("d4g_edge")
    log.addHandler(handler)
    yield lines
    log.removeHandler(handler)


def _recv(conn, kind: str, n: int = 1, timeout: float = 10.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        msg = conn.recv_match(type=kind, blocking=True, timeout=0.5)
        if msg is not None:
            got.append(msg)
    return got


def _frames(paired, folder: Path, keys=(30, 31, 32), fmt="png") -> list:
    folder.mkdir(exist_ok=True)
    tiles = [paired["tiles"][k] for k in keys]
    for i, t in enumerate(tiles):
        Image.fromarray(pano_of_tile(t.read())).save(folder / f"f{i:03d}.{fmt}")
    return tiles


def _follow(paired, folder, *extra, timeout_s=60):
    argv = ["follow", str(folder), "--bundle", str(paired["bundle"]), "--json"]
    argv += ["--interval", "0.05", "--settle", "0.1", "--idle-timeout", "1", *extra]
    out = cli(argv, timeout_s=timeout_s)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return out, records


# ---- the loop end to end ---------------------------------------------------------------------


def test_follow_publishes_mavlink2_and_only_usable_fixes(paired, tmp_path):
    frames = tmp_path / "frames"
    _frames(paired, frames)
    for i in (1, 2):
        (frames / f"f{i:03d}.png.json").write_text(json.dumps({"odometry": [8.0, 90.0]}))
    port = _free_port()
    listener = mavutil.mavlink_connection(f"udpin:127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if k != "MAVLINK20"}  # v2 without the env var
    try:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "d4g_edge", "follow", str(frames)),
                *("--bundle", str(paired["bundle"]), "--mavlink", f"udpout:127.0.0.1:{port}"),
                *("--max-frames", "3", "--heading", "0", "--json", "--interval", "0.05"),
                *("--idle-timeout", "60"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        got = _recv(listener, "GPS_INPUT", 3, timeout=90)
        out, err = proc.communicate(timeout=60)
    finally:
        listener.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    fixes = [json.loads(line) for line in out.splitlines()]
    assert len(fixes) == 3 and len(got) == 3
    m = mavutil.mavlink
    for msg, fix in zip(got, fixes, strict=True):
        assert msg.get_msgbuf()[0] == MAVLINK2_MAGIC
        assert msg.get_srcComponent() == m.MAV_COMP_ID_ONBOARD_COMPUTER
        assert msg.time_week > 2000
        assert msg.ignore_flags & m.GPS_INPUT_IGNORE_FLAG_ALT
        if not fix["usable"]:  # the tracker is not locked: a no-fix message, no position
            assert msg.fix_type < 2 and msg.satellites_visible == 0
            assert msg.lat == 0 and msg.lon == 0 and msg.yaw == 0
            assert msg.ignore_flags & m.GPS_INPUT_IGNORE_FLAG_HORIZONTAL_ACCURACY
        else:
            assert msg.lat == round(fix["lat"] * 1e7) and msg.lon == round(fix["lon"] * 1e7)
            r95 = fix["uncertainty_m"]
            assert msg.horiz_accuracy == pytest.approx(r95 / R95_PER_SIGMA, rel=1e-5)
            assert msg.fix_type == (3 if r95 <= 25 else 2 if r95 <= 100 else 1)


def test_bad_sidecars_warn_once_and_never_reach_the_tracker_or_mavlink(
    paired, tmp_path, listener, warnings_log
):
    frames = tmp_path / "frames"
    _frames(paired, frames, keys=(30, 31, 32, 33, 34, 35, 36))
    bad = {
        "f001": '{"odometry": "bad"}',
        "f002": '{"odometry": 5}',
        "f003": '{"odometry": [NaN, 0], "heading_deg": Infinity}',
        "f004": '{"heading_deg": "north", "altitude_m": NaN, "pitch_deg": -Infinity}',
        "f005": "[1, 2]",
        "f006": '{"odometry": [1]}',
    }
    for stem, text in bad.items():
        (frames / f"{stem}.png.json").write_text(text)
    out, records = _follow(paired, frames, "--mavlink", listener.url)
    assert out.kind == "ok", out.detail
    assert len(records) == 7  # every frame is still localized
    for r in records:
        assert all(math.isfinite(r[k]) for k in ("lat", "lon", "uncertainty_m"))
    for stem in bad:
        lines = [w for w in warnings_log if f"{stem}.png" in w]
        assert len(lines) == 1, (stem, warnings_log)
    got = _recv(listener, "GPS_INPUT", 7)
    assert len(got) == 7
    assert all(msg.fix_type < 2 or abs(msg.lat) > 0 for msg in got)


def test_broken_links_subfolders_fifos_and_empty_files_are_skipped(paired, tmp_path, warnings_log):
    frames = tmp_path / "frames"
    _frames(paired, frames, keys=(30, 31))
    (frames / "a_broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (frames / "b_dir.jpg").mkdir()
    os.mkfifo(frames / "c_fifo.jpg")  # reading it would block for ever
    (frames / "d_empty.png").write_bytes(b"")
    (frames / "e_junk.jpg").write_bytes(b"<html>403</html>")
    out, records = _follow(paired, frames, "--retries", "0")
    assert out.kind == "ok", out.detail
    assert [Path(r["frame"]).name for r in records] == ["f000.png", "f001.png"]
    for name in ("a_broken.jpg", "b_dir.jpg", "c_fifo.jpg", "d_empty.png", "e_junk.jpg"):
        assert sum(name in w for w in warnings_log) == 1, (name, warnings_log)


def test_a_file_written_in_two_halves_is_not_read_half_written(paired, tmp_path, warnings_log):
    frames = tmp_path / "frames"
    frames.mkdir()
    buf = io.BytesIO()
    Image.fromarray(pano_of_tile(paired["tiles"][30].read())).save(buf, "JPEG", quality=95)
    data = buf.getvalue()

    def write():
        with open(frames / "f000.jpg", "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(1.0)
            f.write(data[len(data) // 2 :])

    writer = threading.Thread(target=write)
    writer.start()
    try:  # the old rule (one unchanged size between two 0.2 s polls) read it half-written
        out, records = _follow(paired, frames, "--settle", "0.5", "--idle-timeout", "2.5")
    finally:
        writer.join()
    assert out.kind == "ok", out.detail
    assert [Path(r["frame"]).name for r in records] == ["f000.jpg"]
    assert not [w for w in warnings_log if "f000.jpg" in w]


def test_a_truncated_frame_is_retried_then_skipped_with_one_warning(paired, tmp_path, warnings_log):
    frames = tmp_path / "frames"
    _frames(paired, frames, keys=(30,))
    data = (frames / "f000.png").read_bytes()
    (frames / "f001.png").write_bytes(data[: len(data) // 2])
    out, records = _follow(paired, frames, "--retries", "2", "--idle-timeout", "1.5")
    assert out.kind == "ok", out.detail
    assert [Path(r["frame"]).name for r in records] == ["f000.png"]
    lines = [w for w in warnings_log if "f001.png" in w]
    assert len(lines) == 1 and "truncated" in lines[0]


def test_a_frame_that_vanishes_before_it_is_read_is_not_retried(paired, tmp_path):
    frames = tmp_path / "frames"
    _frames(paired, frames, keys=(30,))
    watcher = FrameFolder(frames, interval_s=0.05, settle_s=0.0, idle_timeout_s=0.5)
    path = next(iter(watcher))
    path.unlink()
    assert watcher.retry(path) is False


def _until(sign, done: threading.Event, timeout_s: float = 60.0) -> bool:
    """Poll ``sign()``: True once it holds, False if ``done`` is set or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not done.is_set() and time.monotonic() < deadline:
        if sign():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("comes_back", [False, True])
def test_a_removed_folder_is_waited_for(paired, tmp_path, warnings_log, listener, comes_back):
    frames = tmp_path / "frames"
    _frames(paired, frames, keys=(30,))
    spare = tmp_path / "spare"
    _frames(paired, spare, keys=(40,))
    # Each step waits for a sign from follow, not a fixed time (on a loaded machine the CLI
    # starts late, and a folder removed before follow watched it is "missing", not "gone"):
    # the folder goes once the first frame's fix is published (follow is watching it), and
    # comes back once follow has warned that it cannot list it. The idle timeout, counted from
    # the first frame, leaves room for a slow frame between those steps.
    done, missed = threading.Event(), []

    def first_fix() -> bool:  # follow sends one GPS_INPUT per frame, none before
        return listener.recv_match(type="GPS_INPUT", blocking=True, timeout=0.2) is not None

    def remove_and_maybe_restore():
        if not _until(first_fix, done):
            missed.append("no GPS_INPUT for the first frame")
            return
        shutil.rmtree(frames)
        if comes_back:
            if not _until(lambda: any("cannot be listed" in w for w in warnings_log), done):
                missed.append("no warning that the folder cannot be listed")
                return
            shutil.copytree(spare, frames)

    t = threading.Thread(target=remove_and_maybe_restore)
    t.start()
    try:
        out, records = _follow(
            paired, frames, "--idle-timeout", "5", "--mavlink", listener.url, timeout_s=120
        )
    finally:
        done.set()
        t.join()
    assert out.kind == "ok", out.detail
    assert not missed, missed
    assert len(records) == (2 if comes_back else 1)
    assert sum("cannot be listed" in w for w in warnings_log) == 1


def test_missing_frame_folder_is_one_error_line(paired, tmp_path):
    out = cli(["follow", str(tmp_path / "nope"), "--bundle", str(paired["bundle"])])
    assert out.kind == "typed" and out.code == 2, out.detail
    assert "frame folder" in out.detail


# ---- sidecars ------------------------------------------------------------------------------


def _sidecar(tmp_path, text: str) -> Path:
    image = tmp_path / "f.jpg"
    (tmp_path / "f.jpg.json").write_text(text)
    return image


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"odometry": "bad"}', "odometry"),
        ('{"odometry": 5}', "odometry"),
        ('{"odometry": [1]}', "odometry"),
        ('{"odometry": [NaN, 0]}', "odometry"),
        ('{"odometry": [5, Infinity]}', "odometry"),
        ('{"odometry": [-3, 0]}', "odometry"),
        ('{"odometry": [1e300, 0]}', "odometry"),
        ('{"odometry": [true, 0]}', "odometry"),
        ('{"heading_deg": "north"}', "heading_deg"),
        ('{"heading_deg": NaN}', "heading_deg"),
        ('{"heading_deg": [90]}', "heading_deg"),
        ('{"altitude_m": -Infinity}', "altitude_m"),
        ('{"altitude_m": 0}', "altitude_m"),
        ('{"altitude_m": 1' + "0" * 400 + "}", "altitude_m"),
        ('{"pitch_deg": 90}', "pitch_deg"),
        ('{"pitch_deg": "low"}', "pitch_deg"),
    ],
)
def test_a_bad_sidecar_field_is_dropped_with_a_typed_error(tmp_path, text, field):
    meta = read_sidecar(_sidecar(tmp_path, text))
    assert getattr(meta, field) is None
    assert len(meta.problems) == 1 and isinstance(meta.problems[0], SidecarError)
    assert field in str(meta.problems[0])


def test_good_sidecar_fields_are_kept_next_to_a_bad_one(tmp_path):
    meta = read_sidecar(_sidecar(tmp_path, '{"odometry": [8, 450], "altitude_m": "x"}'))
    assert meta.odometry == (8.0, 90.0) and meta.altitude_m is None and len(meta.problems) == 1


@pytest.mark.parametrize(
    "text", ["[1, 2]", "5", '"x"', "{not json", '{"a": 1', "[" * 50_000, "\udcff"]
)
def test_an_unusable_sidecar_file_is_a_typed_error(tmp_path, text):
    image = tmp_path / "f.jpg"
    (tmp_path / "f.jpg.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(SidecarError, match=r"f\.jpg\.json"):
        read_sidecar(image)


def test_sidecar_directories_links_and_huge_files_are_typed_errors(tmp_path):
    (tmp_path / "a.jpg.json").mkdir()
    (tmp_path / "b.jpg.json").symlink_to(tmp_path / "nowhere.json")
    (tmp_path / "c.jpg.json").write_text('{"odometry": [1, 2], "pad": "' + "x" * 100_000 + '"}')
    for stem in "abc":
        with pytest.raises(SidecarError, match=rf"{stem}\.jpg\.json"):
            read_sidecar(tmp_path / f"{stem}.jpg")
    assert read_sidecar(tmp_path / "none.jpg").problems == ()


# ---- MAVLink publisher ---------------------------------------------------------------------


def test_heartbeat_at_1hz_in_mavlink2_while_no_frame_comes(listener):
    with MavlinkPublisher(listener.url):
        beats = _recv(listener, "HEARTBEAT", 2, timeout=8)
    assert len(beats) == 2
    m = mavutil.mavlink
    for b in beats:
        assert b.get_msgbuf()[0] == MAVLINK2_MAGIC
        assert b.type == m.MAV_TYPE_ONBOARD_CONTROLLER
        assert b.autopilot == m.MAV_AUTOPILOT_INVALID
        assert b.get_srcComponent() == m.MAV_COMP_ID_ONBOARD_COMPUTER


def test_heartbeat_rate_is_1hz(listener):
    with MavlinkPublisher(listener.url):
        _recv(listener, "HEARTBEAT", 1, timeout=5)
        start = time.monotonic()
        beats = _recv(listener, "HEARTBEAT", 3, timeout=8)
        elapsed = time.monotonic() - start
    assert len(beats) == 3
    assert 2.6 <= elapsed <= 3.5  # three more beats at 1 Hz


@pytest.mark.parametrize(
    ("lat", "lon", "radius", "usable"),
    [
        (40.0, -88.0, 5.0, False),  # a good radius, but the tracker is not locked
        (40.0, -88.0, math.nan, True),
        (40.0, -88.0, math.inf, True),
        (40.0, -88.0, -1.0, True),
        (40.0, -88.0, 0.0, True),
        (math.nan, -88.0, 5.0, True),
        (91.0, -88.0, 5.0, True),
        (40.0, -188.0, 5.0, True),
    ],
)
def test_an_unusable_fix_is_sent_as_no_fix(listener, lat, lon, radius, usable):
    with MavlinkPublisher(listener.url) as pub:
        sent = pub.send(lat, lon, radius, usable=usable, heading_deg=90.0)
        (msg,) = _recv(listener, "GPS_INPUT")
    m = mavutil.mavlink
    assert sent == msg.fix_type == m.GPS_FIX_TYPE_NO_FIX
    assert msg.satellites_visible == 0 and msg.lat == 0 and msg.lon == 0 and msg.yaw == 0
    assert msg.ignore_flags & m.GPS_INPUT_IGNORE_FLAG_HORIZONTAL_ACCURACY
    assert math.isfinite(msg.horiz_accuracy) and math.isfinite(msg.hdop)


@pytest.mark.parametrize(
    ("radius", "fix_type", "sats"), [(10.0, 3, 10), (25.0, 3, 10), (60.0, 2, 6), (200.0, 1, 0)]
)
def test_a_usable_fix_maps_the_95_radius_to_ekf3_one_sigma(listener, radius, fix_type, sats):
    with MavlinkPublisher(listener.url, good_m=25, poor_m=100) as pub:
        pub.send(40.1234567, -88.7654321, radius, usable=True)
        (msg,) = _recv(listener, "GPS_INPUT")
    assert msg.fix_type == fix_type and msg.satellites_visible == sats
    if fix_type >= 2:
        assert msg.lat == 401234567 and msg.lon == -887654321
        assert msg.horiz_accuracy == pytest.approx(radius / 2.4477, rel=1e-4)
        ignored = msg.ignore_flags & mavutil.mavlink.GPS_INPUT_IGNORE_FLAG_HORIZONTAL_ACCURACY
        assert not ignored


@pytest.mark.parametrize(
    ("heading", "sigma", "yaw"),
    [
        (90.0, None, 9000),  # known (sidecar / flag)
        (0.0, None, 36000),  # north is 36000: 0 means "not available"
        (-90.0, None, 27000),
        (123.4, 5.0, 12340),  # an estimate with a small calibrated error
        (123.4, 20.0, 0),  # worse than the 10 degrees ArduPilot assumes: not sent
        (123.4, math.nan, 0),
        (None, None, 0),
        (math.nan, None, 0),
    ],
)
def test_yaw_only_when_known_or_calibrated(listener, heading, sigma, yaw):
    with MavlinkPublisher(listener.url) as pub:
        pub.send(40.0, -88.0, 10.0, usable=True, heading_deg=heading, heading_sigma_deg=sigma)
        (msg,) = _recv(listener, "GPS_INPUT")
    assert msg.yaw == yaw


@pytest.mark.parametrize(("good", "poor"), [(300.0, 400.0), (50.0, 25.0), (0.0, 10.0)])
def test_quality_thresholds_beyond_what_ekf3_can_take_are_refused(listener, good, poor):
    with pytest.raises(FollowError, match="good"):
        MavlinkPublisher(listener.url, good_m=good, poor_m=poor)


# ---- --mavlink URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        " udpout:127.0.0.1:14550",
        "garbage",
        "http://127.0.0.1:14550",
        "udpout:999.1.1.1:14550",
        "udpout:nosuchhost.invalid:14550",
        "udpout:127.0.0.1",
        "udpout:127.0.0.1:",
        "udpout:127.0.0.1:99999",
        "udpout:127.0.0.1:0",
        "udpout:127.0.0.1:abc",
        "udpout::14550",
        "tcp::5760",
        "udpout:[::1]:14550",
        "/dev/ttyNOPE",
        "/dev/ttyNOPE,57600",
        "/dev/null,fast",
        "COM3",
        "/tmp/frames",
        "/dev",
    ],
)
def test_bad_mavlink_urls_are_typed_errors_before_connecting(url):
    with pytest.raises(MavlinkError):
        parse_mavlink_url(url)


@pytest.mark.parametrize(
    ("url", "device", "kind"),
    [
        ("udpout:127.0.0.1:14550", "udpout:127.0.0.1:14550", "udpout"),
        ("udpout:localhost:14550", "udpout:localhost:14550", "udpout"),
        ("udpin::14550", "udpin:0.0.0.0:14550", "udpin"),
        ("udp:127.0.0.1:14550", "udpin:127.0.0.1:14550", "udpin"),
        ("tcp:127.0.0.1:5760", "tcp:127.0.0.1:5760", "tcp"),
        ("tcpin:0.0.0.0:5760", "tcpin:0.0.0.0:5760", "tcpin"),
        ("/dev/null,57600", "/dev/null", "serial"),
    ],
)
def test_good_mavlink_urls_parse(url, device, kind):
    t = parse_mavlink_url(url)
    assert (t.device, t.kind) == (device, kind)


def test_refused_tcp_failed_bind_and_a_non_serial_device_are_typed_errors():
    port = _free_port(socket.SOCK_STREAM)  # nothing listens there
    with pytest.raises(MavlinkError, match="cannot be opened"):
        MavlinkPublisher(f"tcp:127.0.0.1:{port}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        with pytest.raises(MavlinkError, match="cannot be opened"):
            MavlinkPublisher(f"udpin:127.0.0.1:{busy.getsockname()[1]}")
    with pytest.raises(MavlinkError, match="cannot be opened"):
        MavlinkPublisher("udpin:192.0.2.1:14550")  # TEST-NET-1: not an address of this host
    with pytest.raises(MavlinkError, match="cannot be opened"):
        MavlinkPublisher("/dev/null")  # a character device, but no serial port


def test_serial_link_on_a_pseudo_terminal():
    pytest.importorskip("serial")
    from pymavlink.dialects.v20 import ardupilotmega as mavlink2

    master, slave = os.openpty()
    try:
        with MavlinkPublisher(f"{os.ttyname(slave)},57600") as pub:
            pub.send(40.0, -88.0, 10.0, usable=True)
            parser, got, deadline = mavlink2.MAVLink(None), [], time.monotonic() + 5
            os.set_blocking(master, False)
            while not any(m.get_type() == "GPS_INPUT" for m in got):
                assert time.monotonic() < deadline, got
                try:
                    got += parser.parse_buffer(os.read(master, 4096)) or []
                except BlockingIOError:
                    time.sleep(0.05)
    finally:
        os.close(master)
        os.close(slave)
    gps = next(m for m in got if m.get_type() == "GPS_INPUT")
    assert gps.fix_type == 3 and gps.lat == 400000000


@pytest.mark.parametrize(
    ("url", "match"),
    [("garbage", "not a MAVLink URL"), ("udpout:999.1.1.1:14550", "cannot be resolved")],
)
def test_a_bad_mavlink_url_fails_before_the_bundle_loads(tmp_path, url, match):
    frames = tmp_path / "frames"
    frames.mkdir()
    out = cli(["follow", str(frames), "--bundle", str(tmp_path / "no_bundle"), "--mavlink", url])
    assert out.kind == "typed" and out.code == 2, out.detail
    assert match in out.detail and out.stdout == ""


def test_a_refused_tcp_link_is_one_error_line(paired, tmp_path):
    frames = tmp_path / "frames"
    _frames(paired, frames, keys=(30,))
    port = _free_port(socket.SOCK_STREAM)
    out = cli(
        [
            "follow",
            str(frames),
            "--bundle",
            str(paired["bundle"]),
            "--mavlink",
            f"tcp:127.0.0.1:{port}",
        ]
    )
    assert out.kind == "typed" and out.code == 2, out.detail
    assert out.stdout == ""  # no frame was localized


# ---- flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag",
    [
        ["--top-k", "0"],
        ["--interval", "-1"],
        ["--max-frames", "0"],
        ["--temperature", "0"],
        ["--temperature", "nan"],
        ["--heading", "inf"],
        ["--good-m", "50", "--poor-m", "25"],
    ],
)
def test_bad_flags_are_one_error_line(paired, tmp_path, flag):
    frames = tmp_path / "frames"
    _frames(paired, frames, keys=(30,))
    out = cli(["follow", str(frames), "--bundle", str(paired["bundle"]), *flag])
    assert out.kind == "typed" and out.code == 2, out.detail
    assert out.stdout == ""


# ---- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_end_the_loop_cleanly(paired, tmp_path, listener, sig, code):
    frames = tmp_path / "frames"
    frames.mkdir()  # no frame comes: heartbeats only
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "d4g_edge", "follow", str(frames)),
            *("--bundle", str(paired["bundle"]), "--mavlink", listener.url),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert len(_recv(listener, "HEARTBEAT", 2, timeout=60)) == 2
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"stopped by {signal.Signals(sig).name}" in err and "connection closed" in err
    while listener.recv_match(blocking=False) is not None:  # drain what was sent before
        pass
    time.sleep(1.5)
    assert listener.recv_match(type="HEARTBEAT", blocking=False) is None


def test_an_idle_folder_ends_with_exit_0_and_no_output(paired, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    out, records = _follow(paired, frames, "--idle-timeout", "0.3")
    assert out.kind == "ok" and out.value == 0 and records == [], out.detail
