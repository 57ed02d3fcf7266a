"""pca-int8's full scan casts its codes a block at a time (to stay in cache): the scores must
be the plain product's, whatever the number of rows and queries, up to float32 rounding (a
block's shape may pick another BLAS kernel, which adds in another order)."""

import numpy as np
import pytest

from d4g_edge import intscore


def assert_same_product(got: np.ndarray, w: np.ndarray, codes: np.ndarray) -> None:
    ref = w @ codes.astype(np.float32).T
    assert got.dtype == np.float32 and got.shape == ref.shape
    # another summation order moves a float32 dot product by about one eps of sum |w_i c_i|
    # (measured: under 1); 8 of them still catch a row scored wrongly or missed
    bound = 8 * np.finfo(np.float32).eps * (np.abs(w) @ np.abs(codes.T))
    assert np.all(np.abs(got - ref) <= bound)


@pytest.mark.parametrize("rows", [0, 1, intscore._CAST - 1, intscore._CAST + 1, 9_000])
@pytest.mark.parametrize("queries", [1, 36])
def test_blockwise_scores_equal_the_plain_product(rows, queries):
    rng = np.random.default_rng(rows + queries)
    codes = rng.integers(-127, 128, (rows, 64), dtype=np.int8)
    w = rng.standard_normal((queries, 64)).astype(np.float32)
    assert_same_product(intscore.cast_scores(w, codes), w, codes)


@pytest.mark.parametrize(
    "scores", [intscore.cast_scores, lambda w, c: intscore.Int8Scores(c)(w)], ids=["cast", "int8"]
)
def test_a_memory_mapped_map_is_scored_too(tmp_path, scores):
    rng = np.random.default_rng(0)
    codes = rng.integers(-127, 128, (5_000, 16), dtype=np.int8)
    np.save(tmp_path / "c.npy", codes)
    mapped = np.load(tmp_path / "c.npy", mmap_mode="r")
    w = rng.standard_normal((3, 16)).astype(np.float32)
    assert_same_product(scores(w, mapped), w, codes)
