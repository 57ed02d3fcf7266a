"""d4g_edge.compressed: the pca-int8 index kind (PCA + int8 codes, coarse lists, exact
re-rank), its memory-mapped file, and its way through a bundle's manifest."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from d4g_edge.bundle import MANIFEST, Bundle, model_entry, write_bundle
from d4g_edge.compressed import CompressedIndex
from d4g_edge.errors import BundleChecksumError, BundleContentError, BundleError, SearchError
from d4g_edge.index import EmbeddingIndex, IndexParams
from d4g_edge.runtime import open_encoder
from d4g_edge.tiletable import TileTable
from tests.sdk._models import EMBED_DIM


def _clustered(n, d, seed, spread=0.35, centres=40, runs=0):
    """Unit rows around ``centres`` directions (what tile embeddings look like: a few
    dominant directions plus detail); ``runs``: in runs of that many rows around one centre
    each (a tile's polar centres)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d))
    label = np.arange(n) // runs % centres if runs else rng.integers(0, centres, n)
    x = c[label] + spread * rng.normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def _queries(v, n, seed, noise=0.2):
    rng = np.random.default_rng(seed)
    q = v[rng.integers(0, len(v), n)] + noise * rng.normal(size=(n, v.shape[1]))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def _recall(v, q, ids):
    """Tie-aware recall@1 against exact float32 search."""
    exact = q @ v.T
    return float((exact[np.arange(len(q)), ids[:, 0]] >= exact.max(1) - 1e-6).mean())


P = IndexParams(storage="pca-int8", pca_dims=24)


def test_full_rank_codes_rank_like_exact_search_and_score_cosines():
    v = _clustered(2000, 24, 0)
    q = _queries(v, 200, 1)
    index = EmbeddingIndex.build(v, P)
    assert isinstance(index, CompressedIndex) and not index.exact and index.lists == 1
    ids, scores = index.search(q, k=5)
    assert ids.shape == scores.shape == (200, 5)
    assert _recall(v, q, ids) >= 0.97  # int8 rounding only (all 24 components kept)
    true = np.einsum("qd,qkd->qk", q, v[ids])
    np.testing.assert_allclose(scores, true, atol=0.02)  # scores approximate the cosines
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    # the reconstruction of a row is close to the row
    rec = index.get_vectors([3, 17])
    assert (np.einsum("nd,nd->n", rec, v[[3, 17]]) > 0.999).all()


def test_fewer_components_cost_recall_and_bytes():
    v = _clustered(2000, 64, 2, spread=0.5)
    q = _queries(v, 200, 3)
    full = EmbeddingIndex.build(v, IndexParams(storage="pca-int8", pca_dims=64))
    few = EmbeddingIndex.build(v, IndexParams(storage="pca-int8", pca_dims=8))
    assert few.codes.nbytes == 2000 * 8 and full.codes.nbytes == 2000 * 64
    assert _recall(v, q, few.search(q, k=1)[0]) < _recall(v, q, full.search(q, k=1)[0])


def test_refine_reranks_exactly_from_the_float16_store():
    v = _clustered(1500, 48, 4)
    q = _queries(v, 150, 5, noise=0.3)
    coarse = EmbeddingIndex.build(v, IndexParams(storage="pca-int8", pca_dims=12))
    refined = EmbeddingIndex.build(v, IndexParams(storage="pca-int8", pca_dims=12, refine=200))
    ids, scores = refined.search(q, k=3)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, v[ids]), atol=2e-3)
    assert _recall(v, q, coarse.search(q, k=1)[0]) < 0.2  # 12 of 48 components: lost
    assert _recall(v, q, ids) >= 0.95  # ... found again among the codes' best 200
    np.testing.assert_allclose(refined.get_vectors([7]), v[[7]], atol=1e-3)  # the store


