"""CVUSA loader on hand-written official-layout files, including malformed ones."""

from __future__ import annotations

import numpy as np
import pytest

from train.datasets import DatasetFormatError, load, read_image


def test_train_split_ids_paths_and_gps(cvusa_root):
    split = load("cvusa", cvusa_root, "train")
    assert len(split) == 3 and split.num_references == 3
    assert split.query_ids.tolist() == [1, 2, 5]
    assert split.reference_ids.tolist() == [1, 2, 5]
    assert split.positive_index.tolist() == [0, 1, 2]
    assert split.reference_paths[2] == cvusa_root / "bingmap/19/0000005.jpg"
    assert split.query_paths[2] == cvusa_root / "streetview/panos/0000005.jpg"
    # id 5 -> row 5 of all.csv: sat (40.005, -88), ground 1e-5 deg north of it
    np.testing.assert_allclose(split.reference_latlon[2], [40.005, -88.0])
    np.testing.assert_allclose(split.query_latlon[2], [40.00501, -88.0])
    # the file really is pair 5's: its red channel encodes the id (JPEG: approximately)
    assert abs(int(read_image(split.reference_paths[2])[0, 0, 0]) - 50) <= 3


def test_test_split_reads_val_csv(cvusa_root):
    split = load("cvusa", cvusa_root, "test")
    assert split.query_ids.tolist() == [3, 4]
    np.testing.assert_allclose(split.reference_latlon[:, 0], [40.003, 40.004])


def test_gps_is_optional(cvusa_root):
    (cvusa_root / "split_locations/all.csv").unlink()
    split = load("cvusa", cvusa_root, "train")
    assert split.query_latlon is None and split.reference_latlon is None
    with pytest.raises(ValueError, match=r"all\.csv"):
        split.neighbour_positions()


def test_neighbour_positions_are_metres(cvusa_root):
    xy = load("cvusa", cvusa_root, "test").neighbour_positions()
    # ids 3 and 4 are 0.001 deg of latitude apart = 111.19 km/deg * 0.001 on the mean sphere
    assert np.linalg.norm(xy[1] - xy[0]) == pytest.approx(
        np.pi / 180 * 6_371_008.8 * 0.001, rel=1e-9
    )


def test_short_row_names_file_and_line(cvusa_root):
    csv = cvusa_root / "splits/train-19zl.csv"
    lines = csv.read_text().splitlines()
    lines[1] = "bingmap/19/0000002.jpg,streetview/panos/0000002.jpg"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError) as err:
        load("cvusa", cvusa_root, "train")
    assert err.value.path == csv and err.value.line == 2
    assert "train-19zl.csv, line 2" in str(err.value) and "expected 3" in str(err.value)


def test_non_integer_satellite_name(cvusa_root):
    csv = cvusa_root / "splits/val-19zl.csv"
    csv.write_text("bingmap/19/abc.jpg,streetview/panos/0000003.jpg,streetview/annotations/x.png\n")
    with pytest.raises(DatasetFormatError, match=r"val-19zl.csv, line 1: .*integer basename"):
        load("cvusa", cvusa_root, "test")


def test_missing_image_is_file_not_found_naming_both_files(cvusa_root):
    (cvusa_root / "streetview/panos/0000004.jpg").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load("cvusa", cvusa_root, "test")
    assert err.value.filename.endswith("streetview/panos/0000004.jpg")
    assert "val-19zl.csv, line 2" in str(err.value)
    # without the up-front check the split loads; the error would come at read time
    split = load("cvusa", cvusa_root, "test", check_files=False)
    with pytest.raises(FileNotFoundError):
        read_image(split.query_paths[1])


def test_locations_file_too_short(cvusa_root):
    (cvusa_root / "split_locations/all.csv").write_text("40,-88,40,-88,0\n")
    with pytest.raises(DatasetFormatError, match="has 1 rows"):
        load("cvusa", cvusa_root, "train")


def test_missing_split_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-19zl\.csv"):
        load("cvusa", tmp_path, "train")
