"""The localize() fast path computes what the plain arithmetic computes, bit for bit.

Each fast form (a lookup table for the normalisation, the one-row-per-tile dedup, ...) is
checked here against the straightforward numpy it replaced, written out in the test; and
``d4g-edge bench`` times end to end on a picture that takes the whole path.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from d4g_edge.bundle import model_entry, write_bundle
from d4g_edge.cli.bench import _alternating, bench, format_report, query_image
from d4g_edge.config import EncoderConfig
from d4g_edge.index import EmbeddingIndex, IndexParams
from d4g_edge.localizer import Localizer
from d4g_edge.preprocess import preprocess
from d4g_edge.retrieval import best_of_each, first_of_each, search_tiles
from d4g_edge.runtime import open_encoder
from d4g_edge.tiletable import TileTable
from d4g_edge.trust_features import _every, image_problem
from tests.sdk._models import EMBED_DIM


def _ground(size=(64, 256), crop_rows=None, mean=None, std=None) -> EncoderConfig:
    spec = {"size": list(size)}
    if crop_rows is not None:
        spec["crop_rows"] = list(crop_rows)
    extra = {"mean": mean, "std": std} if mean is not None else {}
    return EncoderConfig.from_dict(
        dict(
            model_id="fastervit_edge",
            kind="student",
            inputs={"ground": spec},
            embed_dim=4,
            teacher_centre=[0.1, 0.2, 0.3, 0.4],
            teacher_sha256="a" * 64,
            **extra,
        )
    )


def _plain_preprocess(rgb: np.ndarray, cfg: EncoderConfig) -> np.ndarray:
    """Crop, Pillow bilinear resize, /255, (x - mean) / std in float32, NCHW."""
    spec = cfg.input()
    if spec.crop_rows is not None:
        h = rgb.shape[0]
        top = round(spec.crop_rows[0] * h)
        rgb = rgb[top : max(round(spec.crop_rows[1] * h), top + 1)]
    if rgb.shape[:2] != tuple(spec.size):
        size = (spec.size[1], spec.size[0])
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.BILINEAR))
    x = rgb.astype(np.float32) / 255.0
    x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return x.transpose(2, 0, 1)[None]


@pytest.mark.parametrize(
    "shape, cfg",
    [
        ((64, 256), _ground()),  # the encoder's own size: no resize
        ((128, 512), _ground(crop_rows=(0.32, 0.68))),  # a VIGOR panorama, cropped
        ((97, 301), _ground(size=(40, 160), mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])),
    ],
)
def test_preprocess_is_the_float32_arithmetic_bit_for_bit(shape, cfg):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    rgb[0, :4] = [[0, 0, 0], [255, 255, 255], [1, 128, 254], [7, 7, 7]]  # the table's ends
    got = preprocess(rgb, cfg)
    want = _plain_preprocess(rgb, cfg)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == want.shape
    assert np.array_equal(got, want)
    # a strided view (not C-contiguous) is read the same way
    wide = np.repeat(rgb, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    assert np.array_equal(preprocess(wide, cfg), want)


def _plain_first_of_each(tiles: np.ndarray, k: int) -> np.ndarray:
    """np.unique's first index of each value, in column order, the first k; as few as the
    row with the fewest distinct values has."""
    keep = [np.sort(np.unique(row, return_index=True)[1])[:k] for row in tiles]
    k = min(len(r) for r in keep)
    return np.stack([r[:k] for r in keep])


@pytest.mark.parametrize("tiles_n, centres", [(477, 25), (40, 25), (3, 25), (5000, 1)])
def test_first_of_each_matches_unique(tiles_n, centres):
    rng = np.random.default_rng(tiles_n)
    rows = []
    for q in range(7):
        # ranked rows as a search returns them: the centres of a few good tiles first, and
        # rows whose 32nd tile comes early, late (past the first prefixes) or never
        good = rng.integers(0, tiles_n, 3 + 10 * q)
        head = np.repeat(good, rng.integers(1, centres + 1, good.size))
        tail = rng.permutation(tiles_n * centres) // centres
        rows.append(np.concatenate([head, tail])[: min(800, tiles_n * centres)])
    tiles = np.stack(rows)
    for k in (1, 5, 32, 100):
        assert np.array_equal(first_of_each(tiles, k), _plain_first_of_each(tiles, k))
        for row in tiles:  # one query alone, as localize() asks
            assert np.array_equal(first_of_each(row[None], k), _plain_first_of_each(row[None], k))


@pytest.mark.parametrize("hw", [(64, 256), (128, 128), (16, 16), (40, 160)])
def test_bench_times_a_picture_localize_takes_all_the_way(hw):
    # noise would be refused as not_in_map before the trust features: a faster, untypical path
    img = query_image(*hw)
    assert img.shape == (*hw, 3) and img.dtype == np.uint8
    assert image_problem(img) is None
    assert np.array_equal(query_image(*hw), img)  # the same picture on every run


def _plain_luma_stats(rgb: np.ndarray) -> tuple[float, float]:
    """Luminance std and adjacent-pixel correlation of ~16k strided pixels, plainly."""
    h, w = rgb.shape[:2]
    step = max(1, int(np.sqrt(h * w / 16_384)))
    y = rgb[::step, ::step].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    a, b = y[:, :-1].ravel(), y[:, 1:].ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(y.std()), float(a @ b) / float(np.sqrt((a @ a) * (b @ b)))


@pytest.mark.parametrize("shape", [(64, 256), (128, 512), (301, 1200), (2000, 3000)])
def test_image_problem_reads_the_plain_statistics(shape):
    rng = np.random.default_rng(shape[0])
    noise = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    smooth = 8 * max(1, int(np.sqrt(shape[0] * shape[1] / 16_384)))  # 8 of its samples
    small = rng.integers(0, 256, (shape[0] // smooth, shape[1] // smooth, 3), dtype=np.uint8)
    photo = np.asarray(Image.fromarray(small).resize(shape[::-1], Image.BILINEAR))
    flat = np.full((*shape, 3), 120, np.uint8)
    flat[::7, ::5] = 121  # nearly constant
    for rgb in (noise, photo, flat, photo[:, ::-1]):  # the last one not C-contiguous
        std, corr = _plain_luma_stats(rgb)
        got = image_problem(rgb)
        if std < 2.0:
            assert got == f"image is constant (luminance std {std:.2f} < 2.0)"
        elif corr < 0.25:
            assert got == f"image looks like noise (adjacent-pixel correlation {corr:.2f})"
        else:
            assert got is None
    assert image_problem(noise) is not None and image_problem(photo) is None
    assert image_problem(flat) is not None


def test_pixel_gather_is_the_strided_view():
    rgb = np.random.default_rng(3).integers(0, 256, (37, 101, 3), dtype=np.uint8)
    for img in (rgb, rgb[:, ::-1], rgb[3:, 2:]):
        for step in (1, 2, 3, 7):
            got = _every(img, step)
            assert got.dtype == np.uint8 and np.array_equal(got, img[::step, ::step])


def test_bench_reports_the_calling_threads_cpu_time(tmp_path, tiny_models):
    n = 300
    v = np.random.default_rng(0).normal(size=(n, EMBED_DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    table = TileTable.from_rows(
        np.arange(n), 40.0 + np.arange(n) * 1e-4, np.full(n, -88.0), np.full(n, 50.0)
    )
    sat = open_encoder(tiny_models["satellite"])
    entry = model_entry(sat.path, sat.config, sat.sha256)
    write_bundle(tmp_path / "b", v, table, entry, query=open_encoder(tiny_models["ground"]))
    report = bench(Localizer(tmp_path / "b", threads=1), queries=20)
    for key in ("encoder", "search_only", "end_to_end", "end_to_end_unknown_heading"):
        wall, cpu = report[key]["p50_ms"], report[key]["cpu_p50_ms"]
        assert 0 < cpu <= wall * 1.05 + 0.05  # one thread: never more CPU than wall time
    e2e, enc = report["end_to_end"]["cpu_p50_ms"], report["encoder"]["cpu_p50_ms"]
    assert report["end_to_end_over_encoder_cpu"] == pytest.approx(e2e / enc)
    assert "cpu p50" in format_report(report)


def test_alternating_blocks_time_each_call_once_and_in_turn():
    calls = []
    a, b = _alternating(lambda: calls.append("a"), lambda: calls.append("b"), 25, block=10)
    assert a.shape == b.shape == (25, 2)
    # blocks of 10, 10, 5, each after one untimed call of its own function
    assert "".join(calls) == "a" * 11 + "b" * 11 + "a" * 11 + "b" * 11 + "a" * 6 + "b" * 6


def _plain_best_of_each(scores: np.ndarray, tile_id: np.ndarray, k: int):
    """Each tile's best row and score, plainly; the k best tiles, best first."""
    out_rows, out_scores = [], []
    for row in scores:
        best = {}
        for r in range(len(row)):
            t = tile_id[r]
            if t not in best or row[r] > row[best[t]]:
                best[t] = r
        ranked = sorted(best.values(), key=lambda r: -row[r])[:k]
        out_rows.append(ranked)
        out_scores.append(row[ranked])
    return np.array(out_rows), np.array(out_scores)


