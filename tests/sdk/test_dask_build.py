"""tools.build_index --dask: the shard builds run as tasks on a 2-worker Dask LocalCluster and
merge into the same bundle as one serial build."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.bundle import Bundle
from tests.sdk._models import conv_onnx, student_config

pytest.importorskip("distributed")


@pytest.mark.slow  # a cluster of two processes, each generating the world: ~15 s
def test_dask_shards_merge_into_the_serial_bundle(tmp_path, capsys):
    from tools import build_index

    sat = conv_onnx(tmp_path / "satellite.onnx", student_config("satellite"), seed=2)
    common = ["--world", "3", "--size-m", "200", "--tile-size-m", "90", "--stride-m", "45"]
    common += ["--tile-px", "64", "--model", str(sat), "--storage", "float16"]
    assert build_index.main([*common, "--out", str(tmp_path / "serial")]) == 0
    dask = ["--dask", "local:2", "--shards", "2"]
    assert build_index.main([*common, "--out", str(tmp_path / "dask"), *dask]) == 0
    serial, sharded = Bundle.load(tmp_path / "serial"), Bundle.load(tmp_path / "dask")
    assert len(serial.tiles) == len(sharded.tiles) == 9  # 3 x 3 tiles
    # the merge orders rows shard by shard: match them by tile id
    a = np.argsort(serial.tiles.tile_id)
    b = np.argsort(sharded.tiles.tile_id)
    np.testing.assert_array_equal(serial.tiles.tile_id[a], sharded.tiles.tile_id[b])
    np.testing.assert_array_equal(serial.index.vectors[a], sharded.index.vectors[b])
    assert not (tmp_path / "dask.shards").exists()  # merged, then removed


def test_dask_without_shards_is_refused_before_any_work(tmp_path, capsys):
    from tools import build_index

    argv = ["--world", "3", "--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "o")]
    assert build_index.main([*argv, "--dask", "local:2"]) == 2
    assert "--shards N >= 1" in capsys.readouterr().err
