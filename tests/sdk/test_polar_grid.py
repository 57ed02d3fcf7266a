"""d4g_edge.polar: the sampling grid is computed once per geometry and the transform equals
the direct bilinear formula (a reference build transforms every tile 25 times)."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge import polar


def _reference(tile, height, width, north_column=0.5):
    """The transform written out directly, as d4g_edge.polar computed it before its grid cache."""
    img = tile.astype(np.float32)
    size = img.shape[0]
    radius = size / 2 * (1 - (np.arange(height) + 0.5) / height)
    azimuth = np.radians((np.arange(width) + 0.5) * 360.0 / width - 360.0 * north_column)
    col = np.clip(size / 2 + radius[:, None] * np.sin(azimuth)[None, :] - 0.5, 0, size - 1)
    row = np.clip(size / 2 - radius[:, None] * np.cos(azimuth)[None, :] - 0.5, 0, size - 1)
    c0 = np.minimum(np.floor(col).astype(np.int64), size - 2)
    r0 = np.minimum(np.floor(row).astype(np.int64), size - 2)
    fc, fr = (col - c0)[..., None], (row - r0)[..., None]
    top = img[r0, c0] * (1 - fc) + img[r0, c0 + 1] * fc
    bottom = img[r0 + 1, c0] * (1 - fc) + img[r0 + 1, c0 + 1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


@pytest.mark.parametrize(
    ("size", "height", "width", "north", "dtype"),
    [(128, 64, 256, 0.5, np.float32), (32, 8, 64, 0.5, np.uint8), (33, 7, 50, 0.25, np.float64)],
)
def test_cached_grid_equals_the_direct_formula(size, height, width, north, dtype):
    rng = np.random.default_rng(size)
    tile = (rng.random((size, size, 3)) * 255).astype(dtype)
    out = polar.polar_transform(tile, height, width, north_column=north)
    ref = _reference(tile, height, width, north)
    assert out.dtype == np.float32 and out.shape == (height, width, 3)
    np.testing.assert_allclose(out, ref, rtol=2e-7, atol=0)  # float64 sums, one rounding


def test_the_grid_is_computed_once_per_geometry():
    polar._polar_grid.cache_clear()
    tile = np.zeros((40, 40, 3), np.float32)
    for _ in range(5):
        polar.polar_transform(tile, 10, 80)
    polar.polar_transform(np.zeros((40, 40, 1), np.float32), 10, 80)  # channels do not matter
    info = polar._polar_grid.cache_info()
    assert info.misses == 1 and info.hits == 5
    index, weight = polar._polar_grid(40, 10, 80, 0.5)
    assert not index.flags.writeable and not weight.flags.writeable
    np.testing.assert_allclose(weight.sum(0), 1.0)
