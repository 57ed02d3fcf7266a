"""d4g_edge.build: embed a real raster with a real encoder; shards + merge == one build;
an interrupted build resumes without redoing finished parts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from d4g_edge.build import build_index
from d4g_edge.bundle import Bundle
from d4g_edge.errors import BundleError, ModelMismatchError
from d4g_edge.runtime import open_encoder
from d4g_edge.shards import merge_shards, parse_shard
from d4g_edge.tiles import open_tile_source
from tests.sdk._models import conv_onnx, student_config

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
    assert merged.ground_path is not None


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
