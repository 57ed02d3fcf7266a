"""d4g_edge.build.builder: embed a real raster with a real encoder; shards + merge == one build;
an interrupted build resumes without redoing finished parts."""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from d4g_edge.build.builder import build_index
from d4g_edge.build.shards import merge_shards, parse_shard
from d4g_edge.build.tiles import open_tile_source
from d4g_edge.bundle import Bundle
from d4g_edge.errors import BundleError, D4GEdgeError, ModelMismatchError, TileSourceError
from d4g_edge.runtime import open_encoder
from tests.robustness.sdk_case import call
from tests.sdk._models import conv_onnx, degrees_world_file, student_config

LAT0, LON0, MPP = 40.0, -88.0, 0.5


@pytest.fixture(scope="module")
def raster(tmp_path_factory):
    d = tmp_path_factory.mktemp("raster")
    rgb = np.random.default_rng(0).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ortho.png")
    a = math.degrees(MPP / (6_371_008.8 * math.cos(math.radians(LAT0))))
    e = -math.degrees(MPP / 6_371_008.8)
    (d / "ortho.pgw").write_text(f"{a!r}\n0\n0\n{e!r}\n{LON0 + a / 2!r}\n{LAT0 + e / 2!r}\n")
    return d / "ortho.png"


def _source(raster):
    return open_tile_source(raster, tile_size_m=32, stride_m=8)  # 64-px tiles every 16 px


def test_build_embeds_every_tile(tmp_path, raster, tiny_models):
    src = _source(raster)
    out = build_index(
        src,
        tiny_models["satellite"],
        tmp_path / "b",
        ground=tiny_models["ground"],
        batch_size=7,
        part_size=10,
    )
    b = Bundle.load(out)
    assert len(b.tiles) == len(src) == 9 * 7
    assert b.manifest["georeference"]["stride_m"] == 8
    assert not (tmp_path / "b.parts").exists()
    sat = open_encoder(tiny_models["satellite"])
    tiles = list(src)
    z = sat.embed([t.read() for t in tiles[:5]])
    ids, scores = b.index.search(z, k=1)
    np.testing.assert_array_equal(b.tiles.tile_id[ids[:, 0]], [t.tile_id for t in tiles[:5]])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(b.tiles.lat[:5], [t.lat for t in tiles[:5]])


def test_shards_merge_to_the_same_bundle(tmp_path, raster, tiny_models):
    src = _source(raster)
    sat = tiny_models["satellite"]
    full = Bundle.load(build_index(src, sat, tmp_path / "full"))
    dirs = [build_index(src, sat, tmp_path / f"s{i}", shard=(i, 3)) for i in range(3)]
    with pytest.raises(BundleError, match="exactly once"):
        merge_shards(dirs[:2], tmp_path / "bad")
    merged = Bundle.load(merge_shards(dirs, tmp_path / "m", ground=tiny_models["ground"]))
    assert sorted(merged.tiles.tile_id) == sorted(full.tiles.tile_id)
    order = np.argsort(merged.tiles.tile_id)
    vf = full.index.vectors[np.argsort(full.tiles.tile_id)]
    np.testing.assert_allclose(merged.index.vectors[order], vf, atol=1e-6)
    assert merged.query_path is not None


def test_merge_refuses_foreign_shards(tmp_path, raster, tiny_models):
    src = _source(raster)
    other = conv_onnx(tmp_path / "sat2.onnx", student_config("satellite"), seed=9)
    a = build_index(src, tiny_models["satellite"], tmp_path / "a", shard=(0, 2))
    b = build_index(src, other, tmp_path / "b", shard=(1, 2))
    with pytest.raises(BundleError, match="satellite"):
        merge_shards([a, b], tmp_path / "m")


