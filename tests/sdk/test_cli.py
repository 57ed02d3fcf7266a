"""d4g-edge CLI: localize / info / build-index / merge / bench on real bundles; user mistakes
exit 2 with one line and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from d4g_edge import localizer as localizer_mod
from d4g_edge.__main__ import main
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
    assert out["error_m"] == pytest.approx(0.0, abs=1e-6) and out["heading_deg"] == 0.0


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
    assert report["tiles"] == 20 and report["hnsw_recall_at_1"] == 1.0
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
