"""d4g_edge.codes / d4g_edge.bitindex: the pca-bits index kind (per-component bit allocation
over residuals of coarse lists), its memory-mapped file, and its way through a manifest."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from d4g_edge.bitindex import BitIndex
from d4g_edge.bundle import MANIFEST, Bundle, model_entry, write_bundle
from d4g_edge.codes import BitCodec, _quantizer_tables, fit_codec
from d4g_edge.errors import BundleContentError, BundleError, IndexParamsError, SearchError
from d4g_edge.index import EmbeddingIndex, IndexParams
from d4g_edge.retrieval import search_tiles
from d4g_edge.runtime import open_encoder
from d4g_edge.tiletable import TileTable
from tests.sdk._models import EMBED_DIM


def _runs(n, d, seed, detail=0.1, noise=0.05, nq=300, run=20):
    """Rows in runs of ``run`` near-duplicates (a tile's polar centres) around points with a
    decaying spectrum; queries are rows plus noise. Telling a run's rows apart needs the
    low-variance components, as on real maps."""
    rng = np.random.default_rng(seed)
    sd = 0.9 ** np.arange(d)
    base = rng.normal(size=(n // run, d)) * sd
    base[:, 0] += 3.0  # a direction every row shares, as embeddings do
    x = np.repeat(base, run, 0) + detail * rng.normal(size=(n, d)) * np.sqrt(sd)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, n, nq)] + noise * rng.normal(size=(nq, d)) * np.sqrt(sd)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x.astype(np.float32), q.astype(np.float32)


def _recall(v, q, ids):
    """Tie-aware recall@1 against exact float32 search."""
    exact = q @ v.T
    return float((exact[np.arange(len(q)), ids[:, 0]] >= exact.max(1) - 1e-6).mean())


def test_packing_any_widths_decodes_every_code_exactly():
    # every width 1..16 (digits of 8, 4, 2 and 1 bits), some components twice
    bits = np.array([*range(1, 17), 3, 5, 7, 9, 1, 1, 2], np.uint8)
    r = len(bits)
    rng = np.random.default_rng(0)
    step = rng.uniform(0.5, 2.0, r).astype(np.float32)
    lo = rng.uniform(-3, 0, r).astype(np.float32)
    codec = BitCodec(np.zeros(4, np.float32), np.zeros((4, r), np.float32), bits, step, lo)
    codes = rng.integers(0, 1 << bits.astype(np.int64), (50, r))
    codes[0] = (1 << bits.astype(np.int64)) - 1  # the largest code of every width
    codes[1] = 0
    row_bytes = codec.layout()[1]
    # the bits, plus at most a partial byte in each of the 4-, 2- and 1-bit blocks
    assert -(-int(bits.sum()) // 8) <= row_bytes <= int(bits.sum()) // 8 + 3
    packed = codec.pack(codes, row_bytes + 3)  # padding at the end is allowed
    assert packed.shape == (50, row_bytes + 3) and packed.dtype == np.uint8
    np.testing.assert_allclose(codec.decode(packed.T), lo + step * codes, rtol=1e-6)
    u = rng.normal(size=(3, r)).astype(np.float32)
    want = (u * step) @ codes.T
    np.testing.assert_allclose(codec.score(packed.T, codec.weights(u)), want, rtol=1e-4)


def test_the_allocation_fits_the_bytes_and_favours_high_variance_components():
    rng = np.random.default_rng(1)
    var = 0.8 ** np.arange(40)
    y = rng.normal(size=(4000, 40)) * np.sqrt(var)
    coded = []
    for row_bytes in (4, 10, 25):
        bits, step, lo = fit_codec(y, var, row_bytes)
        kept = np.flatnonzero(bits)
        zeros = np.zeros((2, len(kept)), np.float32)
        codec = BitCodec(zeros[0], zeros, bits[kept], step[kept], lo[kept])
        assert codec.layout()[1] <= row_bytes
        assert bits.sum() >= 8 * row_bytes - 3  # every bit used but partial bytes
        assert bits[:5].mean() > bits[-5:].mean() + 1
        coded.append(len(kept))
    assert coded == sorted(coded) and coded[0] < coded[-1]  # more bytes, more components
    # one component, one byte: 8 bits (3 to 7 would need a second byte)
    assert fit_codec(y[:, :1], var[:1], 1)[0].tolist() == [8]


def test_the_quantizer_clips_where_the_squared_error_is_least():
    # Max (1960): the best 4-level uniform quantizer of N(0, 1) has step 0.996 and error
    # 0.1188; its outer levels (+-1.49) are far inside the sample's largest magnitude
    y = np.random.default_rng(2).normal(size=(8000, 3)) * [[1.0, 2.0, 0.5]]
    sd = np.array([1.0, 2.0, 0.5])
    d, step = _quantizer_tables(y)
    np.testing.assert_allclose(step[2] / sd, 0.996, rtol=0.06)
    np.testing.assert_allclose(d[2] / sd**2, 0.1188, rtol=0.06)
    assert (d[1:] < d[:-1]).all()  # every bit lowers the error


@pytest.mark.parametrize("rows", [1, 2, 5])
def test_tiny_or_identical_rows_build_and_find_themselves(rows):
    # a cell of a cell-sharded bundle can hold one tile's rows, or one row
    v, _ = _runs(rows, 16, 10, nq=1, run=1)
    index = EmbeddingIndex.build(v, IndexParams(storage="pca-bits", row_bytes=8))
    ids, scores = index.search(v, k=1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(rows))
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=0.01)
    same = np.repeat(v[:1], rows, 0)  # nothing varies: no bits to spend, still a code
    index = EmbeddingIndex.build(same, IndexParams(storage="pca-bits", row_bytes=1))
    np.testing.assert_allclose(index.search(same, k=1)[1][:, 0], 1.0, atol=1e-3)


def test_recall_beats_pca_int8_at_the_same_bytes_per_row():
    v, q = _runs(4000, 64, 0)
    int8 = EmbeddingIndex.build(v, IndexParams(storage="pca-int8", pca_dims=32, lists=1))
    bits = EmbeddingIndex.build(v, IndexParams(storage="pca-bits", row_bytes=32, lists=1))
    assert isinstance(bits, BitIndex) and bits.codes.shape == (32, 4000)
    r_int8 = _recall(v, q, int8.search(q, k=1)[0])
    r_bits = _recall(v, q, bits.search(q, k=1)[0])
    assert r_bits >= r_int8 + 0.1, (r_bits, r_int8)  # measured 0.89 against 0.67
    ids, scores = bits.search(q, k=5)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, v[ids]), atol=0.01)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    rec = bits.get_vectors([3, 17])
    assert (np.einsum("nd,nd->n", rec, v[[3, 17]]) > 0.99).all()


@pytest.mark.parametrize("coarse", [{"lists": 40}, {"group_rows": 20}])
def test_lists_probe_a_subset_and_all_lists_equal_the_full_scan(coarse):
    v, q = _runs(4000, 64, 2, nq=100)
    lists = coarse.get("lists") or 200
    every = EmbeddingIndex.build(v, IndexParams(storage="pca-bits", probe=lists, **coarse))
    assert every.lists == lists and int(np.diff(every.offsets).sum()) == 4000
    assert (every.ids is None) == ("group_rows" in coarse)  # runs keep the rows' order
    ids_all, scores_all = every.search(q, k=4)
    ref_ids, ref_scores = every.search_exact(q, k=4)
    np.testing.assert_allclose(scores_all, ref_scores, atol=1e-5)
    np.testing.assert_array_equal(ids_all[:, 0], ref_ids[:, 0])
    assert _recall(v, q, ref_ids) >= 0.75  # residuals of the lists, 72 bytes a row
    few = EmbeddingIndex.build(v, IndexParams(storage="pca-bits", probe=4, **coarse))
    ids, _ = few.search(q, k=4)
    assert ((ids >= 0) & (ids < 4000)).all() and (ids[:, 0] == ref_ids[:, 0]).mean() >= 0.6
    many, _ = few.search(q[:3], k=600)  # more lists are read when k needs their rows
    assert many.shape == (3, 600) and all(len(set(r)) == 600 for r in many)


def test_the_leading_digits_first_keep_the_answers_of_scoring_every_row(monkeypatch):
    import d4g_edge.bitindex

    v, q = _runs(4000, 64, 9, nq=200)
    params = IndexParams(storage="pca-bits", row_bytes=24, lists=20, probe=10)
    index = EmbeddingIndex.build(v, params)
    assert 0 < index.codec.columns[0][0][1] < 20  # a few components with 8-bit digits
    ids, scores = index.search(q, k=5)  # ~2,000 rows probed, the best 256 scored in full
    monkeypatch.setattr(d4g_edge.bitindex, "_RERANK", 10**9)  # every probed row in full
    ids_all, scores_all = index.search(q, k=5)
    assert (ids[:, 0] == ids_all[:, 0]).mean() >= 0.97
    monkeypatch.setattr(d4g_edge.bitindex, "_RERANK", 1)  # the first stage alone: not enough
    assert (index.search(q, k=5)[0][:, 0] == ids_all[:, 0]).mean() < 0.95  # measured 0.84
    same = ids[:, 0] == ids_all[:, 0]
    np.testing.assert_allclose(scores[same, 0], scores_all[same, 0], atol=1e-5)


def test_candidates_restrict_the_search():
    v, q = _runs(2000, 32, 3, nq=5)
    index = EmbeddingIndex.build(v, IndexParams(storage="pca-bits", row_bytes=16, lists=8))
    cand = np.arange(300, 420)
    ids, scores = index.search(q, k=3, candidates=cand)
    assert np.isin(ids, cand).all()
    # the same rows score the same as in a scan of every code
    all_ids, all_scores = index.search_exact(q, k=2000)
    for i in range(len(q)):
        where = {int(r): float(s) for r, s in zip(all_ids[i], all_scores[i], strict=True)}
        np.testing.assert_allclose(scores[i], [where[int(r)] for r in ids[i]], atol=1e-5)
    ids1, _ = index.search(q, k=50, candidates=np.array([5, 9]))
    assert ids1.shape == (5, 2) and set(ids1.ravel()) == {5, 9}
    with pytest.raises(SearchError, match="no candidate"):
        index.search(q, candidates=np.array([], np.int64))
    with pytest.raises(SearchError, match="dimension"):
        index.search(np.ones((1, 33), np.float32))


@pytest.mark.parametrize("extra", [{}, {"lists": 8}, {"group_rows": 10}])
def test_save_and_load_map_the_file(tmp_path, extra):
    v, q = _runs(600, 32, 4, nq=20)
    params = IndexParams(storage="pca-bits", row_bytes=20, **extra)
    built = EmbeddingIndex.build(v, params)
    built.save(tmp_path / "index.bin")
    assert [p.name for p in tmp_path.iterdir()] == ["index.bin"]  # no temp left
    again = EmbeddingIndex.load(tmp_path / "index.bin", 32, 600, params)
    assert isinstance(again, BitIndex) and isinstance(again.codes, np.memmap)
    for a, b in zip(built.search(q, k=5), again.search(q, k=5), strict=True):
        np.testing.assert_array_equal(a, b)
    size = (tmp_path / "index.bin").stat().st_size
    assert 600 * 20 <= size < again.memory_bytes() + 4096
    built.save(tmp_path / "twice.bin")  # the same rows give the same bytes
    assert (tmp_path / "twice.bin").read_bytes() == (tmp_path / "index.bin").read_bytes()


def test_a_float16_memory_map_builds_chunk_by_chunk_like_float32_rows(tmp_path):
    v, _ = _runs(66_000, 16, 8, nq=1)  # more rows than one chunk (65,536)
    np.save(tmp_path / "rows.npy", v.astype(np.float16))
    rows = np.load(tmp_path / "rows.npy", mmap_mode="r")
    params = IndexParams(storage="pca-bits", row_bytes=8, lists=10)
    mapped = EmbeddingIndex.build(rows, params)
    plain = EmbeddingIndex.build(np.asarray(rows, np.float32), params)
    np.testing.assert_array_equal(mapped.codes, plain.codes)
    np.testing.assert_array_equal(mapped.ids, plain.ids)
    bad = v.copy()
    bad[65_900, 3] = np.nan  # in the second chunk
    with pytest.raises(BundleError, match="NaN"):
        EmbeddingIndex.build(bad, params)
    with pytest.raises(BundleError, match="non-empty"):
        EmbeddingIndex.build(np.zeros((0, 16), np.float32), params)


def test_files_of_another_kind_or_shape_are_refused(tmp_path):
    v, _ = _runs(200, 16, 5, nq=1)
    params = IndexParams(storage="pca-bits", row_bytes=8)
    EmbeddingIndex.build(v, IndexParams(storage="pca-int8", pca_dims=8)).save(tmp_path / "i8")
    with pytest.raises(BundleContentError, match=r"pca-int8.*expected 'd4g-edge/pca-bits/1'"):
        EmbeddingIndex.load(tmp_path / "i8", 16, 200, params)
    EmbeddingIndex.build(v, params).save(tmp_path / "b")
    with pytest.raises(BundleContentError, match=r"'codes' is uint8 \(8, 200\).*\(8, 210\)"):
        EmbeddingIndex.load(tmp_path / "b", 16, 210, params)
    with pytest.raises(BundleContentError, match=r"was built with .*row_bytes.: 8"):
        EmbeddingIndex.load(tmp_path / "b", 16, 200, IndexParams(storage="pca-bits", row_bytes=9))
    good = EmbeddingIndex.load(tmp_path / "b", 16, 200, params)
    bad = np.array(good.centroids)
    bad[0, 0] = np.nan
    BitIndex(params, good.codec, good.codes, bad, good.spread, good.offsets, good.ids).save(
        tmp_path / "nan"
    )
    with pytest.raises(BundleContentError, match="NaN"):
        EmbeddingIndex.load(tmp_path / "nan", 16, 200, params)
    data = (tmp_path / "b").read_bytes()
    (tmp_path / "cut").write_bytes(data[: len(data) - 300])
    with pytest.raises(BundleContentError, match="truncated"):
        EmbeddingIndex.load(tmp_path / "cut", 16, 200, params)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"row_bytes": 0}, r"row_bytes must be in 1\.\.1024"),
        ({"row_bytes": 5000}, r"row_bytes must be in 1\.\.1024"),
        ({"refine": 8}, "leave pca_dims .* and refine"),
        ({"pca_dims": 128}, "leave pca_dims .* and refine"),
        ({"lists": 4, "group_rows": 25}, "not both"),
        ({"probe": 0}, "probe must be >= 1"),
    ],
)
def test_params_are_checked(kw, match):
    with pytest.raises(IndexParamsError, match=match):
        IndexParams(storage="pca-bits", **kw)


def test_each_kind_names_only_its_fields_in_the_manifest():
    d = IndexParams(storage="pca-bits", row_bytes=76, lists=9).to_dict()
    assert d["row_bytes"] == 76 and d["lists"] == 9 and "pca_dims" not in d
    assert "refine" not in d
    assert IndexParams.from_dict(d) == IndexParams(storage="pca-bits", row_bytes=76, lists=9)
    assert "row_bytes" not in IndexParams(storage="pca-int8").to_dict()  # as before pca-bits
    assert "row_bytes" not in IndexParams().to_dict()


def test_a_bundle_records_the_kind_and_refuses_a_disagreeing_manifest(tmp_path, tiny_models):
    sat = open_encoder(tiny_models["satellite"])
    v, _ = _runs(300, EMBED_DIM, 6, nq=1)
    table = TileTable.from_rows(
        np.arange(300) + 100, 40.0 + np.arange(300) * 1e-4, np.full(300, -88.0), np.full(300, 50.0)
    )
    params = IndexParams(storage="pca-bits", row_bytes=24, lists=4, probe=4)
    write_bundle(
        tmp_path / "b", v, table, model_entry(sat.path, sat.config, sat.sha256), params=params
    )
    b = Bundle.load(tmp_path / "b")
    assert isinstance(b.index, BitIndex) and b.index.lists == 4
    m = b.manifest
    assert m["index"]["storage"] == "pca-bits" and m["index"]["row_bytes"] == 24
    ids, _ = b.index.search(v[[5, 200]], k=1)
    np.testing.assert_array_equal(ids[:, 0], [5, 200])
    m["index"]["row_bytes"] = 32
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleContentError, match="was built with"):
        Bundle.load(tmp_path / "b")


def test_a_cell_sharded_bundle_of_pca_bits_finds_its_rows(tmp_path, tiny_models):
    sat = open_encoder(tiny_models["satellite"])
    v, _ = _runs(400, EMBED_DIM, 11, nq=1)
    lat = 40.0 + np.repeat(np.arange(20), 20) * 2e-4  # cells of 0.001 deg: a few rows each
    lon = -88.0 + np.tile(np.arange(20), 20) * 2e-4
    table = TileTable.from_rows(np.arange(400) + 100, lat, lon, np.full(400, 20.0), 0.001)
    params = IndexParams(storage="pca-bits", row_bytes=16)
    entry = model_entry(sat.path, sat.config, sat.sha256)
    write_bundle(tmp_path / "b", v, table, entry, params=params, cells=True)
    b = Bundle.load(tmp_path / "b")
    assert len(b.manifest["index"]["cells"]) > 4
    ids, _ = b.index.search(v[[3, 250, 399]], k=1)  # rows are re-sorted by cell: ids
    np.testing.assert_array_equal(b.tiles.tile_id[ids[:, 0]], [103, 350, 499])


def test_a_flat_map_of_tiles_with_centres_is_searched_by_its_own_search():
    # search_tiles takes every row's score where an index has them; a flat pca-bits index
    # ranks rows by their leading digits first and has none (it raised AttributeError on a
    # pca-int8 field, so localize() failed on every small pca-bits bundle)
    n_tiles, centres = 60, 4
    v, _ = _runs(n_tiles * centres, EMBED_DIM, 12, run=centres, nq=1)
    index = EmbeddingIndex.build(v, IndexParams(storage="pca-bits", row_bytes=24))
    assert index.lists <= index.params.probe and index.all_scores(v[:2]) is None
    tile = np.repeat(np.arange(n_tiles), centres)
    rows = len(tile)
    table = TileTable.from_rows(tile, 40.0 + tile * 1e-4, np.full(rows, -88.0), np.full(rows, 50.0))
    bundle = SimpleNamespace(centres_per_tile=centres, tiles=table, index=index)
    ids, scores = search_tiles(bundle, v[[5, 77, 200]], 6, None)
    assert ids.shape == (3, 6) and (np.diff(scores, axis=1) <= 0).all()
    np.testing.assert_array_equal(tile[ids[:, 0]], [5 // centres, 77 // centres, 200 // centres])
    assert all(len(set(tile[r])) == 6 for r in ids)  # one row per tile


def test_d4g_edge_bench_names_the_search():
    from d4g_edge.cli.bench import describe

    v, _ = _runs(600, 32, 7, nq=1)
    index = EmbeddingIndex.build(v, IndexParams(storage="pca-bits", row_bytes=12, lists=6))
    assert describe(index).startswith(f"pca-bits (12 B a row, {index.codec.dims} components; 6")


def test_the_kind_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, d4g_edge.bitindex; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
