"""Every writer + loader pair on tiny world-rendered datasets, checked against geometry.

The datasets are written once per module (6 train / 4 test pairs, 64 px tiles, 32x128
panoramas, small towns) and read back with train.datasets.load. Expected values come from
the layout definitions and from geodesy (d4g_edge.geo), not from the writers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from d4g_edge.geo import GeoReference, haversine_m
from train.datasets import load, read_image
from train.datasets.utm import latlon_to_utm
from train.datasets.vigor import parse_panorama_name, parse_satellite_name
from train.synth import SynthConfig, synthesize

TILE_M, SAT, PANO = 45.0, 64, (32, 128)  # small towns keep the test fast
GSD = TILE_M / SAT


def tiny(layout: str, out, **kw) -> SynthConfig:
    base = dict(
        train=6,
        test=4,
        seed=11,
        sat_size=SAT,
        pano_size=PANO,
        tile_m=TILE_M,
        town_size_m=300.0,
        pairs_per_town=4,
    )
    return SynthConfig(layout, out, **{**base, **kw})


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    out = {
        "cvusa": synthesize(tiny("cvusa", root / "cvusa")),
        "cvact": synthesize(tiny("cvact", root / "cvact")),
        "vigor": synthesize(tiny("vigor", root / "vigor")),
        "vigor_alt": synthesize(tiny("vigor", root / "vigor_alt", vigor_layout="alt")),
    }
    return out


def test_cvusa_ids_locations_and_images(written):
    root = written["cvusa"]
    train, test = load("cvusa", root, "train"), load("cvusa", root, "test")
    assert len(train) == 6 and len(test) == 4
    # ids are the integers 1..10, each used once, and row id-1 of all.csv holds id's GPS
    ids = np.concatenate([train.query_ids, test.query_ids])
    assert sorted(ids.tolist()) == list(range(1, 11))
    rows = np.loadtxt(root / "split_locations/all.csv", delimiter=",")
    assert rows.shape == (10, 5)
    np.testing.assert_array_equal(train.query_latlon, rows[train.query_ids - 1, 2:4])
    np.testing.assert_array_equal(rows[:, 0:2], rows[:, 2:4])  # tiles centred on the panorama
    # cross-area: every test place is far from every train place (different towns)
    d = haversine_m(
        train.query_latlon[:, None, 0],
        train.query_latlon[:, None, 1],
        test.query_latlon[None, :, 0],
        test.query_latlon[None, :, 1],
    )
    assert d.min() > 1000.0
    assert read_image(train.reference_paths[0]).shape == (SAT, SAT, 3)
    assert read_image(train.query_paths[0]).shape == (*PANO, 3)
    for i in ids:  # the annotation column points at real files too
        assert (root / f"streetview/annotations/{i:07d}.png").is_file()
    lines = (root / "splits/train-19zl.csv").read_text().splitlines()
    assert lines[0].count(",") == 2 and lines[0].startswith("bingmap/19/")


def test_cvact_mat_indices_and_folders(written):
    root = written["cvact"]
    mat = scipy.io.loadmat(root / "ACT_data.mat")
    assert mat["utm"].shape == (10, 2) and mat["panoIds"].shape == (10,)
    assert mat["trainSet"].dtype.names[1] == "trainInd"  # the index is the second field
    assert mat["valSetAll"].dtype.names[1] == "valInd"
    train_rows = mat["trainSet"]["trainInd"][0, 0].ravel()
    all_rows = mat["valSetAll"]["valInd"][0, 0].ravel()
    val_rows = mat["valSet"]["valInd"][0, 0].ravel()
    # 1-based: together the splits use rows 1..10 exactly once; val is a subset of valSetAll
    assert sorted(np.concatenate([train_rows, all_rows]).tolist()) == list(range(1, 11))
    assert set(val_rows) < set(all_rows) and len(val_rows) == 2

    train, val, test = (
        load("cvact", root, s, on_missing="error") for s in ("train", "val", "test")
    )
    assert sorted(train.query_ids.tolist()) == sorted(train_rows.astype(int).tolist())
    assert (len(train), len(val), len(test)) == (6, 2, 4)
    # CVACT lives in Canberra: zone 55S UTM of the recovered lat/lon reproduces the file
    assert np.all(np.abs(test.query_latlon - [-35.3, 149.1]) < 0.5)
    e, n, _ = latlon_to_utm(test.query_latlon[:, 0], test.query_latlon[:, 1], "55s")
    np.testing.assert_allclose(np.stack([e, n], 1), mat["utm"][test.query_ids - 1], atol=1e-6)
    # val pairs are stored in ANU_data_small and, identically, in ANU_data_test
    name = val.query_names[0]
    small = root / f"ANU_data_small/satview_polish/{name}_satView_polish.jpg"
    assert (
        small.read_bytes()
        == (root / f"ANU_data_test/satview_polish/{name}_satView_polish.jpg").read_bytes()
    )
    d = haversine_m(
        train.query_latlon[:, None, 0],
        train.query_latlon[:, None, 1],
        test.query_latlon[None, :, 0],
        test.query_latlon[None, :, 1],
    )
    assert d.min() > 1000.0


@pytest.mark.parametrize("mode", ["cross", "same"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_vigor_positive_holds_pano_in_central_quarter(written, mode, split):
    data = load("vigor", written["vigor"], split, mode=mode)
    assert len(data) > 0
    for i in range(len(data)):
        _, plat, plon = parse_panorama_name(data.query_names[i])
        tiles = [int(data.positive_index[i]), *data.semi_positive_ids[i].tolist()]
        for rank, t in enumerate(tiles):
            tlat, tlon = parse_satellite_name(data.reference_names[t])
            east, north = GeoReference(tlat, tlon).latlon_to_metres(plat, plon)
            limit = TILE_M / 4 if rank == 0 else TILE_M / 2  # central quarter / inside the tile
            assert abs(east) <= limit + 1e-3 and abs(north) <= limit + 1e-3
            # VIGOR's offset: tile centre minus panorama, [north, east], in tile pixels
            np.testing.assert_allclose(
                data.positive_offsets_px[i, rank], [-north / GSD, -east / GSD], atol=0.01
            )
        # 50 % overlap: exactly four listed tiles of its city contain the panorama
        city = data.query_paths[i].parent.parent.name
        inside = 0
        for name, path in zip(data.reference_names, data.reference_paths, strict=True):
            if path.parent.parent.name != city:
                continue
            east, north = GeoReference(*parse_satellite_name(name)).latlon_to_metres(plat, plon)
            inside += abs(east) < TILE_M / 2 and abs(north) < TILE_M / 2
        assert inside == 4


def test_vigor_cities_splits_and_both_layouts(written):
    official, alt = written["vigor"], written["vigor_alt"]
    cross_train = load("vigor", official, "train", mode="cross")
    cross_test = load("vigor", official, "test", mode="cross")
    assert len(cross_train) == 6 and len(cross_test) == 4
    assert {p.parent.parent.name for p in cross_train.query_paths} == {"NewYork", "Seattle"}
    assert {p.parent.parent.name for p in cross_test.query_paths} == {"Chicago", "SanFrancisco"}
    same_train = load("vigor", official, "train", mode="same")
    same_test = load("vigor", official, "test", mode="same")
    assert set(same_train.query_names).isdisjoint(same_test.query_names)
    assert set(same_train.query_names) | set(same_test.query_names) == set(
        cross_train.query_names + cross_test.query_names
    )
    # the alt folder layout holds the same dataset (same seed), just elsewhere on disk
    alt_test = load("vigor", alt, "test", mode="cross")
    assert alt_test.query_names == cross_test.query_names
    assert alt_test.reference_names == cross_test.reference_names
    assert alt_test.reference_paths[0].parent == alt / "satellite" / "Chicago"
    assert (official / "Chicago/satellite" / cross_test.reference_names[0]).is_file()
    assert read_image(alt_test.reference_paths[0]).shape == (SAT, SAT, 3)
    # Seattle's panoramas are near Seattle
    seattle = [
        ll
        for ll, p in zip(cross_train.query_latlon, cross_train.query_paths, strict=True)
        if "Seattle" in str(p)
    ]
    assert haversine_m(*seattle[0], 47.61, -122.33) < 5000


def test_info_records_towns(written):
    info = json.loads((written["cvusa"] / "synth_info.json").read_text())
    assert info["status"] == "complete" and info["layout"] == "cvusa"
    splits = [t["split"] for t in info["towns"]]
    assert splits.count("train") == 2 and splits.count("test") == 1  # 6 / 4 pairs, 4 per town
    styles = {t["style"] for t in info["towns"]}
    assert len(styles) > 1


def test_vigor_cities_are_districts_of_every_style(written):
    from train.world import TOWN_STYLES

    info = json.loads((written["vigor"] / "synth_info.json").read_text())
    by_city: dict[str, list[dict]] = {}
    for town in info["towns"]:
        by_city.setdefault(town["city"], []).append(town)
    assert sorted(by_city) == sorted(("Chicago", "NewYork", "SanFrancisco", "Seattle"))
    for towns in by_city.values():
        # cross-area tests new places of known kinds: each city holds every style
        assert sorted(t["style"] for t in towns) == sorted(TOWN_STYLES)
        assert len({t["seed"] for t in towns}) == len(towns)
    # districts lie side by side, far enough apart never to share a tile
    chicago = by_city["Chicago"]
    corners = np.array([[t["origin_lat"], t["origin_lon"]] for t in chicago])
    d = haversine_m(
        corners[:, None, 0], corners[:, None, 1], corners[None, :, 0], corners[None, :, 1]
    )
    assert d[~np.eye(len(chicago), dtype=bool)].min() >= 300.0 + TILE_M - 1.0


def _camera_from_names(data, i: int, rank: int = 0) -> tuple[float, float]:
    """(east, north) metres of query ``i`` from its ``rank``-th covering tile, from file names."""
    _, plat, plon = parse_panorama_name(data.query_names[i])
    tiles = [int(data.positive_index[i]), *data.semi_positive_ids[i].tolist()]
    tlat, tlon = parse_satellite_name(data.reference_names[tiles[rank]])
    return GeoReference(tlat, tlon).latlon_to_metres(plat, plon)


def test_recentred_pairs_put_the_camera_at_the_tile_centre(written):
    from d4g_edge.polar import shift_tile
    from train.datasets import PairDataset

    data = load("vigor", written["vigor"], "train", mode="cross")
    plain = PairDataset(data, SAT, PANO)
    pairs = PairDataset(data, SAT, PANO, recentre=True, centre_jitter=0.1)
    for i in range(len(data)):
        east, north = _camera_from_names(data, i)
        np.testing.assert_allclose(
            pairs.camera_offset(i), (east / TILE_M, north / TILE_M), atol=1e-4
        )
        _, tile = plain.raw_pair(i)
        _, sat = pairs.raw_pair(i)  # no rng: exactly on the camera (teacher cache, students)
        np.testing.assert_array_equal(sat, shift_tile(tile, east / GSD, north / GSD, pairs.fill))
        if abs(east) > 2 * GSD or abs(north) > 2 * GSD:
            assert not np.array_equal(sat, tile)
        # training draws: within the jitter of the camera, and not always on it
        jittered = [pairs.raw_pair(i, np.random.default_rng(s))[1] for s in range(6)]
        assert any(not np.array_equal(j, sat) for j in jittered)


def test_grid_references_score_their_best_centre_and_place_the_query_there(written):
    from d4g_edge.geo import haversine_m, offset_latlon
    from train.loop.evalsets import RetrievalSet

    data = load("vigor", written["vigor"], "test", mode="cross")
    assert data.tile_stride == 0.5
    assert data.tile_side_m() == pytest.approx(TILE_M, rel=1e-3)
    rs = RetrievalSet(data, SAT, PANO, sat_polar=PANO, centre_step=1 / 6)
    r, c = data.num_references, 9
    assert len(rs.references) == r * c and rs.centres.shape == (c, 2)
    # one orthogonal direction per (tile, centre); query i is exactly its positive tile's
    # centre k_i, so the positive ranks first and the position is that centre's
    dim = r * c
    reference = np.eye(dim, dtype=np.float32)
    k = np.arange(len(data)) % c
    query = reference[data.positive_index * c + k]
    m = rs.score(query, reference)
    assert m.recall[0] == 100.0
    tile = data.reference_latlon[data.positive_index]
    lat, lon = offset_latlon(
        tile[:, 0], tile[:, 1], rs.centres[k, 0] * TILE_M, rs.centres[k, 1] * TILE_M
    )
    expected = haversine_m(data.query_latlon[:, 0], data.query_latlon[:, 1], lat, lon)
    assert m.position.median_m == pytest.approx(float(np.median(expected)), rel=1e-3)
    # without centres the same model would be scored at the tile centres (farther away)
    centre_err = haversine_m(data.query_latlon[:, 0], data.query_latlon[:, 1], *tile.T)
    assert not np.allclose(expected, centre_err)


def test_sdk_and_train_evaluate_agree_on_an_offcentre_bundle(written, tmp_path):
    """The same exported encoders score the same through train.evaluate (the training
    pipeline, references at their best of 9 centres) and through the SDK's bundle."""
    from d4g_edge.config import ViewInput
    from tests.sdk._models import GROUND_HW, SAT_SIZE, conv_onnx, student_config
    from tools.build_index import main as build_main
    from train.evaluate import EvaluateConfig, run

    assert (SAT, PANO) == (SAT_SIZE, GROUND_HW)  # the tiny models' shapes are the world's
    sat_spec = ViewInput((SAT, SAT), polar=PANO, centre_step=1 / 6)
    sat = conv_onnx(
        tmp_path / "satellite.onnx", student_config("satellite", inputs={"satellite": sat_spec}), 7
    )
    g_spec = ViewInput(PANO, crop_rows=(0.2, 0.8))
    ground = conv_onnx(
        tmp_path / "ground.onnx", student_config("ground", inputs={"ground": g_spec}), 7
    )
    root = written["vigor"]
    rc = build_main(
        [
            "--dataset",
            "vigor",
            "--data",
            str(root),
            "--model",
            str(sat),
            "--ground",
            str(ground),
            "--out",
            str(tmp_path / "bundle"),
        ]
    )
    assert rc == 0
    common = dict(dataset="vigor", data=root, ks=(1, 5, 10))
    direct = run(EvaluateConfig(**common, ground=ground, satellite=sat)).to_dict()
    sdk = run(EvaluateConfig(**common, bundle=tmp_path / "bundle")).to_dict()
    for key in ("recall@1", "recall@5", "recall@10", "median_error_m", "mean_error_m"):
        assert sdk[key] == pytest.approx(direct[key], abs=1e-6), key
    assert direct["num_queries"] == sdk["num_queries"] == 4


