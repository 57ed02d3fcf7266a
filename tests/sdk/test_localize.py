"""d4g_edge.localize / Localizer on a real bundle built from a raster with real encoders."""

from __future__ import annotations

import inspect
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import d4g_edge
from d4g_edge import localizer as localizer_mod
from d4g_edge.errors import BundleError, NoDefaultBundleError, SearchError
from d4g_edge.geo import haversine_m
from d4g_edge.localizer import Localizer
from tests.sdk._models import GROUND_HW, pano_of_tile


@pytest.fixture(scope="module")
def loc(paired):
    return Localizer(paired["bundle"], threads=1)


@pytest.mark.parametrize("k", [0, 17, 40])
def test_finds_the_tile_a_panorama_was_made_from(loc, paired, k):
    tile = paired["tiles"][k]
    fix = loc.localize(pano_of_tile(tile.read()), heading=0.0, top_k=3)
    assert fix.candidates[0].tile_id == tile.tile_id
    assert (fix.lat, fix.lon) == (tile.lat, tile.lon)
    assert fix.score > 0.999 and fix.heading_deg == 0.0
    assert len(fix.candidates) == 3 and fix.candidates[0].distance_m == 0.0
    d = haversine_m(fix.lat, fix.lon, fix.candidates[2].lat, fix.candidates[2].lon)
    assert fix.candidates[2].distance_m == pytest.approx(float(d))
    assert fix.uncertainty_m >= 8 / 2  # at least half the stride
    assert fix.to_dict()["candidates"][0]["tile_id"] == tile.tile_id


# the query's heading: steps * 45 degrees, on the searched grid (90, 180, 270: every N % 4 == 0)
@pytest.mark.parametrize("steps", [2, 4, 6])
def test_unknown_heading_is_recovered(loc, paired, steps):
    tile = paired["tiles"][25]
    pano = pano_of_tile(tile.read())
    shift = steps * GROUND_HW[1] // 8
    # column c of the rolled query shows what column c + shift of the north-up one showed
    query = np.ascontiguousarray(np.roll(pano, -shift, axis=1))
    fix = loc.localize(query)  # heading unknown: DEFAULT_HEADINGS rolls in one batch
    # the best roll is the true heading; the parabolic refinement moves it by < half a step
    off = (fix.heading_deg - steps * 45.0 + 180.0) % 360.0 - 180.0  # on the circle
    assert abs(off) < 180.0 / localizer_mod.DEFAULT_HEADINGS
    assert fix.candidates[0].tile_id == tile.tile_id and fix.score > 0.999
    known = loc.localize(query, heading=steps * 45.0)
    assert known.score == pytest.approx(fix.score, abs=1e-6)
    wrong = loc.localize(query, heading=steps * 45.0 + 90.0)
    assert wrong.score < fix.score - 1e-3


def test_prior_restricts_the_search(loc, paired):
    tiles = paired["tiles"]
    truth, far = tiles[0], tiles[-1]
    query = pano_of_tile(truth.read())
    near_far = loc.localize(query, heading=0.0, prior=(far.lat, far.lon, 20.0), top_k=5)
    for c in near_far.candidates:
        assert haversine_m(far.lat, far.lon, c.lat, c.lon) <= 20.0
    assert near_far.candidates[0].tile_id != truth.tile_id
    inside = loc.localize(query, heading=0.0, prior=(truth.lat, truth.lon, 20.0))
    assert inside.candidates[0].tile_id == truth.tile_id
    with pytest.raises(SearchError, match="nearest is"):
        loc.localize(query, prior=(41.0, -88.0, 100.0))
    with pytest.raises(SearchError, match="prior"):
        loc.localize(query, prior=(40.0, -88.0))


def test_observe_priors_is_observe_under_each_prior_with_one_encoding(paired):
    loc = Localizer(paired["bundle"], threads=1)
    tiles = paired["tiles"]
    query = pano_of_tile(tiles[3].read())
    priors = [None, (tiles[3].lat, tiles[3].lon, 20.0), (tiles[-1].lat, tiles[-1].lon, 20.0)]
    calls = []
    embed = loc.encoder.embed_tensor
    loc.encoder.embed_tensor = lambda x: calls.append(len(x)) or embed(x)  # counts, runs it
    together = loc.observe_priors(query, priors, heading=None, top_k=7)
    assert calls == [loc.headings]  # the rolls of the heading search, encoded once
    for prior, got in zip(priors, together, strict=True):
        alone = loc.observe(query, heading=None, top_k=7, prior=prior)
        assert np.array_equal(got.ids, alone.ids) and np.array_equal(got.scores, alone.scores)
        assert got.fix == alone.fix and got.heading_deg == alone.heading_deg
    assert together[2].ids[0] != together[1].ids[0]  # each prior's own rows
    calls.clear()
    with pytest.raises(SearchError, match="nearest is"):  # a bad prior: nothing encoded
        loc.observe_priors(query, [None, (41.0, -88.0, 100.0)])
    assert calls == []


