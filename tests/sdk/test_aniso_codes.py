"""d4g_edge.codes' anisotropic rounding (``BitCodec.quantize_along``) and pca-bits'
``aniso_cos``: the loss it minimises, the bias it removes, and the files before it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from d4g_edge._mmfile import map_arrays
from d4g_edge.bitindex import BitIndex
from d4g_edge.codes import BitCodec, across_weights, fit_codec
from d4g_edge.errors import BundleContentError, IndexParamsError
from d4g_edge.index import EmbeddingIndex, IndexParams
from tests.sdk.test_pca_bits import _runs


def _codec(y, var, row_bytes):
    bits, step, lo = fit_codec(y, var, row_bytes)
    keep = np.flatnonzero(bits)
    d = y.shape[1]
    codec = BitCodec(np.zeros(d, np.float32), np.eye(d, dtype=np.float32)[:, keep], bits[keep],
                     step[keep], lo[keep])  # fmt: skip
    return codec, keep


def _loss(codec, y, along, weights, cos, codes):
    err = codec.lo + codec.step * codes - y
    return cos**2 * np.einsum("nr,nr->n", along, err) ** 2 + (weights * err**2).sum(1)


def test_rounding_along_the_row_never_raises_its_loss_and_cancels_the_error_along_it():
    rng = np.random.default_rng(0)
    var = 0.8 ** np.arange(24)
    res = (rng.normal(size=(3000, 24)) * np.sqrt(var)).astype(np.float32)
    codec, keep = _codec(res, var, 6)
    y = res[:, keep]
    along = y + rng.normal(size=y.shape).astype(np.float32)  # a centroid's part too
    w = across_weights(var[keep], 0.9)
    assert w.dtype == np.float32 and np.isclose(w.sum(), 1 - 0.81) and (np.diff(w) <= 0).all()
    near = codec.quantize(y)
    np.testing.assert_array_equal(codec.quantize_along(y, along, w, 0.0), near)
    codes = codec.quantize_along(y, along, w, 0.9)
    top = (1 << codec.bits.astype(np.int64)) - 1
    assert (codes >= 0).all() and (codes <= top).all() and (codes != near).any()
    before = _loss(codec, y, along, w, 0.9, near)
    after = _loss(codec, y, along, w, 0.9, codes)
    assert (after <= before * (1 + 1e-5) + 1e-9).all()  # coordinate descent: never worse
    assert after.mean() < 0.5 * before.mean()

    def par(c):
        return np.abs(np.einsum("nr,nr->n", along, codec.lo + codec.step * c - y)).mean()

    assert par(codes) < 0.3 * par(near)  # the error along each row mostly cancels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_best_rows_are_no_longer_under_scored(seed):
    # nearest rounding shrinks the residuals that make a row a query's best match (clipped
    # and rounded towards the list's centroid), so the best rows score low on average
    v, q = _runs(4000, 64, seed, noise=0.3)
    exact = q @ v.T
    best = exact.argmax(1)
    bias = {}
    for cos in (0.0, 0.9):
        index = EmbeddingIndex.build(v, IndexParams(storage="pca-bits", row_bytes=16, lists=1,
                                                    aniso_cos=cos))  # fmt: skip
        got = [index.search(q[i : i + 1], 1, candidates=[b])[1][0, 0] for i, b in enumerate(best)]
        bias[cos] = float(np.mean(np.asarray(got) - exact.max(1)))
    assert bias[0.0] < -5e-4  # measured -0.0011 .. -0.0014
    assert abs(bias[0.9]) < 0.5 * abs(bias[0.0]), bias  # measured -6e-4 .. 2e-5


@pytest.mark.parametrize("cos", [-0.1, 1.0, 1.5])
def test_the_cosine_is_checked(cos):
    with pytest.raises(IndexParamsError, match=r"aniso_cos must be in \[0, 1\)"):
        IndexParams(storage="pca-bits", aniso_cos=cos)


def test_files_before_it_load_as_nearest_rounding_and_a_disagreeing_manifest_is_refused(
    tmp_path,
):
    v, _ = _runs(400, 16, 0, nq=1)
    old = IndexParams.from_dict({"storage": "pca-bits", "row_bytes": 8, "lists": 1})
    assert old.aniso_cos == 0.0  # a manifest written before the field
    assert IndexParams(storage="pca-bits").aniso_cos == 0.9  # new builds
    assert IndexParams.from_dict(IndexParams(storage="pca-bits").to_dict()).aniso_cos == 0.9
    assert "aniso_cos" not in IndexParams(storage="pca-int8").to_dict()
    BitIndex.build(v, old).save(tmp_path / "old.bin")
    header, _ = map_arrays(tmp_path / "old.bin")
    assert "aniso_cos" not in header["params"]  # as files were written before it
    assert isinstance(EmbeddingIndex.load(tmp_path / "old.bin", 16, 400, old), BitIndex)
    new = IndexParams(storage="pca-bits", row_bytes=8, lists=1)
    BitIndex.build(v, new).save(tmp_path / "new.bin")
    assert map_arrays(tmp_path / "new.bin")[0]["params"]["aniso_cos"] == 0.9
    for path, params in (("old.bin", new), ("new.bin", old)):
        with pytest.raises(BundleContentError, match="rebuild"):
            EmbeddingIndex.load(tmp_path / path, 16, 400, params)
    json.dumps(new.to_dict())  # the manifest stays JSON
