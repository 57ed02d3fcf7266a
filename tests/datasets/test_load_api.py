"""load() dispatch and argument errors; the numpy-only import guarantee; read_image errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from train.datasets import DATASETS, CrossViewSplit, DatasetFormatError, load, read_image


def test_unknown_dataset_suggests_close_match(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'cvusa'"):
        load("cvsua", tmp_path)
    assert DATASETS == ("cvact", "cvusa", "university1652", "vigor")


@pytest.mark.parametrize(
    ("name", "split", "valid"),
    [
        ("cvusa", "val", "train, test"),
        ("vigor", "tset", "did you mean 'test'"),
        ("cvact", "x", "val"),
    ],
)
def test_unknown_split_lists_valid(tmp_path, name, split, valid):
    with pytest.raises(ValueError, match=valid):
        load(name, tmp_path, split)


def test_vigor_only_arguments(tmp_path):
    with pytest.raises(ValueError, match="VIGOR"):
        load("cvusa", tmp_path, "test", mode="cross")
    with pytest.raises(ValueError, match="CVACT only"):
        load("vigor", tmp_path, "test", on_missing="skip")
    with pytest.raises(ValueError, match="same"):
        load("vigor", tmp_path, "test", mode="sideways")


def test_import_is_torch_free():
    code = "import sys, train.datasets; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_read_image_converts_to_rgb_and_resizes(tmp_path):
    Image.fromarray(np.full((6, 10), 200, np.uint8), mode="L").save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.shape == (6, 10, 3) and img.dtype == np.uint8 and (img == 200).all()
    assert read_image(tmp_path / "g.png", size=(3, 5)).shape == (3, 5, 3)


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        read_image(tmp_path / "nope.jpg")
    assert err.value.filename.endswith("nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DatasetFormatError, match=r"bad.jpg: cannot decode"):
        read_image(tmp_path / "bad.jpg")


def test_split_validates_shapes_and_id_consistency(tmp_path):
    common = dict(
        dataset="x",
        split="test",
        root=tmp_path,
        query_paths=(tmp_path,) * 2,
        reference_paths=(tmp_path,) * 3,
        reference_ids=np.array([7, 8, 9]),
    )
    CrossViewSplit(**common, query_ids=np.array([9, 7]), positive_index=np.array([2, 0]))
    with pytest.raises(ValueError, match="reference_ids\\[positive_index\\]"):
        CrossViewSplit(**common, query_ids=np.array([9, 8]), positive_index=np.array([2, 0]))
    with pytest.raises(ValueError, match="semi_positive_ids must have shape"):
        CrossViewSplit(
            **common,
            query_ids=np.array([9, 7]),
            positive_index=np.array([2, 0]),
            semi_positive_ids=np.zeros((2, 2), np.int64),
        )


def test_planar_positions_are_locally_metric_across_cities():
    from d4g_edge.geo import haversine_m
    from train.datasets._split import planar_positions

    rng = np.random.default_rng(0)
    cities = [(47.61, -122.33), (41.88, -87.63), (40.71, -74.0), (37.77, -122.42)]
    latlon = np.concatenate([c + rng.uniform(-0.01, 0.01, (20, 2)) for c in cities])
    xy = planar_positions(latlon)
    for a in range(len(latlon)):
        for b in range(len(latlon)):
            planar = np.linalg.norm(xy[a] - xy[b])
            if a // 20 == b // 20:  # same city: within 0.1 % of the great-circle distance
                true = haversine_m(*latlon[a], *latlon[b])
                assert planar == pytest.approx(true, rel=1e-3, abs=1e-6)
            else:  # different cities never look near
                assert planar > 1e6
