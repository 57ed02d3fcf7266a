"""VIGOR loader on hand-written splits in both folder layouts, including malformed ones."""

from __future__ import annotations

import numpy as np
import pytest

from tests.datasets.conftest import make_vigor
from train.datasets import DatasetFormatError, load, read_image


@pytest.mark.parametrize("layout", ["official", "alt"])
def test_cross_area_test_split(tmp_path, layout):
    info = make_vigor(tmp_path, layout)
    split = load("vigor", tmp_path, "test", mode="cross")
    # Chicago (4 tiles) then SanFrancisco (4 tiles): ids 0..7, one pano each
    assert split.num_references == 8 and len(split) == 2
    assert split.reference_ids.tolist() == list(range(8))
    chicago_tiles, chicago_pano = info["Chicago"]
    assert split.reference_names[:4] == tuple(chicago_tiles)
    assert split.query_names[0] == chicago_pano
    # the label line lists tiles[1] first (positive) then tiles 0, 2, 3 (semi-positives)
    assert split.positive_index.tolist() == [1, 5]
    assert split.query_ids.tolist() == [1, 5]
    assert split.semi_positive_ids.tolist() == [[0, 2, 3], [4, 6, 7]]
    np.testing.assert_allclose(split.positive_offsets_px[0], [[1.5, -2.0]] * 4)
    # positions parsed from the file names
    np.testing.assert_allclose(split.query_latlon[0], [40.0001, -79.9998])
    np.testing.assert_allclose(split.reference_latlon[1], [40.001, -80.0])
    folder = "Chicago/satellite" if layout == "official" else "satellite/Chicago"
    assert split.reference_paths[0] == tmp_path / folder / chicago_tiles[0]
    assert abs(int(read_image(split.query_paths[1])[0, 0, 2]) - 80) <= 3  # SanFrancisco's (JPEG)


def test_cross_area_train_and_same_area(tmp_path):
    make_vigor(tmp_path)
    train = load("vigor", tmp_path, "train", mode="cross")
    assert [p.parent.parent.name for p in train.query_paths] == ["NewYork", "Seattle"]
    same_train = load("vigor", tmp_path, "train")  # same-area is the default
    same_test = load("vigor", tmp_path, "test", mode="same")
    assert same_train.num_references == same_test.num_references == 16
    # same_area_balanced_train lists the panos of cities 0 and 2 (Chicago, SanFrancisco)
    assert [p.parent.parent.name for p in same_train.query_paths] == ["Chicago", "SanFrancisco"]
    assert [p.parent.parent.name for p in same_test.query_paths] == ["NewYork", "Seattle"]
    # NewYork is the 2nd city: its tiles have ids 4..7, positive tiles[1] -> id 5
    assert same_test.query_ids.tolist() == [5, 13]
    only = load("vigor", tmp_path, "test", mode="cross", cities=("Seattle",))
    assert only.num_references == 4 and only.query_ids.tolist() == [1]


def test_bad_label_line_names_file_and_line(tmp_path):
    make_vigor(tmp_path)
    label = tmp_path / "splits/Chicago/pano_label_balanced.txt"
    label.write_text(label.read_text() + "onlythree tokens here\n")
    with pytest.raises(DatasetFormatError) as err:
        load("vigor", tmp_path, "test", mode="cross")
    assert err.value.path == label and err.value.line == 2
    assert "expected 13 whitespace-separated tokens, got 3" in str(err.value)


def test_label_with_unknown_tile_or_bad_number(tmp_path):
    info = make_vigor(tmp_path)
    tiles, pano = info["Chicago"]
    label = tmp_path / "splits/Chicago/pano_label_balanced.txt"
    label.write_text(
        f"{pano} satellite_1.0_2.0.png 0 0 {tiles[0]} 0 0 {tiles[2]} 0 0 {tiles[3]} 0 0\n"
    )
    with pytest.raises(DatasetFormatError, match=r"line 1: tile 'satellite_1.0_2.0.png' is not"):
        load("vigor", tmp_path, "test", mode="cross")
    label.write_text(f"{pano} {tiles[1]} zero 0 {tiles[0]} 0 0 {tiles[2]} 0 0 {tiles[3]} 0 0\n")
    with pytest.raises(DatasetFormatError, match="line 1"):
        load("vigor", tmp_path, "test", mode="cross")


def test_bad_satellite_name_and_missing_files(tmp_path):
    info = make_vigor(tmp_path)
    sat_list = tmp_path / "splits/SanFrancisco/satellite_list.txt"
    sat_list.write_text(sat_list.read_text() + "tile_40_80.png\n")
    with pytest.raises(DatasetFormatError, match=r"satellite_list.txt, line 5"):
        load("vigor", tmp_path, "test", mode="cross")
    make_vigor(tmp_path / "b")
    tiles, pano = info["Chicago"]
    (tmp_path / "b/Chicago/satellite" / tiles[3]).unlink()
    with pytest.raises(FileNotFoundError) as err:
        load("vigor", tmp_path / "b", "test", mode="cross")
    assert err.value.filename.endswith(tiles[3]) and "line 4" in str(err.value)
    (tmp_path / "b/Chicago/satellite" / tiles[3]).write_bytes(b"")
    (tmp_path / "b/Chicago/panorama" / pano).unlink()
    with pytest.raises(FileNotFoundError, match=r"pano_label_balanced\.txt"):
        load("vigor", tmp_path / "b", "test", mode="cross")


def test_no_image_folders(tmp_path):
    make_vigor(tmp_path)
    (tmp_path / "Seattle/panorama").rename(tmp_path / "Seattle/pano")
    with pytest.raises(FileNotFoundError, match=r"Seattle.*tried"):
        load("vigor", tmp_path, "train", mode="cross")