@pytest.mark.parametrize("coarse", [{"lists": 16}, {"group_rows": 25}])
def test_coarse_lists_probe_a_subset_and_all_lists_equal_the_full_scan(coarse):
    runs = coarse.get("group_rows", 0)
    v = _clustered(4000, 32, 6, centres=16 if not runs else 160, runs=runs)
    q = _queries(v, 100, 7)
    base = {"storage": "pca-int8", "pca_dims": 32, **coarse}
    lists = coarse.get("lists") or 4000 // runs
    every = EmbeddingIndex.build(v, IndexParams(**base, probe=lists))
    assert every.lists == lists and int(np.diff(every.offsets).sum()) == 4000
    ids_all, scores_all = every.search(q, k=4)
    ref_ids, ref_scores = every.search_exact(q, k=4)  # every code, no coarse step
    np.testing.assert_allclose(scores_all, ref_scores, atol=1e-5)
    np.testing.assert_array_equal(ids_all[:, 0], ref_ids[:, 0])
    few = EmbeddingIndex.build(v, IndexParams(**base, probe=2))
    ids, _ = few.search(q, k=4)
    assert ids.shape == (100, 4) and ((ids >= 0) & (ids < 4000)).all()
    assert (ids[:, 0] == ref_ids[:, 0]).mean() >= 0.7  # most answers in the 2 best lists
    # k larger than the probed lists hold: more lists are read, k rows come back
    many, _ = few.search(q[:3], k=600)
    assert many.shape == (3, 600) and all(len(set(r)) == 600 for r in many)


@pytest.mark.parametrize("params", [P, IndexParams(storage="pca-int8", pca_dims=24, lists=8)])
def test_candidates_restrict_the_search(params):
    v = _clustered(800, 24, 8)
    q = _queries(v, 5, 9)
    index = EmbeddingIndex.build(v, params)
    cand = np.arange(300, 420)
    ids, _ = index.search(q, k=3, candidates=cand)
    assert np.isin(ids, cand).all()
    ids1, _ = index.search(q, k=50, candidates=np.array([5, 9]))  # k above the candidates
    assert ids1.shape == (5, 2) and set(ids1.ravel()) == {5, 9}
    with pytest.raises(SearchError, match="no candidate"):
        index.search(q, candidates=np.array([], np.int64))
    with pytest.raises(SearchError, match="dimension"):
        index.search(np.ones((1, 25), np.float32))


@pytest.mark.parametrize("extra", [{}, {"lists": 8}, {"group_rows": 10}, {"refine": 20}])
def test_save_and_load_map_the_file_without_reading_it(tmp_path, extra):
    v = _clustered(600, 32, 10)
    q = _queries(v, 20, 11)
    params = IndexParams(storage="pca-int8", pca_dims=16, **extra)
    built = EmbeddingIndex.build(v, params)
    built.save(tmp_path / "index.bin")
    assert not [p for p in tmp_path.iterdir() if p.name != "index.bin"]  # no temp left
    again = EmbeddingIndex.load(tmp_path / "index.bin", 32, 600, params)
    assert isinstance(again.codes, np.memmap)  # mapped, not read (nor copied to float32)
    assert again.codes.dtype == np.int8
    for a, b in zip(built.search(q, k=5), again.search(q, k=5), strict=True):
        np.testing.assert_array_equal(a, b)
    size = (tmp_path / "index.bin").stat().st_size
    assert size >= again.memory_bytes() and size < again.memory_bytes() + 4096
    with open(tmp_path / "index.bin", "rb") as f:  # the same rows give the same bytes
        first = f.read()
    built.save(tmp_path / "twice.bin")
    assert (tmp_path / "twice.bin").read_bytes() == first


def test_open_time_does_not_grow_with_the_rows(tmp_path):
    params = IndexParams(storage="pca-int8", pca_dims=32, lists=1)  # one list: no k-means
    for n in (1000, 400_000):
        codec_rows = _clustered(min(n, 2000), 64, 12)
        from d4g_edge.compressed import Codec

        codec = Codec.fit(codec_rows, 32)
        codes = np.random.default_rng(0).integers(-127, 128, (n, 32)).astype(np.int8)
        CompressedIndex.from_codes(params, codec, codes).save(tmp_path / f"{n}.bin")
    times = {}
    for n in (1000, 400_000):
        t = time.perf_counter()
        EmbeddingIndex.load(tmp_path / f"{n}.bin", 64, n, params)
        times[n] = time.perf_counter() - t
    assert times[400_000] < 0.05, times  # 12.8 MB of codes: mapped, not read


