"""Modelled maps drawn band by band (benchmarks._row_fields), their query models
(benchmarks._map_data.RowModel.queries), and the compressed kinds built chunk by chunk
from a float16 memory map (benchmarks._map_stream), as bench_map uses them at 10^7 rows."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks._map_data import RowModel
from benchmarks._map_stream import build_streamed
from benchmarks._row_fields import (
    Grid,
    draw_rows,
    exact_scan,
    kernel_rho,
    neighbour_rho,
    sigma_for,
)
from d4g_edge.index import EmbeddingIndex, IndexParams

DIM = 8
RHO = np.array([0.92, 0.8, 0.6, 0.35, 0.15, 0.0, 0.0, 0.0])  # the last three: white


def _model(rho=RHO, residuals=None) -> RowModel:
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    mean = rng.normal(size=DIM)
    mean /= np.linalg.norm(mean)
    std = np.linspace(0.3, 0.05, DIM)
    res = rng.normal(size=(7, DIM)) * 0.02 if residuals is None else residuals
    return RowModel(
        mean, basis, std, np.zeros(DIM), np.zeros(DIM), np.full(DIM, 0.01), 25, 1e-4,
        np.asarray(rho, np.float64), res.astype(np.float32), 1.0, "discrete",
    )  # fmt: skip


def _coefs(model: RowModel, n: int, seed: int) -> tuple[np.ndarray, Grid]:
    """The drawn map's field coefficients, on the grid (side, side, DIM)."""
    grid = Grid.for_rows(n, 25)
    rows, norms = np.empty((grid.count, DIM), np.float32), np.empty(grid.count, np.float32)
    draw_rows(model.mean, model.basis, model.std, model.sigmas(), grid, seed, rows, norms)
    gi, gj = np.meshgrid(np.arange(grid.side), np.arange(grid.side), indexing="ij")
    at = grid.row_of(gi.ravel(), gj.ravel())
    c = (rows[at] * norms[at, None] - model.mean) @ model.basis
    return c.reshape(grid.side, grid.side, DIM), grid


def test_discrete_sigma_gives_the_asked_neighbour_correlation():
    for rho in (0.06, 0.3, 0.7, 0.95):
        assert abs(kernel_rho(sigma_for(rho)) - rho) < 1e-6
    # the continuous formula undershoots weak correlations: sigma 0.5 "is" 0.37
    assert kernel_rho(0.5) < 0.3


def test_drawn_fields_have_the_model_std_and_neighbour_correlation():
    model = _model()
    c, _ = _coefs(model, 250 * 250, seed=3)  # a 250 x 250 grid
    np.testing.assert_allclose(neighbour_rho(c), RHO, atol=0.03)
    # each component's spread is the model's (the rows are stored normalised: scaled back)
    np.testing.assert_allclose(c.reshape(-1, DIM).std(0), model.std, rtol=0.1)


def test_band_size_and_disk_do_not_change_the_map(tmp_path):
    model = _model()
    whole, _, side, _ = model.draw(10_000, seed=5, band_rows=100)  # one band
    banded, tile_of_row, _, _ = model.draw(10_000, seed=5, band_rows=5)
    np.testing.assert_array_equal(whole, banded)
    disk, _, _, _ = model.draw(10_000, seed=5, out=tmp_path / "rows.npy", band_rows=15)
    assert disk.dtype == np.float16 and disk.shape == (side * side, DIM)
    np.testing.assert_allclose(np.asarray(disk, np.float32), whole, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)
    assert (np.bincount(tile_of_row) == 25).all()
    other, _, _, _ = model.draw(10_000, seed=6)
    assert np.abs(other - whole).mean() > 0.01  # another seed, another map
    with pytest.raises(ValueError, match="multiple"):
        model.draw(10_000, seed=5, band_rows=7)


