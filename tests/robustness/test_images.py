"""Issue 9 items 4-5: high-bit-depth images and decode errors inside DataLoader workers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from train.datasets import DatasetFormatError, ViewDataset, read_image


def test_16bit_png_is_scaled_by_its_bit_depth(tmp_path):
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "deep.png"
    Image.fromarray(gray.astype(np.uint16) * 257).save(path)  # 0..65535, full scale
    assert Image.open(path).mode.startswith("I;16")
    rgb = read_image(path)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)


@pytest.mark.parametrize(
    ("array", "name"),
    [
        (np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), "float.tif"),
        (np.arange(64, dtype=np.int32).reshape(8, 8) * 1000, "int32.tif"),
    ],
)
def test_images_without_a_defined_range_are_refused(tmp_path, array, name):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    with pytest.raises(DatasetFormatError, match=r"no defined 0\.\.max range") as err:
        read_image(path)
    assert err.value.path == path


def test_decode_error_in_a_dataloader_worker_names_the_file(tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    bad.write_bytes(b"<html>403</html>")
    # cache=False: the path taken when the image cache would not fit in RAM
    loader = DataLoader(ViewDataset([good, bad], 8, cache=False), batch_size=1, num_workers=1)
    with pytest.raises(DatasetFormatError) as err:
        list(loader)
    assert err.value.path == bad
    assert str(err.value).startswith(f"{bad}: cannot decode image")
    assert "Traceback" not in str(err.value)