@pytest.mark.parametrize(
    "tile_id",
    [
        np.repeat(np.arange(40), 25),  # as a bundle writes them: centres consecutive
        np.random.default_rng(5).permutation(np.repeat(np.arange(40), 25)),  # shuffled
        np.repeat(np.array([7, 3, 9, 100, 4]), [1, 25, 3, 25, 10]),  # unequal runs, unsorted
    ],
)
def test_best_of_each_is_each_tiles_best_row(tile_id):
    rng = np.random.default_rng(len(tile_id))
    scores = rng.normal(size=(6, len(tile_id))).astype(np.float32)  # no ties
    groups = TileTable.from_rows(
        tile_id, np.zeros(len(tile_id)), np.zeros(len(tile_id)), np.ones(len(tile_id))
    ).groups
    for k in (1, 3, 5, 32, 100):
        rows, best = best_of_each(scores, groups, k)
        want_rows, want_scores = _plain_best_of_each(scores, tile_id, k)
        assert np.array_equal(rows, want_rows) and np.array_equal(best, want_scores)
        # the same as ranking every row and keeping each tile's first (the search path)
        order = np.argsort(-scores, axis=1, kind="stable")
        cols = first_of_each(tile_id[order], k)
        assert np.array_equal(np.take_along_axis(order, cols, 1), rows)