def test_query_models_sit_around_their_row():
    model = _model()
    rows, norms, grid = model._draw(2_500, 1)
    for qm in ("gaussian", "real-residuals"):
        q, tile, where = model.queries(rows, norms, grid, 50, 2, qm)
        own = rows[grid.row_of(where[:, 0], where[:, 1])]
        assert (tile == grid.tile_of(where[:, 0], where[:, 1])).all()
        assert 0.9 < np.einsum("qd,qd->q", q, own).min() < 1.0
    # no residual: a real-residual query is its row; residuals far larger: it is lost
    still = RowModel(**{**model.__dict__, "residual_scale": 0.0})
    q, _, where = still.queries(rows, norms, grid, 50, 2, "real-residuals")
    np.testing.assert_allclose(q, rows[grid.row_of(where[:, 0], where[:, 1])], atol=1e-6)
    loud = RowModel(**{**model.__dict__, "residual_scale": 100.0})
    q, _, where = loud.queries(rows, norms, grid, 50, 2, "real-residuals")
    assert np.einsum("qd,qd->q", q, rows[grid.row_of(where[:, 0], where[:, 1])]).mean() < 0.9
    with pytest.raises(ValueError, match="query model"):
        model.queries(rows, norms, grid, 5, 2, "uniform")
    bare = RowModel(**{**model.__dict__, "residuals": np.zeros((0, 0))})
    with pytest.raises(ValueError, match="no real residuals"):
        bare.queries(rows, norms, grid, 5, 2, "real-residuals")


def test_model_file_round_trip_and_old_files(tmp_path):
    model = _model()
    model.save(tmp_path / "m.npz")
    again = RowModel.load(tmp_path / "m.npz")
    assert again.sigma_rule == "discrete" and again.residuals.shape == (7, DIM)
    np.testing.assert_array_equal(again.sigmas(), model.sigmas())
    # a file of the first fits (no rho, residuals, rule): its continuous sigmas, as drawn then
    old = {k: v for k, v in model.__dict__.items() if k in RowModel.__dataclass_fields__}
    old = {k: np.asarray(v) for k, v in old.items() if k not in ("rho", "residuals")}
    old["smooth"] = np.array([1.5, 0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    del old["residual_scale"], old["sigma_rule"]
    np.savez(tmp_path / "old.npz", **old)
    first = RowModel.load(tmp_path / "old.npz")
    assert first.sigma_rule == "continuous" and len(first.residuals) == 0
    np.testing.assert_array_equal(first.sigmas(), old["smooth"])
    np.testing.assert_allclose(first.rho[:2], np.exp(-1 / (4 * old["smooth"][:2] ** 2)))


def test_exact_scan_streams_a_float16_memory_map(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(300_000, 16)).astype(np.float16)  # more than one chunk
    np.save(tmp_path / "r.npy", rows)
    mm = np.load(tmp_path / "r.npy", mmap_mode="r")
    q = rng.normal(size=(20, 16)).astype(np.float32)
    best, at = exact_scan(mm, q)
    scores = q @ rows.astype(np.float32).T
    np.testing.assert_array_equal(at, scores.argmax(1))
    np.testing.assert_allclose(best, scores.max(1), rtol=1e-5)


def test_streamed_build_is_the_sdk_build(tmp_path):
    model = _model(rho=np.full(DIM, 0.5))
    rows, _, _, _ = model.draw(100_000, seed=2, out=tmp_path / "rows.npy")
    params = IndexParams(storage="pca-int8", pca_dims=6, lists=40, probe=4)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    build_streamed(params, rows, tmp_path / "a")  # > 65,536 rows: the codec's sample too
    EmbeddingIndex.build(np.asarray(rows, np.float32), params).save(tmp_path / "b" / "index.bin")
    a, b = (tmp_path / d / "index.bin" for d in "ab")
    assert a.read_bytes() == b.read_bytes()


def test_streamed_pca_bits_build_is_the_sdk_build(tmp_path):
    model = _model(rho=np.full(DIM, 0.5))
    rows, _, _, _ = model.draw(40_000, seed=2, out=tmp_path / "rows.npy")
    params = IndexParams(storage="pca-bits", row_bytes=6, lists=30, probe=4)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    build_streamed(params, rows, tmp_path / "a")
    EmbeddingIndex.build(np.asarray(rows, np.float32), params).save(tmp_path / "b" / "index.bin")
    a, b = (tmp_path / d / "index.bin" for d in "ab")
    assert a.read_bytes() == b.read_bytes()
