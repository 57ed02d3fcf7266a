"""pca-int8's unit rows (``IndexParams.unit_rows``, the default since 2026-12-05): each row's
projection is scaled to unit length before its codes, so a search ranks rows by their cosine
with the query in the kept components; bundles written before keep the plain projection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from d4g_edge.bundle import MANIFEST, Bundle, model_entry, write_bundle
from d4g_edge.compressed import CompressedIndex
from d4g_edge.errors import BundleContentError, BundleSchemaError, IndexParamsError
from d4g_edge.index import EmbeddingIndex, IndexParams
from d4g_edge.runtime import open_encoder
from d4g_edge.tiletable import TileTable
from tests.sdk._models import EMBED_DIM


def _split_rows(n: int, seed: int, signal: int = 8, dim: int = 64):
    """Unit rows whose ``signal`` leading dimensions (the larger variance: what the PCA keeps)
    tell them apart, plus noise of a different size in each row in the rest, and queries that
    are rows' signal parts alone: the plain projection favours the rows with little noise,
    the cosine in the kept components the query's own row."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, signal)) * 2.0
    noise = rng.normal(size=(n, dim - signal)) * rng.uniform(0.05, 0.6, (n, 1))
    rows = np.hstack([s, noise])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    truth = rng.choice(n, 200, replace=False)
    q = np.hstack([s[truth] + 0.3 * rng.normal(size=(200, signal)), np.zeros((200, dim - signal))])
    return rows.astype(np.float32), (q / np.linalg.norm(q, axis=1, keepdims=True)), truth


def test_unit_rows_rank_by_the_cosine_in_the_kept_components():
    rows, q, truth = _split_rows(3000, 0)
    unit = EmbeddingIndex.build(rows, IndexParams(storage="pca-int8", pca_dims=8))
    plain = EmbeddingIndex.build(rows, IndexParams(storage="pca-int8", pca_dims=8, unit_rows=False))
    assert unit.codec.unit_rows and not plain.codec.unit_rows
    # the cosine in the 8 kept dimensions, in float64: what unit rows approximate
    kept = rows[:, :8] / np.linalg.norm(rows[:, :8], axis=1, keepdims=True)
    best = (q[:, :8] @ kept.T).argmax(1)
    got_unit = unit.search(q, k=1)[0][:, 0]
    got_plain = plain.search(q, k=1)[0][:, 0]
    assert (got_unit == best).mean() >= 0.9
    assert (got_unit == truth).mean() > (got_plain == truth).mean() + 0.2


def test_all_components_kept_unit_rows_score_the_cosines():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(2000, 24)) + 2.0 * rng.normal(size=(1, 24))  # off-centre, like tiles
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    q = v[rng.integers(0, 2000, 100)] + 0.2 * rng.normal(size=(100, 24)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    index = EmbeddingIndex.build(v, IndexParams(storage="pca-int8", pca_dims=24))
    ids, scores = index.search(q, k=5)
    exact = q @ v.T
    assert (exact[np.arange(100), ids[:, 0]] >= exact.max(1) - 1e-6).mean() >= 0.95
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, v[ids]), atol=0.02)
    assert (np.einsum("nd,nd->n", index.get_vectors([3, 17]), v[[3, 17]]) > 0.999).all()


def test_manifests_without_the_field_are_the_plain_kind():
    assert IndexParams(storage="pca-int8").unit_rows  # new builds
    plain = IndexParams(storage="pca-int8", unit_rows=False)
    assert "unit_rows" not in plain.to_dict()  # the manifest bundles had before
    assert IndexParams.from_dict(plain.to_dict()) == plain
    assert IndexParams.from_dict({"storage": "pca-int8", "pca_dims": 64}).unit_rows is False
    new = IndexParams(storage="pca-int8")
    assert new.to_dict()["unit_rows"] is True and IndexParams.from_dict(new.to_dict()) == new
    for kind in ("hnswlib", "float16", "pca-bits"):
        assert "unit_rows" not in IndexParams(storage=kind).to_dict()
    with pytest.raises(IndexParamsError, match="unit_rows must be true or false"):
        IndexParams(storage="pca-int8", unit_rows="yes")


def test_a_bundle_says_which_and_a_file_of_the_other_is_refused(tmp_path, tiny_models):
    sat = open_encoder(tiny_models["satellite"])
    rng = np.random.default_rng(2)
    v = rng.normal(size=(300, EMBED_DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    table = TileTable.from_rows(
        np.arange(300), 40.0 + np.arange(300) * 1e-4, np.full(300, -88.0), np.full(300, 50.0)
    )
    entry = model_entry(sat.path, sat.config, sat.sha256)
    params = IndexParams(storage="pca-int8", pca_dims=EMBED_DIM)
    write_bundle(tmp_path / "b", v, table, entry, params=params)
    b = Bundle.load(tmp_path / "b")
    assert b.manifest["index"]["unit_rows"] is True
    assert isinstance(b.index, CompressedIndex) and b.index.codec.unit_rows
    np.testing.assert_array_equal(b.index.search(v[[5, 200]], k=1)[0][:, 0], [5, 200])
    m = json.loads((tmp_path / "b" / MANIFEST).read_text())
    del m["index"]["unit_rows"]  # now it says plain: the file's header disagrees
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleContentError, match="was built with"):
        Bundle.load(tmp_path / "b")
    m["index"]["unit_rows"] = "yes"
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleSchemaError, match="unit_rows must be true or false"):
        Bundle.load(tmp_path / "b")