def test_files_of_another_kind_or_shape_are_refused(tmp_path):
    v = _clustered(100, 16, 13)
    params = IndexParams(storage="pca-int8", pca_dims=8)
    EmbeddingIndex.build(v, IndexParams(storage="float16")).save(tmp_path / "f16.bin")
    with pytest.raises(BundleContentError, match="not a d4g-edge array file"):
        EmbeddingIndex.load(tmp_path / "f16.bin", 16, 100, params)
    EmbeddingIndex.build(v, params).save(tmp_path / "i.bin")
    with pytest.raises(BundleContentError, match=r"'codes' is int8 \(100, 8\).*\(120, 8\)"):
        EmbeddingIndex.load(tmp_path / "i.bin", 16, 120, params)
    other = IndexParams(storage="pca-int8", pca_dims=4)
    with pytest.raises(BundleContentError, match=r"was built with .*pca_dims.: 8"):
        EmbeddingIndex.load(tmp_path / "i.bin", 16, 100, other)
    data = (tmp_path / "i.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) - 500])
    with pytest.raises(BundleContentError, match="truncated"):
        EmbeddingIndex.load(tmp_path / "cut.bin", 16, 100, params)
    with pytest.raises(BundleError, match=r"pca_dims must be in 1\.\.16"):
        EmbeddingIndex.build(v, IndexParams(storage="pca-int8", pca_dims=17))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"pca_dims": 0}, "pca_dims must be >= 1"),
        ({"probe": 0}, "probe must be >= 1"),
        ({"refine": -1}, "refine must be >= 0"),
        ({"lists": 4, "group_rows": 25}, "not both"),
    ],
)
def test_params_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        IndexParams(storage="pca-int8", **kw)


def test_todays_kinds_keep_todays_manifest_fields():
    assert "pca_dims" not in IndexParams().to_dict()
    assert "refine" not in IndexParams(storage="float16").to_dict()
    d = IndexParams(storage="pca-int8", pca_dims=48, lists=7).to_dict()
    assert d["pca_dims"] == 48 and d["lists"] == 7
    assert IndexParams.from_dict(d) == IndexParams(storage="pca-int8", pca_dims=48, lists=7)


def _table(n):
    lat = 40.0 + np.arange(n) * 1e-4
    return TileTable.from_rows(np.arange(n) + 100, lat, np.full(n, -88.0), np.full(n, 50.0))


def test_a_bundle_records_the_kind_and_checksums_the_file(tmp_path, tiny_models):
    sat = open_encoder(tiny_models["satellite"])
    v = _clustered(300, EMBED_DIM, 14)
    entry = model_entry(sat.path, sat.config, sat.sha256)
    params = IndexParams(storage="pca-int8", pca_dims=EMBED_DIM, lists=4, probe=4)
    write_bundle(tmp_path / "b", v, _table(300), entry, params=params)
    b = Bundle.load(tmp_path / "b")
    assert isinstance(b.index, CompressedIndex) and b.index.lists == 4
    m = b.manifest
    assert m["index"]["storage"] == "pca-int8" and m["index"]["pca_dims"] == EMBED_DIM
    assert set(m["files"]) == {"index.bin", "tiles.npz"}
    ids, _ = b.index.search(v[[5, 200]], k=1)
    np.testing.assert_array_equal(ids[:, 0], [5, 200])
    # a manifest whose parameters disagree with the file is refused, not misread
    m["index"]["pca_dims"] = 4
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleContentError, match="was built with"):
        Bundle.load(tmp_path / "b")
    path = tmp_path / "b" / "index.bin"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleChecksumError, match=r"index\.bin"):
        Bundle.load(tmp_path / "b")


def test_the_compressed_kind_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, d4g_edge.compressed, d4g_edge._mmfile; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
