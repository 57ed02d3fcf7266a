"""The University-1652 writer on a tiny world: exact tree, ids, locations, determinism, content.

Expected values come from the layout definition (folder and file names, counts) and from
geodesy (d4g_edge.geo), not from the writer.
"""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from d4g_edge.geo import GeoReference
from train.synth import SynthConfig, synthesize
from train.synth.__main__ import main

TRAIN, TEST, DIS, NN, STREET = 4, 3, 2, 3, 2


def tiny(out, **kw) -> SynthConfig:
    base = dict(
        train=TRAIN,
        test=TEST,
        distractors=DIS,
        seed=5,
        sat_size=48,
        drone_px=48,
        tile_m=45.0,
        town_size_m=300.0,
        pairs_per_town=5,
        drone_per_location=NN,
        street_per_location=STREET,
    )
    return SynthConfig("university1652", out, **{**base, **kw})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return synthesize(tiny(tmp_path_factory.mktemp("u1652") / "ds"))


def _ids(path):
    return sorted(p.name for p in path.iterdir())


def _files(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_tree_names_and_counts(root):
    assert sorted(p.name for p in root.iterdir()) == [
        "synth_info.json",
        "test",
        "train",
        "world_locations.csv",
    ]
    assert _ids(root / "train") == ["drone", "satellite", "street"]
    assert _ids(root / "test") == [
        "gallery_drone",
        "gallery_satellite",
        "gallery_street",
        "query_drone",
        "query_satellite",
        "query_street",
    ]
    train = _ids(root / "train/drone")
    test = _ids(root / "test/query_drone")
    assert len(train) == TRAIN and len(test) == TEST and not set(train) & set(test)
    for split, loc_ids, drone, sat, street in (
        ("train", train, "drone", "satellite", "street"),
        ("test", test, "query_drone", "query_satellite", "query_street"),
    ):
        assert _ids(root / split / sat) == loc_ids == _ids(root / split / street)
        for i in loc_ids:
            assert len(i) == 4 and i.isdigit()
            assert _ids(root / split / drone / i) == [
                f"image-{j:02d}.jpeg" for j in range(1, NN + 1)
            ]
            assert _ids(root / split / sat / i) == [f"{i}.jpg"]
            assert _ids(root / split / street / i) == [f"{k:02d}.jpg" for k in range(1, 3)]
    # distractors: gallery satellite only, never a query, never in train
    gallery = _ids(root / "test/gallery_satellite")
    extra = set(gallery) - set(test)
    assert set(test) <= set(gallery) and len(extra) == DIS and not extra & set(train)
    assert _ids(root / "test/gallery_drone") == test == _ids(root / "test/gallery_street")
    all_ids = sorted(set(train) | set(gallery))
    assert all_ids == [f"{i:04d}" for i in range(TRAIN + TEST + DIS)]
    # the gallery copies are the query files, byte for byte
    for q, g in (("query_drone", "gallery_drone"), ("query_street", "gallery_street")):
        assert _files(root / "test" / q) == _files(root / "test" / g)
        for f in _files(root / "test" / q):
            assert (root / "test" / q / f).read_bytes() == (root / "test" / g / f).read_bytes()
    img = np.asarray(Image.open(root / "train/drone" / train[0] / "image-01.jpeg"))
    assert img.shape == (48, 48, 3)
    assert np.asarray(
        Image.open(root / "train/satellite" / train[0] / f"{train[0]}.jpg")
    ).shape == (
        48,
        48,
        3,
    )


def _locations(root):
    with open(root / "world_locations.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_world_locations_csv(root):
    header = (root / "world_locations.csv").read_text().splitlines()[0]
    assert header == "split,id,lat,lon,town,east_m,north_m"
    rows = _locations(root)
    assert [r["id"] for r in rows] == [f"{i:04d}" for i in range(TRAIN + TEST + DIS)]
    by_split = {s: {r["id"] for r in rows if r["split"] == s} for s in ("train", "test")}
    assert by_split["train"] == set(_ids(root / "train/satellite"))
    assert by_split["test"] == set(_ids(root / "test/gallery_satellite"))
    train_towns = {r["town"] for r in rows if r["split"] == "train"}
    test_towns = {r["town"] for r in rows if r["split"] == "test"}
    assert not train_towns & test_towns  # cross-area
    # lat/lon and local metres agree through each town's georeference (0.5 m cells)
    towns = json.loads((root / "synth_info.json").read_text())["towns"]
    for r in rows:
        t = towns[int(r["town"])]
        geo = GeoReference(t["origin_lat"], t["origin_lon"], 0.5)
        e, n = geo.latlon_to_metres(float(r["lat"]), float(r["lon"]))
        assert abs(e - float(r["east_m"])) < 0.01 and abs(n - float(r["north_m"])) < 0.01
    # locations of one town are distinct places: at least half a tile apart
    for town in train_towns | test_towns:
        pts = np.array(
            [[float(r["east_m"]), float(r["north_m"])] for r in rows if r["town"] == town]
        )
        d = np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1))
        assert d[~np.eye(len(pts), dtype=bool)].min() >= 22.5 - 1e-6


