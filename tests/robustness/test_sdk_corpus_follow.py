"""SDK corpus, ``follow`` part (issue 21): bad sidecars, frame folders and flags.

Every case runs ``d4g-edge follow FOLDER --idle-timeout 0.5`` in this process through the shared
harness (:func:`tests.robustness.sdk_case.cli`) on a small real bundle, and must end with exit 0
(bad frames / fields skipped with one warning each, the others fixed) or a typed error (exit 2,
one ``error:`` line): no traceback, no hang. Cases:

* sidecars: every field missing / mistyped / NaN / inf / out of range / huge, files that are not
  JSON, a list, a directory, a FIFO, a broken link, too large, too deep, not UTF-8;
* frame folders: empty, junk, broken links, link loops, zero-byte, truncated and decompression
  bomb images, a subfolder or FIFO named x.jpg, unreadable permissions, non-UTF-8 names, odd
  image modes and formats, a file or nothing where the folder should be;
* every follow flag missing / mistyped / out of range, and ``--mavlink`` URLs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.robustness.sdk_case import cli

LEGACY_FAST = ["--interval", "0.05", "--idle-timeout", "0.5"]  # flags follow always had
FAST = [*LEGACY_FAST, "--settle", "0.05"]
# Cases whose frames are all fixed also stop at their last frame (--max-frames), instead of
# waiting out the idle timeout: the file stays well under a minute.
STOP_AFTER_2 = ["--max-frames", "2"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict:
    """A 25-tile bundle whose ground and satellite encoders share weights, and a frame of it."""
    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source
    from tests.sdk._models import conv_onnx, degrees_world_file, pano_of_tile, student_config

    d = tmp_path_factory.mktemp("follow_corpus")
    rgb = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ortho.png")
    degrees_world_file(d / "ortho.pgw", 40.0, -88.0, 0.5)
    src = open_tile_source(d / "ortho.png", tile_size_m=16, stride_m=8)
    ground = conv_onnx(d / "ground.onnx", student_config("ground"), seed=3)
    sat = conv_onnx(d / "satellite.onnx", student_config("satellite"), seed=3)
    tiles = list(src)
    frame = pano_of_tile(tiles[len(tiles) // 2].read())
    return {"bundle": build_index(src, sat, d / "bundle", ground=ground), "frame": frame}


@pytest.fixture
def warnings_log():
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                lines.append(record.getMessage())

    handler = Collect()
    logging.getLogger("d4g_edge").addHandler(handler)
    yield lines
    logging.getLogger("d4g_edge").removeHandler(handler)


def _run(bundle, source, *flags, fast=FAST, timeout_s: float = 30.0):
    out = cli(
        ["follow", str(source), "--bundle", str(bundle["bundle"]), "--json", *fast, *flags],
        timeout_s=timeout_s,
    )
    assert out.kind in ("ok", "typed"), out.detail  # never a traceback or a hang
    if out.kind == "typed":
        assert out.code == 2 and out.stdout == ""
        assert sum(line.startswith(("error:", "d4g-edge")) for line in out.stderr.splitlines()) == 1
    records = [json.loads(line) for line in out.stdout.splitlines()]
    for r in records:  # strict JSON, finite numbers
        assert all(np.isfinite(r[k]) for k in ("lat", "lon", "uncertainty_m"))
    return out, records


def _save(bundle, path: Path, fmt: str = "PNG") -> Path:
    Image.fromarray(bundle["frame"]).save(path, fmt)
    return path


# ---- sidecars ----------------------------------------------------------------------------------

BAD_SIDECARS = {
    "odometry_str": '{"odometry": "bad"}',
    "odometry_int": '{"odometry": 5}',
    "odometry_short": '{"odometry": [1]}',
    "odometry_long": '{"odometry": [1, 2, 3]}',
    "odometry_nan": '{"odometry": [NaN, 0]}',
    "odometry_heading_nan": '{"odometry": [1, NaN]}',
    "odometry_inf": '{"odometry": [Infinity, 0]}',
    "odometry_negative": '{"odometry": [-1, 0]}',
    "odometry_huge": '{"odometry": [1e300, 0]}',
    "odometry_overflow": '{"odometry": [1' + "0" * 400 + ", 0]}",
    "odometry_bool": '{"odometry": [true, 0]}',
    "odometry_object": '{"odometry": {"m": 1, "deg": 2}}',
    "odometry_strings": '{"odometry": ["1", "2"]}',
    "heading_str": '{"heading_deg": "north"}',
    "heading_nan": '{"heading_deg": NaN}',
    "heading_inf": '{"heading_deg": -Infinity}',
    "heading_list": '{"heading_deg": [90]}',
    "heading_bool": '{"heading_deg": false}',
    "altitude_nan": '{"altitude_m": NaN}',
    "altitude_negative": '{"altitude_m": -10}',
    "altitude_zero": '{"altitude_m": 0}',
    "altitude_high": '{"altitude_m": 60000}',
    "altitude_str": '{"altitude_m": "high"}',
    "pitch_horizon": '{"pitch_deg": 90}',
    "pitch_negative": '{"pitch_deg": -1}',
    "pitch_inf": '{"pitch_deg": Infinity}',
    "everything_bad": '{"odometry": "x", "heading_deg": "y", "altitude_m": "z", "pitch_deg": []}',
    "not_json": "{odometry: [1, 2]}",
    "half_written": '{"odometry": [1, ',
    "a_list": "[1, 2]",
    "a_number": "5",
    "a_string": '"odometry"',
    "empty_file": "",
    "deep": "[" * 50_000,
    "bom": '\ufeff{"odometry": [1, 2]}',
    "huge": '{"odometry": [1, 2], "pad": "' + "x" * 200_000 + '"}',
}
GOOD_SIDECARS = {
    "nulls": '{"odometry": null, "heading_deg": null, "altitude_m": null, "pitch_deg": null}',
    "empty_object": "{}",
    "unknown_keys": '{"lat": 40.0, "lon": -88.0, "note": "x"}',
    "heading_wraps": '{"heading_deg": -720.5, "odometry": [0, 725]}',
}


@pytest.mark.parametrize("case", sorted(BAD_SIDECARS))
def test_sdk_corpus_follow_bad_sidecar(bundle, tmp_path, warnings_log, case):
    folder = tmp_path / "frames"
    folder.mkdir()
    _save(bundle, folder / "f000.png")
    _save(bundle, folder / "f001.png")
    (folder / "f001.png.json").write_text(BAD_SIDECARS[case], encoding="utf-8")
    out, records = _run(bundle, folder, *STOP_AFTER_2)
    assert out.kind == "ok" and len(records) == 2, out.detail  # the frame is still used
    named = [w for w in warnings_log if "f001.png" in w]
    assert len(named) == 1, warnings_log  # ONE warning naming the file


@pytest.mark.parametrize("case", sorted(GOOD_SIDECARS))
def test_sdk_corpus_follow_good_sidecar(bundle, tmp_path, warnings_log, case):
    folder = tmp_path / "frames"
    folder.mkdir()
    _save(bundle, folder / "f000.png")
    _save(bundle, folder / "f001.png")
    (folder / "f001.png.json").write_text(GOOD_SIDECARS[case])
    out, records = _run(bundle, folder, *STOP_AFTER_2)
    assert out.kind == "ok" and len(records) == 2, out.detail
    assert not [w for w in warnings_log if "f001.png" in w]


def _odd_sidecar(kind: str, path: Path) -> None:
    if kind == "directory":
        path.mkdir()
    elif kind == "broken_link":
        path.symlink_to(path.with_name("nowhere.json"))
    elif kind == "fifo":
        os.mkfifo(path)  # opening it would block for ever
    elif kind == "not_utf8":
        path.write_bytes(b'{"odometry": [1, 2], "x": "\xff\xfe"}')
    elif kind == "unreadable":
        path.write_text('{"odometry": [1, 2]}')
        path.chmod(0)


@pytest.mark.parametrize("kind", ["directory", "broken_link", "fifo", "not_utf8", "unreadable"])
def test_sdk_corpus_follow_odd_sidecar_file(bundle, tmp_path, warnings_log, kind):
    folder = tmp_path / "frames"
    folder.mkdir()
    _save(bundle, folder / "f000.png")
    _odd_sidecar(kind, folder / "f000.png.json")
    out, records = _run(bundle, folder)
    assert out.kind == "ok" and len(records) == 1, out.detail
    assert len([w for w in warnings_log if "f000.png.json" in w]) <= 1


# ---- frame folders -----------------------------------------------------------------------------


def _folder_case(case: str, bundle, root: Path) -> tuple[Path, int]:
    """Build the folder of ``case``; returns (source, frames expected to be fixed)."""
    f = root / "frames"
    f.mkdir()
    good = _save(bundle, f / "f000.png")
    if case == "empty":
        good.unlink()
        return f, 0
    if case == "junk_files":
        (f / "notes.txt").write_text("x")
        (f / "f001.jpg").write_bytes(b"<html>403 Forbidden</html>")
        (f / "f002.png").write_bytes(os.urandom(4096))
        return f, 1
    if case == "hidden_and_temp_names":  # a writer's temporary names are not frames
        (f / ".f001.png").write_bytes(good.read_bytes()[:100])
        (f / "f002.png.tmp").write_bytes(good.read_bytes()[:100])
        (f / "f003.png.part").write_bytes(b"")
        return f, 1
    if case == "broken_symlink":
        (f / "f001.jpg").symlink_to(root / "gone.jpg")
        return f, 1
    if case == "symlink_loop":
        (f / "f001.jpg").symlink_to(f / "f002.jpg")
        (f / "f002.jpg").symlink_to(f / "f001.jpg")
        return f, 1
    if case == "good_symlink":
        (f / "f001.png").symlink_to(good)
        return f, 2
    if case == "zero_byte":
        (f / "f001.jpg").write_bytes(b"")
        return f, 1
    if case == "truncated_png":
        (f / "f001.png").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return f, 1
    if case == "truncated_jpeg":
        jpg = _save(bundle, root / "x.jpg", "JPEG")
        (f / "f001.jpg").write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
        return f, 1
    if case == "header_only":
        (f / "f001.png").write_bytes(good.read_bytes()[:8])
        return f, 1
    if case == "decompression_bomb":  # a valid PNG header claiming 200k x 200k pixels
        Image.new("1", (1, 1)).save(f / "f001.png")
        data = bytearray((f / "f001.png").read_bytes())
        data[16:24] = (200_000).to_bytes(4, "big") * 2
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # IHDR's CRC
        (f / "f001.png").write_bytes(bytes(data))
        return f, 1
    if case == "subfolder_named_jpg":
        (f / "f001.jpg").mkdir()
        return f, 1
    if case == "fifo_named_jpg":
        os.mkfifo(f / "f001.jpg")
        return f, 1
    if case == "unreadable":
        bad = _save(bundle, f / "f001.png")
        bad.chmod(0)  # root reads it anyway: then it is a frame like any other
        return f, -1
    if case == "non_utf8_name":
        fd = os.open(os.fsencode(f) + b"/f\xff001.png", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, good.read_bytes())
        os.close(fd)
        return f, 2
    if case == "upper_case_suffix":
        _save(bundle, f / "F001.PNG")
        _save(bundle, f / "F002.JPEG", "JPEG")
        return f, 3
    if case == "jpeg_named_png":
        _save(bundle, f / "f001.png", "JPEG")
        return f, 2
    if case == "gif_named_png":
        _save(bundle, f / "f001.png", "GIF")
        return f, 2
    if case == "odd_modes":
        rgb = bundle["frame"]
        Image.fromarray(rgb[..., 0]).save(f / "f001.png")  # grayscale
        Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(f / "f002.png")  # RGBA
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(f / "f003.png")  # 16-bit
        return f, 4
    if case == "one_pixel":  # a fix, or a typed "degenerate image" skip: either is fine
        Image.new("RGB", (1, 1)).save(f / "f001.png")
        return f, -1
    if case == "only_sidecars":
        good.unlink()
        (f / "f000.png.json").write_text('{"odometry": [1, 2]}')
        return f, 0
    if case == "folder_is_a_file":
        good.unlink()
        f.rmdir()
        f.write_text("x")
        return f, -2
    if case == "missing_folder":
        return root / "nope", -2
    if case == "spaces_in_path":
        g = root / "my frames"
        g.mkdir()
        _save(bundle, g / "f 000.png")
        return g, 1
    raise AssertionError(case)


FOLDER_CASES = [
    "empty",
    "junk_files",
    "hidden_and_temp_names",
    "broken_symlink",
    "symlink_loop",
    "good_symlink",
    "zero_byte",
    "truncated_png",
    "truncated_jpeg",
    "header_only",
    "decompression_bomb",
    "subfolder_named_jpg",
    "fifo_named_jpg",
    "unreadable",
    "non_utf8_name",
    "upper_case_suffix",
    "jpeg_named_png",
    "gif_named_png",
    "odd_modes",
    "one_pixel",
    "only_sidecars",
    "folder_is_a_file",
    "missing_folder",
    "spaces_in_path",
]


@pytest.mark.parametrize("case", FOLDER_CASES)
def test_sdk_corpus_follow_frame_folder(bundle, tmp_path, case):
    source, expected = _folder_case(case, bundle, tmp_path)
    out, records = _run(bundle, source, "--retries", "1")
    if expected == -2:  # no folder to watch: a user error
        assert out.kind == "typed" and "frame folder" in out.detail, out.detail
    elif expected == -1:  # depends on who runs the test (root reads a mode-0 file)
        assert out.kind == "ok" and len(records) in (1, 2), out.detail
    else:
        assert out.kind == "ok" and len(records) == expected, (out.detail, records)


# ---- flags ------------------------------------------------------------------------------------

BAD_FLAGS = [
    ["--top-k", "0"],
    ["--top-k", "-1"],
    ["--top-k", "1.5"],
    ["--top-k", "x"],
    ["--interval", "-1"],
    ["--interval", "0"],
    ["--interval", "nan"],
    ["--interval", "inf"],
    ["--max-frames", "0"],
    ["--max-frames", "-3"],
    ["--max-frames", "two"],
    ["--temperature", "0"],
    ["--temperature", "-0.02"],
    ["--temperature", "nan"],
    ["--temperature", "inf"],
    ["--walk-sigma-m", "0"],
    ["--walk-sigma-m", "nan"],
    ["--walk-sigma-m", "-5"],
    ["--good-m", "0"],
    ["--good-m", "nan"],
    ["--good-m", "300"],
    ["--poor-m", "inf"],
    ["--poor-m", "x"],
    ["--good-m", "50", "--poor-m", "25"],
    ["--heading", "nan"],
    ["--heading", "inf"],
    ["--heading", "north"],
    ["--altitude", "0"],
    ["--altitude", "nan"],
    ["--altitude", "6000"],
    ["--pitch", "80"],
    ["--pitch", "-1"],
    ["--pitch", "nan"],
    ["--settle", "-1"],
    ["--settle", "nan"],
    ["--settle", "inf"],
    ["--retries", "-1"],
    ["--retries", "1.5"],
    ["--retries", "1000"],
    ["--idle-timeout", "-1"],
    ["--idle-timeout", "nan"],
    ["--idle-timeout", "inf"],
    ["--threads", "0"],
    ["--threads", "x"],
    ["--yaw-sigma-max", "0"],
    ["--yaw-sigma-max", "20"],
    ["--yaw-sigma-max", "nan"],
    ["--bundle", "/nonexistent/bundle"],
    ["--no-such-flag"],
    ["--top-k"],
    ["--mavlink", ""],
    ["--mavlink", "garbage"],
    ["--mavlink", "udpout:999.1.1.1:14550"],
    ["--mavlink", "udpout:nosuchhost.invalid:14550"],
    ["--mavlink", "udpout:127.0.0.1:99999"],
    ["--mavlink", "udpout:127.0.0.1:0"],
    ["--mavlink", "udpout:127.0.0.1"],
    ["--mavlink", "udpout:127.0.0.1:port"],
    ["--mavlink", "udpout::14550"],
    ["--mavlink", "/dev/ttyNOPE"],
    ["--mavlink", "/dev/ttyNOPE,57600"],
    ["--mavlink", "COM3"],
    ["--mavlink", "/dev/null"],
    ["--mavlink", "udpin:192.0.2.1:14550"],
]


def _ids(flags):
    return " ".join(flags) or "none"


@pytest.mark.parametrize("flags", BAD_FLAGS, ids=[_ids(f) for f in BAD_FLAGS])
def test_sdk_corpus_follow_bad_flag(bundle, tmp_path, flags):
    folder = tmp_path / "frames"
    folder.mkdir()
    _save(bundle, folder / "f000.png")
    # only flags that follow has always had, so that a flag check fails before its fix
    out, _ = _run(bundle, folder, *flags, fast=LEGACY_FAST)
    assert out.kind == "typed", out.detail  # one error line, exit 2, before any frame is fixed
    assert flags[0] in out.detail or flags[-1] in out.detail, out.detail


def test_sdk_corpus_follow_refused_tcp_and_busy_udp_port(bundle, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    _save(bundle, folder / "f000.png")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]  # bound, not listening: connections are refused
        out, _ = _run(bundle, folder, "--mavlink", f"tcp:127.0.0.1:{refused}", fast=LEGACY_FAST)
    assert out.kind == "typed", out.detail
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        url = f"udpin:127.0.0.1:{s.getsockname()[1]}"
        out, _ = _run(bundle, folder, "--mavlink", url, fast=LEGACY_FAST)
    assert out.kind == "typed", out.detail


GOOD_FLAGS = [
    ["--top-k", "1"],
    ["--top-k", "100000"],  # more than the bundle's tiles: all of them
    ["--max-frames", "1"],
    ["--heading", "720"],
    ["--heading", "-90"],
    ["--idle-timeout", "0"],
    ["--settle", "0"],
    ["--retries", "0"],
    ["--good-m", "244", "--poor-m", "244"],
    ["--yaw-sigma-max", "10"],
    ["--threads", "1"],
    ["--mavlink", "udpout:127.0.0.1:9"],
    ["--mavlink", "udpout:localhost:9"],
]


@pytest.mark.parametrize("flags", GOOD_FLAGS, ids=[_ids(f) for f in GOOD_FLAGS])
def test_sdk_corpus_follow_good_flag(bundle, tmp_path, flags):
    folder = tmp_path / "frames"
    folder.mkdir()
    _save(bundle, folder / "f000.png")
    _save(bundle, folder / "f001.png")
    out, records = _run(bundle, folder, *STOP_AFTER_2, *flags)
    assert out.kind == "ok", out.detail
    assert len(records) == (1 if "--max-frames" in flags else 2)