class _Failing:
    """The raster source, but reading tile ``fail_at`` raises (an interrupted build)."""

    def __init__(self, src, fail_at):
        self.src, self.fail_at, self.reads = src, fail_at, 0

    def __len__(self):
        return len(self.src)

    def describe(self):
        return self.src.describe()

    def __iter__(self):
        for k, t in enumerate(self.src):

            def read(t=t, k=k):
                self.reads += 1
                if k == self.fail_at:
                    raise KeyboardInterrupt
                return t.read()

            yield type(t)(t.tile_id, t.lat, t.lon, t.footprint_m, read)


def test_resume_skips_finished_parts(tmp_path, raster, tiny_models):
    sat = tiny_models["satellite"]
    with pytest.raises(KeyboardInterrupt):
        build_index(_Failing(_source(raster), 45), sat, tmp_path / "b", part_size=10)
    assert len(list((tmp_path / "b.parts").glob("part-*.npz"))) == 4
    again = _Failing(_source(raster), -1)
    build_index(again, sat, tmp_path / "b", part_size=10, resume=True)
    assert again.reads == 63 - 40  # only the unfinished parts were read
    ref = Bundle.load(build_index(_source(raster), sat, tmp_path / "ref"))
    got = Bundle.load(tmp_path / "b")
    np.testing.assert_allclose(got.index.vectors, ref.index.vectors, atol=1e-6)
    # resuming with another model is refused, not mixed
    with pytest.raises(KeyboardInterrupt):
        build_index(_Failing(_source(raster), 15), sat, tmp_path / "c", part_size=10)
    other = conv_onnx(tmp_path / "o.onnx", student_config("satellite"), seed=5)
    with pytest.raises(BundleError, match="cannot resume"):
        build_index(_source(raster), other, tmp_path / "c", part_size=10, resume=True)


def test_build_refuses_wrong_models(tmp_path, raster, tiny_models):
    with pytest.raises(BundleError, match="satellite one"):
        build_index(_source(raster), tiny_models["ground"], tmp_path / "x")
    foreign = conv_onnx(tmp_path / "g.onnx", student_config("ground", teacher_sha256="0" * 64))
    with pytest.raises(ModelMismatchError, match="teacher_sha256"):
        build_index(_source(raster), tiny_models["satellite"], tmp_path / "x", ground=foreign)


def test_parse_shard():
    assert parse_shard("2/8") == (2, 8)
    for bad in ("8/8", "x", "1/0", "-1/3"):
        with pytest.raises(BundleError, match="shard"):
            parse_shard(bad)


# ---- issue 21, items 11, 18-20: checked before any work, bounded, nodata, the bar ------------


class _Counting:
    """The raster source, counting how many tiles were read."""

    def __init__(self, src):
        self.src, self.reads = src, 0

    def __len__(self):
        return len(self.src)

    def describe(self):
        return self.src.describe()

    def __iter__(self):
        for t in self.src:

            def read(t=t):
                self.reads += 1
                return t.read()

            yield type(t)(t.tile_id, t.lat, t.lon, t.footprint_m, read)


def _existing_file(tmp_path):
    (tmp_path / "taken").write_text("a file")
    return tmp_path / "taken"


def _foreign_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")
    return tmp_path / "photos"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -3}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"part_size": 0}, "part_size"),
        ({"max_tiles": 0}, "max_tiles"),
        ({"threads": 0}, "threads"),
        ({"shard": (3, 3)}, "shard"),
        ({"shard": "x"}, "shard"),
        ({"cell_deg": 0.0}, "cell size"),
        ({"cell_deg": float("nan")}, "cell size"),
        ({"out": _existing_file}, "is a file"),
        ({"out": _foreign_folder}, "not a bundle"),
    ],
)
def test_bad_arguments_fail_before_any_work(tmp_path, raster, tiny_models, change, match):
    """Item 19: --batch-size 0 was a ValueError, --out at a file a NotADirectoryError after
    all the embedding: every argument is a typed error before a tile is read."""
    src = _Counting(_source(raster))
    kwargs = {"out": tmp_path / "b", **change}
    if callable(kwargs["out"]):
        kwargs["out"] = kwargs["out"](tmp_path)
    with pytest.raises(D4GEdgeError, match=match):
        build_index(src, tiny_models["satellite"], **kwargs)
    assert src.reads == 0
    assert not list(tmp_path.glob("*.parts"))


