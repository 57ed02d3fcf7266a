"""CVACT loader on a hand-written ACT_data.mat and ANU image folders."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from tests.datasets.conftest import CVACT_IDS, write_act_mat
from train.datasets import DatasetFormatError, load, read_image
from train.datasets.utm import latlon_to_utm


def test_train_uses_one_based_rows(cvact_root):
    split = load("cvact", cvact_root, "train")
    # trainInd = [1, 2, 4] are MATLAB rows -> panoIds[0], [1], [3]
    assert split.query_names == (CVACT_IDS[0], CVACT_IDS[1], CVACT_IDS[3])
    assert split.reference_ids.tolist() == [1, 2, 4] and split.query_ids.tolist() == [1, 2, 4]
    assert (
        split.query_paths[2] == cvact_root / f"ANU_data_small/streetview/{CVACT_IDS[3]}_grdView.jpg"
    )
    assert split.reference_paths[2] == (
        cvact_root / f"ANU_data_small/satview_polish/{CVACT_IDS[3]}_satView_polish.jpg"
    )
    # row 4's utm = (690030, 6090060)
    np.testing.assert_allclose(split.reference_utm[2], [690030.0, 6090060.0])
    np.testing.assert_allclose(split.neighbour_positions(), split.reference_utm)
    assert abs(int(read_image(split.query_paths[2])[0, 0, 1]) - 40) <= 3


def test_val_and_test_splits(cvact_root):
    val = load("cvact", cvact_root, "val")
    test = load("cvact", cvact_root, "test")
    assert val.query_ids.tolist() == [6]
    assert test.query_ids.tolist() == [5, 6]
    assert "ANU_data_small" in str(val.query_paths[0]) and "ANU_data_test" in str(
        test.query_paths[0]
    )


def test_latlon_from_utm_zone_55_south(cvact_root):
    split = load("cvact", cvact_root, "train")
    # map the loader's lat/lon back to UTM 55S: must reproduce the file's easting/northing
    e, n, _ = latlon_to_utm(split.reference_latlon[:, 0], split.reference_latlon[:, 1], "55s")
    np.testing.assert_allclose(np.stack([e, n], 1), split.reference_utm, atol=1e-6)
    assert np.all((-36 < split.reference_latlon[:, 0]) & (split.reference_latlon[:, 0] < -35))


def test_missing_image_skipped_by_default_or_error(cvact_root, caplog):
    (cvact_root / f"ANU_data_small/satview_polish/{CVACT_IDS[1]}_satView_polish.jpg").unlink()
    split = load("cvact", cvact_root, "train")
    assert split.query_ids.tolist() == [1, 4]
    with pytest.raises(FileNotFoundError) as err:
        load("cvact", cvact_root, "train", on_missing="error")
    assert err.value.filename.endswith(f"{CVACT_IDS[1]}_satView_polish.jpg")
    assert "trainSet.trainInd[2]" in str(err.value)


def test_wrong_struct_field(cvact_root):
    mat = cvact_root / "ACT_data.mat"
    scipy.io.savemat(
        mat,
        {
            "panoIds": np.array(CVACT_IDS),
            "utm": np.zeros((6, 2)),
            "trainSet": {"trainNum": 1.0, "indices": np.array([[1.0]])},
            "valSet": {"valNum": 0.0, "valInd": np.array([[2.0]])},
            "valSetAll": {"valNum": 0.0, "valInd": np.array([[2.0]])},
        },
    )
    with pytest.raises(DatasetFormatError) as err:
        load("cvact", cvact_root, "train")
    assert err.value.path == mat
    assert "'trainInd'" in str(err.value) and "indices" in str(err.value)


def test_missing_variable_and_bad_indices(cvact_root):
    mat = cvact_root / "ACT_data.mat"
    scipy.io.savemat(mat, {"panoIds": np.array(CVACT_IDS)})
    with pytest.raises(DatasetFormatError, match="'utm'"):
        load("cvact", cvact_root, "train")
    write_act_mat(mat, CVACT_IDS, np.zeros((6, 2)), [0, 1], [6], [6])  # 0 is not a MATLAB row
    with pytest.raises(DatasetFormatError, match=r"outside 1\.\.6"):
        load("cvact", cvact_root, "train")
    write_act_mat(mat, CVACT_IDS, np.zeros((5, 2)), [1], [6], [6])
    with pytest.raises(DatasetFormatError, match=r"utm has shape \(5, 2\)"):
        load("cvact", cvact_root, "val")


def test_not_a_mat_file(cvact_root):
    (cvact_root / "ACT_data.mat").write_bytes(b"definitely not MATLAB")
    with pytest.raises(DatasetFormatError, match=r"ACT_data\.mat"):
        load("cvact", cvact_root, "train")
