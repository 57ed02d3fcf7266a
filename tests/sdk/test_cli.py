"""d4g-edge CLI: localize / info / build-index / merge / bench on real bundles; user mistakes
exit 2 with one line and no traceback."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from d4g_edge import localizer as localizer_mod
from d4g_edge.cli.app import main
from tests.sdk._models import pano_of_tile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def query(paired, tmp_path_factory):
    d = tmp_path_factory.mktemp("queries")
    tile = paired["tiles"][20]
    path = d / "q.png"
    Image.fromarray(pano_of_tile(tile.read())).save(path)
    (d / "q.png.json").write_text(json.dumps({"lat": tile.lat, "lon": tile.lon}))
    return path, tile


def test_localize_json_with_truth_sidecar(paired, query, capsys):
    path, tile = query
    assert (
        main(["localize", str(path), "--bundle", str(paired["bundle"]), "--json", "--top-k", "3"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["candidates"][0]["tile_id"] == tile.tile_id and len(out["candidates"]) == 3
    assert out["error_m"] == pytest.approx(0.0, abs=1e-6)
    # the panorama faces north; the searched heading is refined between the rolls (issue 23's
    # parabolic sub-step), so it lands near 0, not on it
    assert min(out["heading_deg"], 360.0 - out["heading_deg"]) < 5.0


def test_localize_table_prior_and_plot(paired, query, capsys, tmp_path):
    path, tile = query
    pytest.importorskip("matplotlib")
    args = [
        "localize",
        str(path),
        "--bundle",
        str(paired["bundle"]),
        "--plot",
        str(tmp_path / "p.png"),
        "--prior",
        f"{tile.lat},{tile.lon},30",
    ]
    assert main(args) == 0
    line = capsys.readouterr().out
    assert f"lat {tile.lat:.6f}" in line and "error 0.0 m" in line
    with Image.open(tmp_path / "p.png") as im:
        assert im.size[0] > 500


def test_info_build_merge_bench(paired, tmp_path, capsys, monkeypatch):
    raster = paired["dir"] / "ortho.png"
    common = [
        "--tiles",
        str(raster),
        "--model",
        str(paired["satellite"]),
        "--tile-size-m",
        "32",
        "--stride-m",
        "16",
    ]
    for i in range(2):
        assert (
            main(["build-index", *common, "--out", str(tmp_path / f"s{i}"), "--shard", f"{i}/2"])
            == 0
        )
    assert (
        main(
            [
                "merge",
                str(tmp_path / "s0"),
                str(tmp_path / "s1"),
                "--out",
                str(tmp_path / "m"),
                "--ground",
                str(paired["ground"]),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "verified" in out and "tiles: 20" in out
    # without a folder: $D4G_EDGE_BUNDLE, else the bundled default (as localize does)
    monkeypatch.setenv("D4G_EDGE_BUNDLE", str(tmp_path / "m"))
    assert main(["info"]) == 0
    assert f"bundle {tmp_path / 'm'} " in capsys.readouterr().out
    assert main(["bench", "--bundle", str(tmp_path / "m"), "--queries", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tiles"] == 20 and report["search"].startswith("exact")
    assert report["search_recall_at_1"] is None and report["hnsw_recall_at_1"] is None
    assert report["end_to_end"]["p50_ms"] >= report["search_only"]["p50_ms"]


def test_user_errors_exit_2(paired, tmp_path, capsys, monkeypatch):
    bundle = str(paired["bundle"])
    assert main(["localize", str(tmp_path / "none.jpg"), "--bundle", bundle]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert main(["localize", str(tmp_path / "bad.jpg"), "--bundle", bundle]) == 2
    assert "not an image" in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    monkeypatch.delenv(localizer_mod.BUNDLE_ENV, raising=False)
    monkeypatch.setattr(localizer_mod, "DEFAULT_BUNDLE", tmp_path / "none")
    assert main(["localize", str(tmp_path / "bad.jpg")]) == 2
    assert "no default bundle is installed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["localize", "x.jpg", "--prior", "1,2"])
    assert exc.value.code == 2
    assert (
        main(
            [
                "build-index",
                "--tiles",
                str(tmp_path / "nowhere"),
                "--model",
                str(paired["satellite"]),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )


def test_subprocess_no_traceback(tmp_path):
    (tmp_path / "img.jpg").write_bytes(b"\xff\xd8\xff truncated")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "d4g_edge",
            "localize",
            str(tmp_path / "img.jpg"),
            "--bundle",
            str(tmp_path / "missing"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")


def test_examples_run(paired, query, tmp_path):
    import os

    path, tile = query
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's d4g_edge, as if installed
    proc = subprocess.run(
        [
            sys.executable,
            "examples/localize_image.py",
            str(path),
            "--bundle",
            str(paired["bundle"]),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"lat {tile.lat:.6f}" in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            "examples/track_frames.py",
            str(path),
            str(path),
            "--bundle",
            str(paired["bundle"]),
            "--step-m",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2


# ---- issue 21 items 7-9: flags checked at parse time, strict JSON, --plot checked up front ---

BAD_FLAGS = [
    ("localize", "--heading", "nan"),
    ("localize", "--heading", "inf"),
    ("localize", "--heading", "-inf"),
    ("localize", "--heading", "north"),
    ("localize", "--heading", "1e400"),  # overflows to inf
    ("localize", "--altitude", "nan"),
    ("localize", "--altitude", "0"),
    ("localize", "--altitude", "-10"),
    ("localize", "--altitude", "inf"),
    ("localize", "--pitch", "nan"),
    ("localize", "--pitch", "-1"),
    ("localize", "--pitch", "90"),
    ("localize", "--prior", "nan,-88,30"),
    ("localize", "--prior", "40,-88,inf"),
    ("localize", "--prior", "91,-88,30"),
    ("localize", "--prior", "40,-181,30"),
    ("localize", "--prior", "40,-88,0"),
    ("localize", "--prior", "40,-88,-5"),
    ("localize", "--prior", "40,-88"),
    ("localize", "--truth", "nan,-88"),
    ("localize", "--truth", "95,-88"),
    ("localize", "--truth", "40"),
    ("localize", "--top-k", "0"),
    ("localize", "--top-k", "-3"),
    ("localize", "--top-k", "2.5"),
    ("localize", "--threads", "0"),
    ("localize", "--threads", "-1"),
    ("bench", "--queries", "0"),
    ("bench", "--queries", "-5"),
    ("bench", "--threads", "0"),
]


@pytest.mark.parametrize(("command", "flag", "value"), BAD_FLAGS)
def test_bad_flag_values_exit_2_at_parse_time(tmp_path, capsys, command, flag, value):
    # a bundle that does not exist: had the flag passed parsing, the error would name the bundle
    argv = [command] + (["q.jpg"] if command == "localize" else [])
    argv += ["--bundle", str(tmp_path / "none"), f"{flag}={value}"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "error:" in x]
    assert f"argument {flag}:" in line and "manifest" not in line


def _strict_json(line: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(line, parse_constant=refuse)


def test_json_output_is_strict(paired, query, tmp_path, capsys):
    import dataclasses

    from d4g_edge.cli.output import dumps
    from d4g_edge.localizer import Localizer

    path, _ = query
    fix = Localizer(paired["bundle"]).localize(path, top_k=2)
    bad = dataclasses.replace(fix, uncertainty_m=math.nan, score=math.inf)
    record = _strict_json(dumps({"image": "q", **bad.to_dict(), "error_m": -math.inf}))
    assert record["uncertainty_m"] is None and record["score"] is None
    assert record["error_m"] is None and record["lat"] == fix.lat
    # and the real command line, two images: one strict JSON object per line
    argv = ["localize", str(path), str(path), "--bundle", str(paired["bundle"]), "--json"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(_strict_json(x)["lat"] == fix.lat for x in lines)


def test_plot_into_missing_folder_refused_before_localizing(paired, query, tmp_path, capsys):
    path, _ = query
    out = tmp_path / "missing" / "p.png"
    with pytest.raises(SystemExit) as exc:
        main(["localize", str(path), "--bundle", str(paired["bundle"]), "--plot", str(out)])
    assert exc.value.code == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "does not exist" in cap.err and "Traceback" not in cap.err
    for bad, match in ((tmp_path, "is a folder"), (tmp_path / "p.xyz", "file type")):
        with pytest.raises(SystemExit):
            main(["localize", str(path), "--bundle", str(paired["bundle"]), "--plot", str(bad)])
        assert match in capsys.readouterr().err


def test_plot_without_suffix_is_png_at_that_path(paired, query, tmp_path):
    pytest.importorskip("matplotlib")
    path, _ = query
    out = tmp_path / "picture"
    assert main(["localize", str(path), "--bundle", str(paired["bundle"]), "--plot", str(out)]) == 0
    assert not (tmp_path / "picture.png").exists()
    with Image.open(out) as im:
        assert im.format == "PNG"


def test_plot_without_matplotlib_is_a_typed_error(paired, query, tmp_path, capsys, monkeypatch):
    path, _ = query
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import raises ImportError
    argv = ["localize", str(path), "--bundle", str(paired["bundle"]), "--plot", str(tmp_path / "p")]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "pip install matplotlib" in err and "Traceback" not in err


def test_missing_image_among_several_refused_before_any_answer(paired, query, tmp_path, capsys):
    path, _ = query
    argv = ["localize", str(path), str(tmp_path / "nope.jpg"), "--bundle", str(paired["bundle"])]
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "nope.jpg does not exist" in cap.err
    assert main(["localize", str(tmp_path), "--bundle", str(paired["bundle"])]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "sidecar",
    [
        b"not json",
        b"",
        b"{}",
        b'{"lat": 40.0}',
        b'{"lat": "north", "lon": -88}',
        b'{"lat": [40], "lon": -88}',
        b'{"lat": true, "lon": -88}',
        b'{"lat": NaN, "lon": -88}',
        b'{"lat": 100, "lon": -88}',
        b"[40, -88]",
        b"\xff\xfe\x00",
        b"[" * 100_000,  # deep nesting: RecursionError in the json module
    ],
)
def test_broken_truth_sidecar_is_skipped(paired, query, tmp_path, capsys, sidecar):
    path, _ = query
    img = tmp_path / "q.png"
    img.write_bytes(path.read_bytes())
    (tmp_path / "q.png.json").write_bytes(sidecar)
    assert main(["localize", str(img), "--bundle", str(paired["bundle"]), "--json"]) == 0
    record = _strict_json(capsys.readouterr().out)
    assert record["error_m"] is None and math.isfinite(record["lat"])


def test_log_lines_go_to_the_current_stderr(paired, query, tmp_path):
    """main() run in-process twice under different redirections (as sdk_case.cli does): the
    second run's warnings reach its own stderr, not the first run's (closed) stream."""
    import contextlib
    import io

    path, _ = query
    img = tmp_path / "q.png"
    img.write_bytes(path.read_bytes())
    (tmp_path / "q.png.json").write_text("not json")
    argv = ["localize", str(img), "--bundle", str(paired["bundle"])]
    for _ in range(2):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            assert main(argv) == 0
        err.close()  # as a finished capture is
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    assert "ignoring the truth sidecar" in err.getvalue() and "Traceback" not in err.getvalue()