def test_batch_and_threads_agree_with_single_calls(loc, paired):
    queries = [pano_of_tile(paired["tiles"][k].read()) for k in (2, 9, 33, 50)]
    single = [loc.localize(q, heading=0.0) for q in queries]
    batch = loc.localize_batch(queries, heading=0.0)
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda q: loc.localize(q, heading=0.0), queries * 3))
    for a, b in zip(single, batch, strict=True):
        assert a.candidates[0].tile_id == b.candidates[0].tile_id
        assert a.score == pytest.approx(b.score, abs=1e-5)
    assert [f.candidates[0].tile_id for f in threaded] == [
        f.candidates[0].tile_id for f in single * 3
    ]
    assert loc.localize_batch([]) == []  # an empty batch: no answers, no error
    with pytest.raises(SearchError, match="top_k"):  # its keywords are still checked
        loc.localize_batch([], top_k=0)


def test_module_function_and_image_forms(paired, tmp_path):
    from PIL import Image

    tile = paired["tiles"][12]
    pano = pano_of_tile(tile.read())
    Image.fromarray(pano).save(tmp_path / "q.png")
    for image in (tmp_path / "q.png", (tmp_path / "q.png").read_bytes(), Image.fromarray(pano)):
        fix = d4g_edge.localize(image, bundle=paired["bundle"], heading=0.0)
        assert fix.candidates[0].tile_id == tile.tile_id


def test_no_default_bundle_is_a_typed_error(monkeypatch, tmp_path, paired):
    monkeypatch.delenv(localizer_mod.BUNDLE_ENV, raising=False)
    monkeypatch.setattr(localizer_mod, "DEFAULT_BUNDLE", tmp_path / "none")
    with pytest.raises(NoDefaultBundleError, match="build-index"):
        d4g_edge.localize(np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setenv(localizer_mod.BUNDLE_ENV, str(paired["bundle"]))
    tile = paired["tiles"][5]
    fix = d4g_edge.localize(pano_of_tile(tile.read()), heading=0)
    assert fix.candidates[0].tile_id == tile.tile_id


def test_index_only_bundle_needs_a_ground_model(paired, tmp_path):
    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source

    src = open_tile_source(paired["dir"] / "ortho.png", tile_size_m=32, stride_m=16)
    b = build_index(src, paired["satellite"], tmp_path / "idx")
    with pytest.raises(BundleError, match="index-only"):
        Localizer(b)
    loc = Localizer(b, query=paired["ground"])
    tile = next(iter(src))
    assert loc.localize(pano_of_tile(tile.read()), heading=0).candidates[0].tile_id == tile.tile_id
    with pytest.warns(DeprecationWarning, match="query="):  # the old name still works
        old = Localizer(b, ground=paired["ground"])
    assert old.encoder.path == loc.encoder.path
    with pytest.raises(SearchError, match="not also as ground="):
        Localizer(b, query=paired["ground"], ground=paired["ground"])


SHARED_KEYWORDS = {"prior": None, "heading": None, "altitude_m": None, "pitch_deg": None,
                   "fov_deg": None}  # fmt: skip


@pytest.mark.parametrize(
    "fn",
    [
        Localizer.localize,
        Localizer.localize_batch,
        Localizer.observe,
        Localizer.retrieve,
        d4g_edge.localize,
    ],
)
def test_the_query_calls_share_one_signature(fn):
    params = inspect.signature(fn).parameters
    for name, default in SHARED_KEYWORDS.items():
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (fn, name)
        assert params[name].default is default, (fn, name)
    assert "top_k" in params


def test_module_localize_takes_the_localizer_options():
    params = inspect.signature(d4g_edge.localize).parameters
    assert params["backend"].default == inspect.signature(Localizer).parameters["backend"].default
    assert params["threads"].default is None


def test_embed_defaults_to_an_unknown_heading_like_localize(loc, paired):
    params = inspect.signature(Localizer.embed).parameters
    for name in ("heading", "altitude_m", "pitch_deg", "fov_deg"):
        assert params[name].default is None
    pano = pano_of_tile(paired["tiles"][7].read())
    rolls = loc.embed(pano)  # heading unknown: one row per searched heading
    assert rolls.shape == (localizer_mod.DEFAULT_HEADINGS, loc.bundle.embed_dim)
    np.testing.assert_allclose(rolls[0], loc.embed(pano, heading=0.0)[0], atol=1e-6)
    east = loc.embed(pano, heading=90.0)  # the centre column looks east: rolled to north-up
    assert east.shape == (1, loc.bundle.embed_dim)
    # rows in heading_grid's order: 0, 360 / N, ...; 90 degrees is row N / 4
    np.testing.assert_allclose(east[0], rolls[localizer_mod.DEFAULT_HEADINGS // 4], atol=1e-6)


def test_module_localize_passes_backend_and_threads(paired):
    tile = paired["tiles"][9]
    pano = pano_of_tile(tile.read())
    fix = d4g_edge.localize(pano, bundle=paired["bundle"], heading=0, threads=1, fov_deg=None)
    assert fix.candidates[0].tile_id == tile.tile_id
    with pytest.raises(d4g_edge.EncoderError, match="backend"):
        d4g_edge.localize(pano, bundle=paired["bundle"], backend="tflite")
