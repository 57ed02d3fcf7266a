"""Phone photos in the world's CVUSA and VIGOR layouts (train.synth --photos) and the
evaluation photos of ``python -m train.synth.photos``.

Small worlds (32x128 panoramas); a photo is checked against d4g_edge.photo applied to its own
panorama at the pose its CSV row records, and against a wrong pose, so the checks can fail.
"""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
from PIL import Image

from d4g_edge.photo import FILL_RGB, pano_to_pinhole
from train.datasets import load, read_image
from train.datasets.vigor import parse_panorama_name
from train.synth import SynthConfig, synthesize
from train.synth._phone import NO_LOOK, PhoneLook
from train.synth._photos import (
    CSV_FIELDS,
    PanoPhotosJob,
    PhotoSpec,
    full_sphere_job,
    photo_path,
    photo_split,
    read_photos_csv,
    render_with_photos,
)
from train.synth._render import ViewJob, render
from train.synth._towns import TownSpec
from train.synth.photos import main as photos_main

PANO = (32, 128)
CVUSA_BAND = (-32.5, 32.5)  # the layout's 65-degree panoramas


def tiny(layout: str, out, **kw) -> SynthConfig:
    base = dict(
        train=4,
        test=4,
        seed=11,
        sat_size=32,
        pano_size=PANO,
        tile_m=45.0,
        town_size_m=300.0,
        pairs_per_town=4,
        vigor_districts=1,
    )
    return SynthConfig(layout, out, **{**base, **kw})


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    return {
        # phone look on, two photos per panorama
        "vigor": synthesize(tiny("vigor", root / "vigor", photos=2)),
        # the exact view, nearly lossless JPEG: comparable with its panorama
        # 26 rows of 65 degrees are the middle of a 72-row sphere exactly: the band is +-32.5
        "cvusa": synthesize(
            tiny(
                "cvusa",
                root / "cvusa",
                photos=1,
                photo_look=False,
                jpeg_quality=100,
                pano_size=(26, 104),
            )
        ),
        "vigor_exact": synthesize(
            tiny("vigor", root / "vx", photos=1, photo_look=False, jpeg_quality=100, train=2)
        ),
    }


