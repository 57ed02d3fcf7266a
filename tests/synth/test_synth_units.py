"""Parts of train.synth that need no rendering: tile cover, config, output guard, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from train.synth import OutputDirError, SynthConfig, parse_size
from train.synth.__main__ import build_parser
from train.synth._output import prepare_output, write_info
from train.synth.vigor import covering_tiles


def test_covering_tiles_are_the_four_tiles_holding_the_point():
    stride = 45.0  # tiles of 90 m on a 45 m grid: 50 % overlap
    rng = np.random.default_rng(0)
    for east, north in rng.uniform(-500, 500, size=(300, 2)):
        tiles = covering_tiles(east, north, stride)
        assert len(set(tiles)) == 4
        # brute force over the neighbourhood: which tiles contain the point at all?
        holding = {
            (i, j)
            for i in range(round(east / stride) - 3, round(east / stride) + 4)
            for j in range(round(north / stride) - 3, round(north / stride) + 4)
            if abs(east - i * stride) <= stride and abs(north - j * stride) <= stride
        }
        assert set(tiles) == holding
        i0, j0 = tiles[0]  # the positive: the point is in its central quarter
        assert abs(east - i0 * stride) <= stride / 2 and abs(north - j0 * stride) <= stride / 2


def test_parse_size_and_config_validation(tmp_path):
    assert parse_size("32x128") == (32, 128)
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_size("32by128")
    with pytest.raises(ValueError, match="divisible by 4"):
        SynthConfig("cvusa", tmp_path, pano_size=(32, 126))
    with pytest.raises(ValueError, match="layout"):
        SynthConfig("kitti", tmp_path)
    with pytest.raises(ValueError, match="two cities"):
        SynthConfig("vigor", tmp_path, train=1)
    cfg = SynthConfig("cvusa", str(tmp_path), sat_size=64, tile_m=96.0)
    assert cfg.gsd_m == 1.5 and cfg.out == tmp_path
    assert "workers" not in cfg.fingerprint() and cfg.fingerprint()["sat_size"] == 64


def test_refuses_foreign_or_different_content(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    cfg = SynthConfig("cvusa", tmp_path)
    with pytest.raises(OutputDirError, match=r"not written by train\.synth"):
        prepare_output(cfg, ("bingmap",))
    write_info(cfg, "complete")
    prepare_output(cfg, ("bingmap",))  # the same dataset: allowed (regenerates)
    other = SynthConfig("cvusa", tmp_path, seed=5)
    with pytest.raises(OutputDirError, match="different dataset"):
        prepare_output(other, ("bingmap",))
    (tmp_path / "bingmap").mkdir()
    (tmp_path / "bingmap/x.jpg").write_bytes(b"x")
    prepare_output(SynthConfig("cvusa", tmp_path, seed=5, overwrite=True), ("bingmap",))
    assert not (tmp_path / "bingmap").exists() and not (tmp_path / "synth_info.json").exists()
    assert (tmp_path / "mine.txt").read_text() == "user data"  # only owned paths go


def test_info_record(tmp_path):
    cfg = SynthConfig("vigor", tmp_path, train=4, test=4, seed=3)
    write_info(cfg, "writing")
    info = json.loads((tmp_path / "synth_info.json").read_text())
    assert info["layout"] == "vigor" and info["status"] == "writing"
    assert info["settings"]["seed"] == 3 and info["settings"]["pano_size"] == [128, 512]


def test_cli_parser_matches_config_fields():
    args = build_parser().parse_args(
        [
            "--layout",
            "vigor",
            "--out",
            "d",
            "--pano-size",
            "32x128",
            "--vigor-layout",
            "alt",
            "--overwrite",
        ]
    )
    cfg = SynthConfig(**vars(args))
    assert cfg.pano_size == (32, 128) and cfg.vigor_layout == "alt" and cfg.overwrite
    assert build_parser().parse_args(["--layout", "cvact", "--out", "d"]).pano_size == (128, 512)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--layout", "kitti", "--out", "d"])