def _compressed(n: int, **params):
    v = np.random.default_rng(n).normal(size=(n, 32)).astype(np.float32)
    return EmbeddingIndex.build(v, IndexParams(storage="pca-int8", pca_dims=16, **params))


def test_all_scores_are_the_searchs_scores_in_row_order():
    q = np.random.default_rng(9).normal(size=(3, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    for index in (_compressed(500), _compressed(2_000, lists=8, probe=8)):
        every = index.all_scores(q)
        ids, scores = index.search(q, k=index.count)  # every row, ranked
        assert every.shape == (3, index.count)
        assert np.array_equal(np.take_along_axis(every, ids, 1), scores)
    # a search that does not score every row the same way has no such array
    assert _compressed(2_000, lists=8, probe=2).all_scores(q) is None
    assert _compressed(500, refine=8).all_scores(q) is None


def test_search_tiles_takes_every_score_only_without_a_prior(tmp_path, tiny_models):
    n_tiles, centres = 30, 4
    rows = n_tiles * centres
    v = np.random.default_rng(2).normal(size=(rows, EMBED_DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.repeat(np.arange(n_tiles), centres)
    table = TileTable.from_rows(ids, 40.0 + ids * 1e-4, np.full(rows, -88.0), np.full(rows, 50.0))
    bundle = SimpleNamespace(
        centres_per_tile=centres, tiles=table, index=EmbeddingIndex.build(v, IndexParams())
    )
    q = v[[5, 77]] + 0.1
    got_ids, got_scores = search_tiles(bundle, q, 6, None)
    plain = _plain_best_of_each(q.astype(np.float32) @ v.T, ids, 6)
    assert np.array_equal(got_ids, plain[0]) and np.allclose(got_scores, plain[1])
    cand = np.arange(0, rows, 2)  # a prior's rows: the index's own candidate search
    got_ids, _ = search_tiles(bundle, q, 6, cand)
    assert np.isin(got_ids, cand).all() and len(set(ids[got_ids[0]])) == 6