def _rows(root):
    with (root / "photos.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _queries(layout, root):
    mode = {"mode": "cross"} if layout.startswith("vigor") else {}
    return [q for s in ("train", "test") for q in load(layout[:5], root, s, **mode).query_paths]


@pytest.mark.parametrize(("name", "per_pano"), [("vigor", 2), ("cvusa", 1), ("vigor_exact", 1)])
def test_csv_lists_every_photo_with_its_size(written, name, per_pano):
    root = written[name]
    rows = _rows(root)
    assert tuple(rows[0]) == CSV_FIELDS
    panos = {q.relative_to(root).as_posix() for q in _queries(name, root)}
    assert len(rows) == per_pano * len(panos)
    assert {r["panorama"] for r in rows} == panos
    for r in rows:
        img = read_image(root / r["image"])
        assert img.shape == (int(r["height"]), int(r["width"]), 3)
        assert 45 <= float(r["fov_deg"]) <= 180 and 0 <= float(r["heading_deg"]) < 360
        assert abs(float(r["pitch_deg"])) <= 10 and abs(float(r["roll_deg"])) <= 3
        assert r["projection"] == ("pinhole" if float(r["fov_deg"]) <= 120 else "cylindrical")
        w, h = int(r["width"]), int(r["height"])
        assert abs(w / h - 4 / 3) < 0.05  # 4:3 landscape
        if name == "vigor":  # a phone's JPEG
            assert 70 <= int(r["jpeg_quality"]) <= 95
    # photos live beside the panoramas under the layout's own names
    first = rows[0]["image"]
    assert ("/photos/" in first) and ("streetview/photos/" in first) == (name == "cvusa")


def _pose(r) -> dict:
    keys = ("fov_deg", "heading_deg", "pitch_deg", "roll_deg")
    return {k: float(r[k]) for k in keys} | {"projection": r["projection"]}


def _size(r):
    return int(r["height"]), int(r["width"])


@pytest.mark.parametrize("name", ["vigor_exact", "cvusa"])
def test_photo_is_its_panorama_seen_at_the_recorded_pose(written, name):
    root = written[name]
    band = CVUSA_BAND if name == "cvusa" else (-90.0, 90.0)
    for r in _rows(root):
        photo = read_image(root / r["image"]).astype(int)
        pano = read_image(root / r["panorama"])
        pose = _pose(r)
        view = pano_to_pinhole(pano, size=_size(r), vfov_band=band, **pose)
        seen = (view != FILL_RGB).any(axis=-1)  # CVUSA: only the band is in the panorama
        assert seen.mean() > 0.3
        err = np.abs(photo - view)[seen].mean()
        turned = pano_to_pinhole(
            pano, size=_size(r), vfov_band=band, **pose | {"heading_deg": pose["heading_deg"] + 25}
        )
        assert err < 5.0 and err < 0.2 * np.abs(photo - turned)[seen].mean(), r["image"]
        if name == "cvusa" and not seen.all():
            # cut from the full sphere: the photo sees above and below the panorama's band
            assert (photo[~seen] != FILL_RGB).any(axis=-1).mean() > 0.9


def test_render_with_photos_cuts_the_exact_view_and_keeps_the_panorama(tmp_path):
    town = TownSpec(seed=3, style="suburb", origin_lat=40.0, origin_lon=-88.0, size_m=300.0)
    view = ViewJob(
        town, "panorama", (150.0, -150.0), (24, 96), 0.0, seed=5, paths=(), vfov_deg=65.0
    )
    spec = PhotoSpec(
        str(tmp_path / "p.png"), 70.0, 123.4, pitch_deg=8.0, roll_deg=-2.0, size=(30, 40)
    )
    band = render_with_photos(PanoPhotosJob(view, (spec,)))
    np.testing.assert_array_equal(band, render(view))  # the panorama's bytes do not change
    full_job, top = full_sphere_job(view)
    full = render(full_job)
    np.testing.assert_array_equal(full[top : top + 24], band)
    expected = pano_to_pinhole(
        full, fov_deg=70.0, heading_deg=123.4, pitch_deg=8.0, roll_deg=-2.0, size=(30, 40)
    )
    np.testing.assert_array_equal(np.asarray(Image.open(spec.path)), expected)


def test_photo_split_gives_each_photo_its_panoramas_truth_and_pose(written):
    root = written["vigor"]
    split = load("vigor", root, "test", mode="cross")  # the official loader ignores photos
    photos, poses = photo_split(split, root / "photos.csv")
    assert len(photos) == 2 * len(split)
    rows = {r["image"]: r for r in read_photos_csv(root / "photos.csv")}
    for i, path in enumerate(photos.query_paths):
        r = rows[path.relative_to(root).as_posix()]
        q = split.query_paths.index(root / r["panorama"])
        assert photos.query_ids[i] == split.query_ids[q]
        np.testing.assert_array_equal(photos.query_latlon[i], split.query_latlon[q])
        np.testing.assert_array_equal(photos.positive_offsets_px[i], split.positive_offsets_px[q])
        assert parse_panorama_name(path.name)[1:] == tuple(split.query_latlon[q])
        assert (
            poses["heading_deg"][i] == r["heading_deg"]
            and poses["projection"][i] == r["projection"]
        )
    one = float(poses["fov_deg"][0])
    only, p1 = photo_split(split, root / "photos.csv", fov_deg=one)
    assert len(only) >= 1 and (p1["fov_deg"] == one).all()
    cv = written["cvusa"]
    test = load("cvusa", cv, "test")
    cphotos, _ = photo_split(test, cv / "photos.csv")
    assert len(cphotos) == len(test) and all(p.is_file() for p in cphotos.query_paths)


def test_photo_paths_of_every_layout():
    from pathlib import Path

    name = "abc,41.5,-87.1,.jpg"
    assert photo_path(Path(f"/d/Chicago/panorama/{name}"), 0, 1) == Path(
        f"/d/Chicago/photos/{name}"
    )
    assert photo_path(Path(f"/d/ground/Chicago/{name}"), 1, 2) == Path(
        "/d/photos/Chicago/abc_p1,41.5,-87.1,.jpg"
    )
    assert photo_path(Path("/d/streetview/panos/0000007.jpg"), 2, 3) == Path(
        "/d/streetview/photos/0000007_p2.jpg"
    )
    with pytest.raises(ValueError):
        photo_path(Path("/d/elsewhere/x.jpg"), 0, 1)


def test_phone_look_exposure_tone_blur_and_jpeg():
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8)[None, :, None], (8, 1, 3))
    bright = PhoneLook(gain=1.4).apply(ramp).astype(int)
    assert (bright >= ramp).all() and bright[0, 20, 0] == round(80 * 1.4)
    dark = PhoneLook(gamma=1.25).apply(ramp).astype(int)
    assert dark[0, 32, 0] == round(255 * (128 / 255) ** 1.25) and (dark <= ramp).all()
    edge = np.zeros((16, 16, 3), np.uint8)
    edge[:, 8:] = 255
    soft = PhoneLook(blur_px=1.0).apply(edge)
    assert 0 < soft[8, 7, 0] < 255 and (NO_LOOK.apply(edge) == edge).all()
    looks = [PhoneLook.sample(np.random.default_rng(s)) for s in range(200)]
    assert {lk.jpeg_quality for lk in looks} <= set(range(70, 96)) and len(
        {lk.jpeg_quality for lk in looks}
    ) > 10
    assert 0.69 < min(lk.gain for lk in looks) and max(lk.gain for lk in looks) < 1.42
    assert PhoneLook(jpeg_quality=70).encode(ramp)[:2] == b"\xff\xd8"