def _digest(root):
    h = hashlib.sha256()
    for f in _files(root):
        if f != "synth_info.json":
            h.update(f.encode() + (root / f).read_bytes())
    return h.hexdigest()


def test_deterministic_and_seeded(root, tmp_path):
    assert _digest(synthesize(tiny(tmp_path / "same", workers=2))) == _digest(root)
    other = synthesize(tiny(tmp_path / "other", seed=6, drone_per_location=1))
    assert _digest(other) != _digest(root)


def _hist(path) -> np.ndarray:
    img = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
    q = img.shape[0] // 4
    img = img[q:-q, q:-q]  # the centre: the location itself
    grey = img.mean(-1)
    h = [np.histogram(img[..., c], bins=8, range=(0, 256))[0] for c in range(3)]
    return np.concatenate([*h, [grey.std()]]) / grey.size


@pytest.fixture(scope="module")
def no_gap(tmp_path_factory):
    out = tmp_path_factory.mktemp("u1652_no_gap") / "ds"
    # low flights: the frame's footprint is about the tile's (2 x 40 m x tan 30 = 46 m)
    kw = dict(gap_strength=0.0, street_per_location=0, drone_altitude_max_m=45.0)
    return synthesize(tiny(out, drone_altitude_min_m=30.0, **kw))


def test_drone_frames_match_their_own_tile(no_gap):
    """Colour histograms of the image centres (the location): without a domain gap, a drone
    frame is on average closer to its own tile than to the others."""
    root = no_gap
    own_d, other_d = [], []
    for drone_dir, sat_dir in (
        ("train/drone", "train/satellite"),
        ("test/query_drone", "test/gallery_satellite"),
    ):
        ids = _ids(root / sat_dir)  # the test gallery includes the distractors
        tiles = np.stack([_hist(root / sat_dir / i / f"{i}.jpg") for i in ids])
        for i in _ids(root / drone_dir):
            own = ids.index(i)
            for f in sorted((root / drone_dir / i).iterdir()):
                d = np.abs(tiles - _hist(f)).sum(1)
                own_d.append(d[own])
                other_d.append(np.delete(d, own).mean())
    assert np.mean(own_d) < 0.8 * np.mean(other_d)


def test_cli_flags(tmp_path):
    out = tmp_path / "cli"
    args = [
        "--layout", "university1652", "--out", str(out), "--train", "2", "--test", "2",
        "--sat-size", "32", "--drone-px", "32", "--tile-m", "45", "--town-size-m", "300",
        "--drone-per-location", "2", "--street-per-location", "1", "--distractors", "0",
        "--pairs-per-town", "4",
    ]  # fmt: skip
    assert main(args) == 0
    assert len(_ids(out / "test/gallery_satellite")) == 2
    assert _ids(out / "train/drone" / _ids(out / "train/drone")[0]) == [
        "image-01.jpeg",
        "image-02.jpeg",
    ]


def test_config_validation_and_fingerprint(tmp_path):
    with pytest.raises(ValueError, match="drone_per_location"):
        tiny(tmp_path, drone_per_location=100)
    assert tiny(tmp_path, distractors=-1).n_distractors == TEST // 3
    # University-1652 settings do not enter other layouts' fingerprints
    cvusa = SynthConfig("cvusa", tmp_path).fingerprint()
    assert "drone_px" not in cvusa and "drone_px" in tiny(tmp_path).fingerprint()