def test_tile_limit_is_checked_up_front(tmp_path, raster, tiny_models):
    """Item 18: a 0.1 mm stride (10^11 tiles) was listed tile by tile: a silent hang. Now the
    count is refused at once, with the count and both ways out."""
    src = open_tile_source(raster, tile_size_m=32, stride_m=1e-4)
    out = call(lambda: build_index(src, tiny_models["satellite"], tmp_path / "b"), timeout_s=20)
    assert out.kind == "typed", out.detail
    assert re.search(r"makes [\d,]{15,} tiles.*increase --stride-m.*--max-tiles", out.detail)
    small = _Counting(_source(raster))  # 63 tiles
    with pytest.raises(TileSourceError, match=r"63 tiles.*limit of 62"):
        build_index(small, tiny_models["satellite"], tmp_path / "c", max_tiles=62)
    assert small.reads == 0
    build_index(small, tiny_models["satellite"], tmp_path / "c", max_tiles=63)


def test_nodata_tiles_are_skipped_and_counted(tmp_path, tiny_models, caplog):
    """Item 20: 10 of a half-nodata raster's 25 tiles are > 50 % nodata: not indexed, logged."""
    from tests.sdk.test_tile_sources import _half_nodata_raster

    path, _ = _half_nodata_raster(tmp_path, "png-alpha")
    src = open_tile_source(path, tile_size_m=60, stride_m=30)
    with caplog.at_level(logging.INFO, logger="d4g_edge"):
        b = Bundle.load(build_index(src, tiny_models["satellite"], tmp_path / "b", part_size=4))
    assert len(b.tiles) == 15
    assert sorted(b.tiles.tile_id % 5) == sorted([2, 3, 4] * 5)
    assert "skipped 10 of 25 tiles: more than 50 % nodata" in caplog.text
    # a shard of all-nodata tiles (the sea of a country) is empty, and merges; a build is not
    left = open_tile_source(path, tile_size_m=60, stride_m=60)  # columns 0 (nodata), 120, 240
    sat = tiny_models["satellite"]
    dirs = [build_index(left, sat, tmp_path / f"s{i}", shard=(i, 3)) for i in range(3)]
    assert len(Bundle.load(merge_shards(dirs, tmp_path / "m")).tiles) == 6
    Image.fromarray(np.zeros((200, 200, 4), np.uint8)).save(tmp_path / "sea.png")
    degrees_world_file(tmp_path / "sea.pgw", LAT0, LON0, MPP)
    sea = open_tile_source(tmp_path / "sea.png", tile_size_m=60)
    with pytest.raises(TileSourceError, match="nodata: nothing to index"):
        build_index(sea, sat, tmp_path / "x")


def test_cli_error_mid_build_clears_the_progress_bar(tmp_path, tiny_models):
    """Item 11: a build that fails after its bar started ended the terminal on a stale 0 %
    bar redrawn after the ``error:`` line; the bar is cleared first now."""
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 300, 3), np.uint8)).save(
        tmp_path / "o.png"
    )
    data = (tmp_path / "o.png").read_bytes()
    (tmp_path / "o.png").write_bytes(data[: len(data) // 2])  # the header reads, pixels do not
    degrees_world_file(tmp_path / "o.pgw", LAT0, LON0, MPP)
    argv = ["build-index", "--tiles", str(tmp_path / "o.png"), "--tile-size-m", "40"]
    argv += ["--model", str(tiny_models["satellite"]), "--out", str(tmp_path / "b")]
    r = subprocess.run(
        [sys.executable, "-m", "d4g_edge", *argv], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2, r.stderr
    assert "embedding tiles" in r.stderr  # the bar had started
    lines = [s for s in re.split(r"[\r\n]", r.stderr) if s.strip()]
    assert lines[-1].startswith("error: ") and "truncated" in lines[-1], r.stderr[-500:]
    assert "Traceback" not in r.stderr
