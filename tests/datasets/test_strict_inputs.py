"""Issue 9: split files and coordinates that used to load wrongly or fail without a file name."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.datasets.conftest import CVACT_IDS, make_vigor, write_act_mat
from train.datasets import DatasetFormatError, load


def test_non_utf8_csv_names_file_and_line(cvusa_root):
    csv = cvusa_root / "splits/val-19zl.csv"
    lines = csv.read_bytes().splitlines(keepends=True)
    csv.write_bytes(lines[0] + lines[1].replace(b"bingmap", b"b\xe9ngmap"))
    with pytest.raises(DatasetFormatError, match=r"line 2: is not UTF-8") as err:
        load("cvusa", cvusa_root, "test")
    assert err.value.path == csv and err.value.line == 2


def test_byte_order_mark_is_not_part_of_the_first_path(cvusa_root):
    csv = cvusa_root / "splits/val-19zl.csv"
    plain = load("cvusa", cvusa_root, "test")
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
    assert load("cvusa", cvusa_root, "test").query_paths == plain.query_paths


@pytest.mark.parametrize(
    "sat", ["/etc/bingmap/19/0000003.jpg", "../CVUSA/bingmap/19/0000003.jpg", "C:\\x\\0000003.jpg"]
)
def test_paths_outside_the_root_are_refused(cvusa_root, sat):
    csv = cvusa_root / "splits/val-19zl.csv"
    rows = csv.read_text().splitlines()
    fields = rows[1].split(",")
    csv.write_text(rows[0] + "\n" + ",".join([sat, *fields[1:]]) + "\n")
    with pytest.raises(DatasetFormatError, match="leaves the dataset root") as err:
        load("cvusa", cvusa_root, "test")
    assert err.value.line == 2


@pytest.mark.parametrize("bad", ["nan", "91.5", "inf"])
def test_impossible_cvusa_coordinates_are_refused(cvusa_root, bad):
    loc = cvusa_root / "split_locations/all.csv"
    rows = loc.read_text().splitlines()
    rows[2] = bad + "," + rows[2].split(",", 1)[1]
    loc.write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetFormatError, match="not a latitude/longitude") as err:
        load("cvusa", cvusa_root, "test")
    assert err.value.path == loc and err.value.line == 3


def _utm():
    return [[690000.0 + 10 * i, 6090000.0 + 20 * i] for i in range(6)]


def test_cvact_utm_as_strings_names_the_variable(cvact_root):
    utm = np.array([[f"{e}", f"{n}"] for e, n in _utm()])
    write_act_mat(cvact_root / "ACT_data.mat", CVACT_IDS, [[0, 0]] * 6, [1], [6], [5, 6])
    # savemat of a string array needs the raw call: write_act_mat casts utm to float
    import scipy.io

    mat = scipy.io.loadmat(cvact_root / "ACT_data.mat")
    mat["utm"] = utm
    scipy.io.savemat(cvact_root / "ACT_data.mat", {k: v for k, v in mat.items() if k[:2] != "__"})
    with pytest.raises(DatasetFormatError, match=r"utm holds .* expected numbers"):
        load("cvact", cvact_root, "test")


def test_cvact_empty_split_index_says_so(cvact_root):
    write_act_mat(cvact_root / "ACT_data.mat", CVACT_IDS, _utm(), [1, 2, 4], [], [5, 6])
    with pytest.raises(DatasetFormatError, match=r"valSet\.valInd is empty"):
        load("cvact", cvact_root, "val")


def test_cvact_utm_outside_utm_range_is_refused(cvact_root):
    utm = _utm()
    utm[4][1] = 1e9  # row 5 is in valSetAll
    write_act_mat(cvact_root / "ACT_data.mat", CVACT_IDS, utm, [1, 2, 4], [6], [5, 6])
    with pytest.raises(DatasetFormatError, match="utm row 5"):
        load("cvact", cvact_root, "test")


def test_cvact_evaluation_splits_must_be_complete(cvact_root, caplog):
    missing = cvact_root / f"ANU_data_test/streetview/{CVACT_IDS[4]}_grdView.jpg"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        load("cvact", cvact_root, "test")
    assert str(missing) in str(err.value)
    # training keeps Sample4Geo's skip-with-warning for the release's few missing images
    (cvact_root / f"ANU_data_small/streetview/{CVACT_IDS[1]}_grdView.jpg").unlink()
    with caplog.at_level(logging.WARNING):
        assert len(load("cvact", cvact_root, "train")) == 2
    assert "skipping 1 of 3" in caplog.text


def test_vigor_empty_label_files(tmp_path, caplog):
    make_vigor(tmp_path)
    (tmp_path / "splits/Chicago/pano_label_balanced.txt").write_text("")
    with caplog.at_level(logging.WARNING):
        split = load("vigor", tmp_path, "test", mode="cross")
    assert len(split) == 1 and "Chicago" in caplog.text and "lists no panoramas" in caplog.text
    (tmp_path / "splits/SanFrancisco/pano_label_balanced.txt").write_text("\n")
    with pytest.raises(DatasetFormatError, match="lists no panoramas in Chicago, SanFrancisco"):
        load("vigor", tmp_path, "test", mode="cross")


def test_vigor_names_with_folders_are_refused(tmp_path):
    make_vigor(tmp_path)
    labels = tmp_path / "splits/Chicago/pano_label_balanced.txt"
    labels.write_text("../../NewYork/panorama/" + labels.read_text())
    with pytest.raises(DatasetFormatError, match="not a plain file name") as err:
        load("vigor", tmp_path, "test", mode="cross")
    assert err.value.path == labels and err.value.line == 1