def _index_ablation(written, tmp_path, bundle_step, **override):
    """One tiny recipe encoder (3 x 3 centres) evaluated by ``train.evaluate`` with an index
    override, against the SDK on a bundle of the same weights whose config asks for
    ``bundle_step`` (None: one centre per tile): the same numbers. Returns the models."""
    from d4g_edge.config import ViewInput
    from tests.sdk._models import conv_onnx, student_config
    from tools.build_index import main as build_main
    from train.evaluate import EvaluateConfig, run

    def sat_model(name, step):
        spec = ViewInput((SAT, SAT), polar=PANO, centre_step=step)
        cfg = student_config("satellite", inputs={"satellite": spec})
        return conv_onnx(tmp_path / name, cfg, 7)

    recipe, built = sat_model("recipe.onnx", 1 / 6), sat_model("built.onnx", bundle_step)
    g_spec = ViewInput(PANO, crop_rows=(0.2, 0.8))
    ground = conv_onnx(
        tmp_path / "ground.onnx", student_config("ground", inputs={"ground": g_spec}), 7
    )
    root = written["vigor"]
    argv = ["--dataset", "vigor", "--data", str(root), "--model", str(built)]
    assert build_main([*argv, "--ground", str(ground), "--out", str(tmp_path / "b")]) == 0
    common = dict(dataset="vigor", data=root, ks=(1, 5, 10))
    ablation = run(EvaluateConfig(**common, ground=ground, satellite=recipe, **override))
    bundle = run(EvaluateConfig(**common, bundle=tmp_path / "b"))
    as_configured = run(EvaluateConfig(**common, ground=ground, satellite=recipe))
    a, b, c = ablation.to_dict(), bundle.to_dict(), as_configured.to_dict()
    for key in ("recall@1", "recall@5", "median_error_m", "mean_error_m"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    # and the recipe's own 3 x 3 centres place answers at other points
    assert c["mean_error_m"] != pytest.approx(a["mean_error_m"], abs=1e-6)
    return common, ground, recipe, sat_model


def test_centre_only_ablation_scores_like_a_one_centre_bundle(written, tmp_path):
    """``train.evaluate --centre-only`` embeds each tile around its centre alone."""
    _index_ablation(written, tmp_path, None, centre_only=True)


def test_centre_step_ablation_scores_like_a_bundle_built_at_that_density(written, tmp_path):
    """``train.evaluate --centre-step 0.1`` embeds each tile around 5 x 5 centres whatever the
    config says; it needs an off-centre encoder and contradicts --centre-only and bundles."""
    from train.evaluate import EvaluateConfig, run

    common, ground, recipe, sat_model = _index_ablation(written, tmp_path, 0.1, centre_step=0.1)
    plain = sat_model("plain.onnx", None)
    for bad, match in [
        (dict(ground=ground, satellite=plain, centre_step=0.1), "off-centre satellite"),
        (dict(ground=ground, satellite=recipe, centre_step=0.1, centre_only=True), "contradict"),
        (dict(ground=ground, satellite=recipe, centre_step=1.5), r"in \(0, 1\]"),
        (dict(bundle=tmp_path / "b", centre_step=0.1), "fixed by build-index"),
    ]:
        with pytest.raises(ValueError, match=match):
            run(EvaluateConfig(**common, **bad))
