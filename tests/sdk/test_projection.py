"""benchmarks.projection: a learned projection beats PCA where the discriminative directions
have low variance, and it is searched by today's pca-int8 index as it was trained."""

import numpy as np
import pytest

from benchmarks._projection_fit import fit_projection, group_r1, initial_basis
from benchmarks.projection import learned_index, measure
from d4g_edge.tiletable import TileTable
from d4g_edge.vq import unit

SIGNAL, NUISANCE, D_OUT = 6, 26, 6


def _problem(n_rows=300, seed=0):
    """Rows whose first SIGNAL components (small variance) say which row a query matches and
    whose other components (large variance) are noise the query does not share."""
    rng = np.random.default_rng(seed)
    signal = 0.3 * rng.standard_normal((n_rows, SIGNAL))
    rows = np.hstack([signal, rng.standard_normal((n_rows, NUISANCE))])
    pos = np.concatenate([np.arange(n_rows), rng.integers(0, n_rows, n_rows)])
    noisy = signal[pos] + 0.01 * rng.standard_normal((len(pos), SIGNAL))
    query = np.hstack([noisy, rng.standard_normal((len(pos), NUISANCE))])
    return query.astype(np.float32), rows.astype(np.float32), pos


def test_the_learned_projection_finds_the_low_variance_directions_pca_misses():
    pytest.importorskip("torch")
    query, rows, pos = _problem()
    pca = initial_basis(rows, D_OUT, "pca")
    # PCA keeps the noise: its components live in the nuisance block
    assert np.abs(pca[:SIGNAL]).max() < 0.3
    fit = fit_projection(query, rows, pos, D_OUT, init="pca", taus=(0.05,), steps=300, lr=1e-2)
    q_test, rows_test, pos_test = _problem(seed=1)  # new rows and queries, the same law
    groups = np.arange(len(rows_test))
    pca_r1 = group_r1(unit(q_test @ pca), unit(rows_test @ pca), pos_test, groups)
    got_r1 = group_r1(unit(q_test @ fit.basis), unit(rows_test @ fit.basis), pos_test, groups)
    assert pca_r1 < 10.0
    assert got_r1 > 80.0
    assert fit.val_r1 > fit.init_val_r1 + 50.0 and fit.step > 0
    # the weight moved into the signal block
    share = (fit.basis[:SIGNAL] ** 2).sum() / (fit.basis**2).sum()
    assert share > 0.5


def _tiles(n_tiles: int, per: int) -> TileTable:
    ids = np.repeat(np.arange(n_tiles), per)
    lat = 40.0 + 1e-4 * np.arange(n_tiles * per)
    return TileTable.from_rows(ids, lat, np.full(len(ids), -88.0), np.full(len(ids), 90.0), 0.01)


def test_a_learned_basis_is_stored_and_searched_as_a_pca_int8_index(tmp_path):
    query, rows, _ = _problem(n_rows=200, seed=2)
    basis = np.linalg.qr(np.random.default_rng(3).standard_normal((rows.shape[1], 8)))[0]
    basis = (basis * [1, 2, 3, 4, 5, 6, 7, 8]).astype(np.float32)  # not orthonormal
    index = learned_index(basis, unit(rows), tmp_path / "index.bin")
    assert (tmp_path / "index.bin").is_file() and index.codes.dtype == np.int8
    got = index.all_scores(query)
    want = (query @ basis) @ unit(unit(rows) @ basis).T  # cosines in the projected space x |Pq|
    assert np.mean(got.argmax(1) == want.argmax(1)) > 0.95
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.999


def test_measure_counts_tiles_as_the_sdk_does():
    tiles = _tiles(3, 2)  # rows 0,1 tile 0; 2,3 tile 1; 4,5 tile 2
    rows = np.eye(6, 4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]]
    query = np.eye(2, 4, dtype=np.float32)  # best rows: 0 and 4 tie; 1 and 5 tie
    test = {
        "tiles": tiles,
        "rows": rows,
        "query": query,
        "truth": np.array([0, 2]),
        "latlon": np.stack([tiles.lat[[0, 5]], tiles.lon[[0, 5]]], 1),
    }
    scores = np.array([[1.0, 0.0, 0.5, 0.2, 0.9, 0.1], [0.1, 0.3, 0.2, 0.9, 0.0, 0.5]])
    exact_best = np.array([1.0, 1.0])
    got = measure(scores, test, exact_best)
    # query 0: tile 0 first (true); query 1: tile 1 first, tile 2 second (R@10 hit)
    assert got["r1"] == 50.0 and got["r10"] == 100.0
    # query 1's best row is row 3 (cosine 0 with it) against an exact best of 1
    assert got["recall_at_1"] == 0.5
    assert got["median_m"] > 0