def test_config_fingerprint_and_validation(tmp_path):
    plain = SynthConfig("vigor", tmp_path).fingerprint()
    assert not any(k.startswith("photo") for k in plain)  # old datasets keep their fingerprint
    with_photos = SynthConfig("vigor", tmp_path, photos=1, photo_fov=(60, 90)).fingerprint()
    assert with_photos["photos"] == 1 and with_photos["photo_fov"] == [60.0, 90.0]
    for bad in (
        dict(layout="cvact", photos=1),
        dict(layout="vigor", photos=1, photo_fov=(40, 200)),
        dict(layout="vigor", photos=1, photo_fov=(90, 60)),
        dict(layout="vigor", photos=-1),
        dict(layout="cvusa", photos=1, photo_pitch=60),
    ):
        with pytest.raises(ValueError):
            SynthConfig(out=tmp_path, **bad)


def test_eval_photos_share_a_heading_and_360_is_the_rolled_panorama(written, tmp_path):
    data, out = written["vigor"], tmp_path / "eval"
    argv = ["--data", str(data), "--out", str(out), "--fov", "360", "90", "--seed", "3"]
    assert photos_main(argv) == 0
    split = load("vigor", data, "test", mode="cross")
    rows = read_photos_csv(out / "photos.csv")
    assert len(rows) == 2 * len(split)
    by_pano: dict[str, list] = {}
    for r in rows:
        by_pano.setdefault(r["panorama"], []).append(r)
    for pano_rel, (wide, narrow) in by_pano.items():
        assert (wide["fov_deg"], narrow["fov_deg"]) == (360.0, 90.0)
        assert wide["heading_deg"] == narrow["heading_deg"]
        pano = read_image(data / pano_rel).astype(int)
        k = wide["heading_deg"] / 360 * PANO[1]
        assert k == int(k)  # a whole number of columns
        rolled = read_image(out / wide["image"]).astype(int)
        # centre column of the rolled panorama looks at the heading: rolling back by k restores it
        assert np.abs(np.roll(rolled, int(k), axis=1) - pano).mean() < 2.0
        photo = read_image(out / narrow["image"]).astype(int)
        view = pano_to_pinhole(
            pano.astype(np.uint8), size=(narrow["height"], narrow["width"]), **_pose(narrow)
        )
        assert np.abs(photo - view).mean() < 3.0
    photos, poses = photo_split(split, out / "photos.csv", fov_deg=90)
    assert len(photos) == len(split) and set(poses["projection"]) == {"pinhole"}
    again = tmp_path / "again"
    assert photos_main([*argv[:3], str(again), *argv[4:]]) == 0
    assert (again / "photos.csv").read_bytes() == (out / "photos.csv").read_bytes()
    assert photos_main([*argv[:-1], "4"]) == 2  # other settings: refused without --overwrite
    assert photos_main([*argv[:-1], "4", "--overwrite"]) == 0


@pytest.mark.slow
def test_same_photos_whatever_the_workers(tmp_path):
    import hashlib

    def digest(root):
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "synth_info.json"
        }

    a = digest(synthesize(tiny("cvusa", tmp_path / "a", photos=2, workers=1)))
    b = digest(synthesize(tiny("cvusa", tmp_path / "b", photos=2, workers=2)))
    assert a == b and sum("photos/" in k for k in a) == 16
    cfg = dataclasses.replace(tiny("cvusa", tmp_path / "c", photos=2), seed=12)
    assert digest(synthesize(cfg)) != a
