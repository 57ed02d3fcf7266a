"""d4g_edge.trust and d4g-edge calibrate: the answer's promise (radius, p_within_25m, status)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageFilter

from d4g_edge import trust
from d4g_edge.build.calibrate import calibrate, write_calibration
from d4g_edge.bundle import Bundle
from d4g_edge.errors import BundleChecksumError, BundleSchemaError, D4GEdgeError, SearchError
from d4g_edge.geo import haversine_m
from d4g_edge.localizer import Localizer
from tests.robustness.sdk_case import cli
from tests.sdk._models import conv_onnx, degrees_world_file, pano_of_tile, student_config

# ---- degenerate images ----------------------------------------------------------------


def _smooth(rng, h=128, w=512, sigma=3.0) -> np.ndarray:
    noise = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    img = Image.fromarray(noise).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(sigma)))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda r: np.zeros((128, 512, 3), np.uint8), "constant"),
        (lambda r: np.full((128, 512, 3), 200, np.uint8), "constant"),
        (lambda r: r.integers(0, 256, (128, 512, 3), dtype=np.uint8), "noise"),
        (lambda r: np.clip(r.normal(128, 40, (128, 512, 3)), 0, 255).astype(np.uint8), "noise"),
        (lambda r: r.integers(0, 256, (1, 1, 3), dtype=np.uint8), "px"),
        (lambda r: r.integers(0, 256, (8, 8, 3), dtype=np.uint8), "px"),
        (lambda r: _smooth(r)[:4], "px"),
        (lambda r: np.tile(_smooth(r), (1, 8, 1))[:20], "aspect"),
    ],
)
def test_degenerate_images_are_named(make, words):
    problem = trust.image_problem(make(np.random.default_rng(0)))
    assert problem is not None and words in problem


def test_natural_looking_images_pass():
    rng = np.random.default_rng(1)
    for sigma in (1.0, 3.0, 6.0):
        assert trust.image_problem(_smooth(rng, sigma=sigma)) is None


# ---- the fit --------------------------------------------------------------------------


def test_conformal_quantile_is_the_finite_sample_rank():
    e = np.arange(1.0, 20.0)  # 19 errors: ceil(20 * 0.95) = 19th smallest
    assert trust.conformal_quantile(e, 0.95) == 19.0
    assert trust.conformal_quantile(e[:5], 0.95) == np.inf  # too few to promise 95 %


def _synthetic_rows(rng, n=4000):
    """Features whose first column drives the chance of a right answer and whose second
    marks out-of-map rows; errors of right answers ~ 10 m, of wrong ones ~ km, a third of
    the rows out of the map."""
    f = rng.normal(size=(n, len(trust.FEATURES)))
    p = 1 / (1 + np.exp(-2.5 * f[:, 0]))
    in_map = rng.uniform(size=n) > 1 / 3
    f[~in_map, 1] -= 3.0  # the second column tells most out-of-map rows apart
    right = in_map & (rng.uniform(size=n) < p)
    err = np.where(right, rng.rayleigh(8.0, n), rng.uniform(100, 5000, n))
    prior = rng.uniform(size=n) < 0.3
    return f, err, in_map, prior


def test_fit_covers_held_out_rows_and_is_monotone():
    rng = np.random.default_rng(0)
    f, err, in_map, prior = _synthetic_rows(rng, n=12_000)
    cal = trust.fit(f, err, in_map, prior, coverage=0.95, max_radius_m=10_000.0)
    f2, err2, in_map2, prior2 = _synthetic_rows(np.random.default_rng(1), n=12_000)
    groups = cal.group_of(f2, prior2)
    pw = cal.p_within(f2, prior2)
    for g in trust.GROUPS:  # each kind of query keeps the promise (Mondrian conformal)
        sel = in_map2 & (groups == g)
        covered = err2[sel] <= cal.radius(pw[sel], g)
        assert 0.92 <= covered.mean() <= 0.98, (g, covered.mean())
        table = np.asarray(cal.groups[g].radius)
        assert np.all(np.diff(table) <= 0)  # likelier answers, never wider radii
        edges = np.asarray(cal.groups[g].bin_edges)  # a p's bin: the last edge <= p
        p = np.r_[-1.0, edges, edges + 1e-9, 2.0]
        b = np.clip(np.searchsorted(edges, p, "right") - 1, 0, len(table) - 1)
        assert np.array_equal(cal.radius(p, g), np.minimum(table[b], cal.max_radius_m))
    # p_within_25m is calibrated: in each decile of stated probability, the observed share
    # of answers within 25 m matches it (expected calibration error)
    right2 = in_map2 & (err2 <= 25)
    q = np.quantile(pw, np.linspace(0, 1, 11))
    b = np.clip(np.searchsorted(q, pw, "right") - 1, 0, 9)
    gaps = [
        abs(right2[b == i].mean() - pw[b == i].mean()) * (b == i).mean()
        for i in range(10)
        if (b == i).any()
    ]
    assert sum(gaps) < 0.03, gaps
    # 'ok' keeps its precision (0.9 by default) on held-out rows, and is not empty
    verdicts = [cal.judge(x, np.inf if pr else None)[0] for x, pr in zip(f2, prior2, strict=True)]
    ok = np.array([v.status == "ok" for v in verdicts])
    assert ok.mean() > 0.05 and right2[ok].mean() >= 0.85
    assert ok[~in_map2].mean() < 0.1


def test_ok_threshold_is_the_lowest_with_the_precision():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    right = np.array([True, True, False, True, False])
    assert trust.ok_threshold_for(p, right, 0.75, min_rows=1) == 0.6  # 3 of the top 4
    assert trust.ok_threshold_for(p, right, 1.0, min_rows=1) == 0.8
    assert trust.ok_threshold_for(p, ~right, 0.9, min_rows=1) == np.inf  # nothing to promise
    assert trust.ok_threshold_for(p, right, 0.75) == np.inf  # fewer than 20 rows kept


def test_ok_threshold_keeps_or_drops_a_plateau_whole():
    """An isotonic map has plateaus: 100 rows at p = 0.24 with 23 right must not become 'ok'
    because the first of them happens to be right."""
    p = np.full(100, 0.24)
    right = np.zeros(100, bool)
    right[:23] = True
    assert trust.ok_threshold_for(p, right, 0.9) == np.inf
    p2 = np.r_[np.full(30, 0.95), p]
    right2 = np.r_[np.ones(30, bool), right]
    assert trust.ok_threshold_for(p2, right2, 0.9) == 0.95


def test_calibration_round_trips_and_rejects_bad_files():
    rng = np.random.default_rng(0)
    cal = trust.fit(*_synthetic_rows(rng), coverage=0.9, max_radius_m=1e4)
    again = trust.Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again == cal
    # a kind of query that can never be 'ok' (precision out of reach): strict JSON, same fit
    groups = dict(cal.groups)
    groups["heading_unknown"] = replace(groups["heading_unknown"], ok_threshold=np.inf)
    never = replace(cal, groups=groups)
    text = json.dumps(never.to_dict(), allow_nan=False)
    assert trust.Calibration.from_dict(json.loads(text)) == never
    bad = cal.to_dict()
    bad["in_map"]["weights"] = [1.0, 2.0]
    with pytest.raises(BundleSchemaError, match="features"):
        trust.Calibration.from_dict(bad)
    with pytest.raises(BundleSchemaError, match="calibration/1"):
        trust.Calibration.from_dict({"schema": "nope"})
    with pytest.raises(BundleSchemaError, match="malformed"):
        trust.Calibration.from_dict({k: v for k, v in cal.to_dict().items() if k != "in_map"})
    with pytest.raises(BundleSchemaError, match="groups"):
        trust.Calibration.from_dict(
            cal.to_dict() | {"groups": {"prior": cal.to_dict()["groups"]["prior"]}}
        )


def test_too_few_rows_is_a_typed_error():
    f, err, in_map, prior = _synthetic_rows(np.random.default_rng(0), n=30)
    with pytest.raises(D4GEdgeError, match="at least 20"):
        trust.fit(f, err, in_map, prior, max_radius_m=1e4)


# ---- a calibrated bundle, end to end --------------------------------------------------


@pytest.fixture(scope="module")
def smooth_world(tmp_path_factory):
    """A bundle over a smooth random raster (shared-weight encoders: a panorama made from a
    tile embeds like that tile) and geotagged query folders: panoramas of its tiles (in the
    map, some blurred so that not every answer is right) and of another raster far away."""
    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source

    d = tmp_path_factory.mktemp("trust")
    rng = np.random.default_rng(0)
    sources = {}
    for name, lat in (("map", 40.0), ("elsewhere", 10.0)):
        (d / name).mkdir()
        Image.fromarray(_smooth(rng, 200, 240, 1.5)).save(d / name / "ortho.png")
        degrees_world_file(d / name / "ortho.pgw", lat, -88.0, 0.5)
        sources[name] = open_tile_source(d / name / "ortho.png", tile_size_m=32, stride_m=8)
    ground = conv_onnx(d / "ground.onnx", student_config("ground"), seed=3)
    sat = conv_onnx(d / "satellite.onnx", student_config("satellite"), seed=3)
    bundle = build_index(sources["map"], sat, d / "bundle", ground=ground)

    def write(folder, tiles, blur_every):
        folder.mkdir()
        for i, t in enumerate(tiles):
            pano = pano_of_tile(t.read())
            if blur_every and i % blur_every == 0:  # hard queries: some answers go wrong
                pano = np.asarray(Image.fromarray(pano).filter(ImageFilter.GaussianBlur(4)))
                pano = np.roll(pano, pano.shape[1] // 3, axis=1)
            Image.fromarray(pano).save(folder / f"{i:03d}.png")
            (folder / f"{i:03d}.png.json").write_text(
                json.dumps({"lat": t.lat, "lon": t.lon, "heading_deg": 0.0})
            )

    tiles, other = list(sources["map"]), list(sources["elsewhere"])
    write(d / "fit", tiles[::2] + other[::2], blur_every=3)
    write(d / "held_out", tiles[1::2], blur_every=0)
    write(d / "held_out_elsewhere", other[1::2], blur_every=0)
    return {"dir": d, "bundle": bundle, "tiles": tiles}


@pytest.fixture(scope="module")
def calibrated(smooth_world):
    cal, report = calibrate(smooth_world["bundle"], smooth_world["dir"] / "fit", synthetic=30)
    return {**smooth_world, "cal": cal, "report": report}


def test_calibrate_writes_a_checksummed_fit_the_localizer_uses(calibrated):
    b = Bundle.load(calibrated["bundle"])
    entry = b.manifest["calibration"]
    assert trust.FILE_RE.fullmatch(entry["file"]) and entry["file"] in b.manifest["files"]
    loc = Localizer(calibrated["bundle"], threads=1)
    assert loc.calibration == calibrated["cal"]
    report = calibrated["report"]
    assert report["rows_in_map"] > 20 and 0.8 <= report["coverage_cv"] <= 1.0


def test_held_out_answers_keep_their_promise(calibrated):
    loc = Localizer(calibrated["bundle"], threads=1)
    d = calibrated["dir"]
    tiles = calibrated["tiles"][1::2]
    fixes = [
        loc.localize(np.asarray(Image.open(d / "held_out" / f"{i:03d}.png")), heading=0.0)
        for i in range(len(tiles))
    ]
    err = np.array(
        [
            np.hypot(f.lat - t.lat, f.lon - t.lon) * 111_000
            for f, t in zip(fixes, tiles, strict=False)
        ]
    )
    radius = np.array([f.uncertainty_m for f in fixes])
    assert (err <= radius).mean() >= 0.9
    assert all(f.coverage == 0.95 and 0 <= f.p_within_25m <= 1 for f in fixes)
    assert np.mean([f.status == "ok" for f in fixes]) >= 0.8
    # the radius does not depend on top_k (the features always use TRUST_K rows)
    img = np.asarray(Image.open(d / "held_out" / "000.png"))
    radii = {loc.localize(img, heading=0.0, top_k=k).uncertainty_m for k in (1, 5, 40)}
    assert len(radii) == 1


def test_degenerate_frames_are_never_fixes(calibrated):
    loc = Localizer(calibrated["bundle"], threads=1)
    rng = np.random.default_rng(5)
    frames = [
        np.zeros((64, 256, 3), np.uint8),
        np.full((64, 256, 3), 128, np.uint8),
        rng.integers(0, 256, (64, 256, 3), dtype=np.uint8),
        rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
    ]
    for img in frames:
        fix = loc.localize(img)
        assert fix.status == "not_in_map" and fix.uncertainty_m is None and fix.reason


def test_recalibrating_replaces_the_fit_and_tampering_is_caught(calibrated, tmp_path):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(calibrated["bundle"], b)
    old = json.loads((b / "manifest.json").read_text())["calibration"]["file"]
    cal = trust.Calibration.from_dict(
        calibrated["cal"].to_dict() | {"coverage": 0.9}
    )  # a different fit, a different file
    write_calibration(b, cal)
    manifest = json.loads((b / "manifest.json").read_text())
    assert manifest["calibration"]["file"] != old and not (b / old).exists()
    assert old not in manifest["files"]
    assert Localizer(b, threads=1).calibration.coverage == 0.9
    path = b / manifest["calibration"]["file"]
    path.write_text(path.read_text().replace('"coverage": 0.9', '"coverage": 0.5'))
    with pytest.raises(BundleChecksumError):
        Localizer(b, threads=1)


def test_calibrate_cli(calibrated, tmp_path):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(calibrated["bundle"], b)
    out = cli(["calibrate", str(b), "--queries", str(calibrated["dir"] / "fit"), "--json"], 120)
    assert out.kind == "ok", out.detail
    report = json.loads(out.stdout)
    assert report["coverage_asked"] == 0.95 and report["frames"] > 40
    for argv in (
        ["calibrate", str(b), "--queries", str(tmp_path / "nope")],
        ["calibrate", str(b), "--queries", str(calibrated["dir"] / "fit"), "--coverage", "1.5"],
        ["calibrate", str(tmp_path / "no_bundle"), "--queries", str(calibrated["dir"] / "fit")],
    ):
        out = cli(argv, 60)
        assert out.kind == "typed", (argv, out.detail)


def test_bad_headings_and_counts_are_typed(calibrated):
    loc = Localizer(calibrated["bundle"], threads=1)
    img = np.asarray(Image.open(calibrated["dir"] / "held_out" / "000.png"))
    for heading in (float("nan"), float("inf"), "north"):
        with pytest.raises(SearchError, match="heading"):
            loc.localize(img, heading=heading)
    for k in (0, -1, 2.5, "5", True):
        with pytest.raises(SearchError, match="top_k"):
            loc.localize(img, top_k=k)
    for t in (0, -0.1, float("nan")):
        with pytest.raises(SearchError, match="temperature"):
            Localizer(calibrated["bundle"], temperature=t)


# ---- follow: no fix for frames that show nothing, a fix once a drive agrees ------------


def _gps_inputs(folder, bundle, *extra) -> tuple[list, list]:
    """``d4g-edge follow FOLDER --mavlink`` to a real pymavlink listener: its GPS_INPUTs and
    JSON records."""
    import socket

    from pymavlink import mavutil

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listener = mavutil.mavlink_connection(f"udpin:127.0.0.1:{port}")
    try:
        argv = ["follow", str(folder), "--bundle", str(bundle), "--json", "--interval", "0.02"]
        argv += ["--settle", "0.05", "--idle-timeout", "0.5", "--threads", "1"]
        argv += ["--mavlink", f"udpout:127.0.0.1:{port}", *extra]
        out = cli(argv, timeout_s=120)
        assert out.kind == "ok", out.detail
        msgs = []
        while (
            msg := listener.recv_match(type="GPS_INPUT", blocking=True, timeout=0.5)
        ) is not None:
            msgs.append(msg)
    finally:
        listener.close()
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return msgs, records


@pytest.mark.parametrize("kind", ["black", "noise"])
def test_follow_never_publishes_a_fix_for_frames_that_show_nothing(calibrated, tmp_path, kind):
    rng = np.random.default_rng(0)
    folder = tmp_path / kind
    folder.mkdir()
    for i in range(30):
        img = (
            np.zeros((64, 256, 3), np.uint8)
            if kind == "black"
            else rng.integers(0, 256, (64, 256, 3), dtype=np.uint8)
        )
        Image.fromarray(img).save(folder / f"f{i:03d}.png")
        (folder / f"f{i:03d}.png.json").write_text(json.dumps({"odometry": [8.0, 90.0]}))
    msgs, records = _gps_inputs(folder, calibrated["bundle"])
    assert len(records) == 30 and len(msgs) == 30
    assert all(m.fix_type < 2 and m.satellites_visible == 0 for m in msgs)
    assert not any(r["usable"] for r in records)
    assert {r["frame_status"] for r in records} == {"not_in_map"}


def test_follow_publishes_a_fix_once_a_drive_agrees(calibrated, tmp_path):
    """The control: a drive east along a row of tiles (panoramas made from them) locks."""
    tiles = calibrated["tiles"]
    row = [t for t in tiles if t.lat == tiles[0].lat][:12]
    folder = tmp_path / "drive"
    folder.mkdir()
    for i, t in enumerate(row):
        Image.fromarray(pano_of_tile(t.read())).save(folder / f"f{i:03d}.png")
        (folder / f"f{i:03d}.png.json").write_text(json.dumps({"odometry": [8.0, 90.0]}))
    msgs, records = _gps_inputs(folder, calibrated["bundle"], "--heading", "0")
    assert len(msgs) == len(row) == len(records)
    usable = [r for r in records if r["usable"]]
    assert len(usable) >= len(row) // 2, [r["status"] for r in records]
    assert not records[0]["usable"]  # one frame is never enough to lock
    fixes = [m for m in msgs if m.fix_type >= 2]
    assert len(fixes) == len(usable)
    for r, t in zip(records, row, strict=True):
        if r["usable"]:
            assert float(haversine_m(r["lat"], r["lon"], t.lat, t.lon)) <= r["uncertainty_m"]


def test_localize_cli_takes_the_heading_from_the_sidecar(calibrated, tmp_path):
    """``IMAGE.json``'s heading_deg is the device's compass (as in follow); --heading wins."""
    tile = calibrated["tiles"][40]
    pano = pano_of_tile(tile.read())
    east = np.roll(pano, -pano.shape[1] // 4, axis=1)  # the centre column now looks east
    img = tmp_path / "east.png"
    Image.fromarray(east).save(img)
    (tmp_path / "east.png.json").write_text(json.dumps({"heading_deg": 90.0}))
    argv = ["localize", str(img), "--bundle", str(calibrated["bundle"]), "--json"]
    rec = json.loads(cli(argv, 60).stdout)
    assert rec["heading_known"] and rec["heading_deg"] == 90.0
    assert (rec["lat"], rec["lon"]) == (tile.lat, tile.lon)
    rec = json.loads(cli([*argv, "--heading", "0"], 60).stdout)
    assert rec["heading_deg"] == 0.0 and rec["heading_known"]
