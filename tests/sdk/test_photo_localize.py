"""Phone photos and unknown heading through the SDK (issue 23): ``localize(photo, fov_deg=)``,
EXIF, the heading search's refinement, ``heading_sigma_deg`` and the photo trust groups."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from d4g_edge import trust
from d4g_edge.errors import D4GEdgeError, SearchError
from d4g_edge.geo import haversine_m
from d4g_edge.image import load_rgb
from d4g_edge.localizer import DEFAULT_BUNDLE, Localizer, heading_grid, refine_heading
from d4g_edge.photo import pano_to_pinhole

SAMPLE = DEFAULT_BUNDLE.parents[1] / "examples" / "query_pano.jpg"
needs_default = pytest.mark.skipif(
    not (DEFAULT_BUNDLE / "manifest.json").is_file() or not SAMPLE.is_file(),
    reason="no bundled default / sample panorama in this tree",
)


def _circular(a: float, b: float) -> float:
    d = (a - b) % 360.0
    return min(d, 360.0 - d)


# ---- the heading search's grid and refinement (no model) -----------------------------------


def test_heading_grid_is_even_and_starts_north():
    assert heading_grid(8).tolist() == [0, 45, 90, 135, 180, 225, 270, 315]
    with pytest.raises(SearchError):
        heading_grid(0)


@pytest.mark.parametrize("peak", [0.0, 37.0, 101.5, 352.0])
def test_refinement_finds_the_peak_of_a_parabola_between_grid_headings(peak):
    n = 24
    h = heading_grid(n)
    d = (h - peak + 180.0) % 360.0 - 180.0  # signed distance to the peak
    scores = 0.9 - 1e-4 * d**2  # a parabola in the heading: the fit is exact
    best = int(np.argmax(scores))
    refined = h[best] + refine_heading(scores, best) * 360.0 / n
    assert _circular(refined, peak) < 1e-6


def test_refinement_stays_within_half_a_step_and_leaves_flat_scores_alone():
    assert refine_heading(np.array([0.5, 0.5, 0.5, 0.5])) == 0.0
    assert refine_heading(np.array([0.1, 0.9])) == 0.0  # fewer than 3 headings
    # a best whose neighbours are both higher is not a peak of the fit
    assert refine_heading(np.array([0.9, 0.1, 0.9, 0.2]), best=1) == 0.0
    assert abs(refine_heading(np.array([0.2, 0.9, 0.89999, 0.1]))) <= 0.5


# ---- the bundled default: a photo cut from the sample panorama -----------------------------


@pytest.fixture(scope="module")
def default():
    return Localizer(threads=1)


@pytest.fixture(scope="module")
def sample():
    meta = json.loads(SAMPLE.with_name(SAMPLE.name + ".json").read_text())
    assert meta["heading_deg"] == 0.0  # its centre column looks north
    return load_rgb(SAMPLE), (meta["lat"], meta["lon"])


def _cut(pano: np.ndarray, fov: float, heading: float, size=None) -> np.ndarray:
    """A level photo whose optical axis looks at ``heading`` (the panorama is north-up)."""
    w = round(pano.shape[1] * fov / 360.0)  # as many columns per degree as the panorama
    return pano_to_pinhole(pano, fov_deg=fov, heading_deg=heading, size=size or (w // 2, w))


# A 270-degree cylindrical photo (a phone's panorama mode): wide enough for the students
# trained on panoramas only (narrower ones need the photo student, weights/edge-s-vigor-photo)
WIDE_FOV = 270.0


@needs_default
@pytest.mark.parametrize("true_heading", [0.0, 100.0])
def test_a_wide_photo_localizes_with_its_heading_known_and_searched(default, sample, true_heading):
    pano, truth = sample
    photo = _cut(pano, WIDE_FOV, true_heading)
    known = default.localize(photo, heading=true_heading, fov_deg=WIDE_FOV)
    assert known.fov_deg == WIDE_FOV and known.heading_known
    assert known.heading_deg == true_heading and known.heading_sigma_deg is None
    assert float(haversine_m(known.lat, known.lon, *truth)) <= 25.0
    found = default.localize(photo, fov_deg=WIDE_FOV)
    assert not found.heading_known and found.fov_deg == WIDE_FOV
    assert _circular(found.heading_deg, true_heading) <= 20.0, found.heading_deg
    # as an array without fov_deg the same pixels are a panorama (today's behaviour)
    assert default.localize(photo, heading=0.0).fov_deg == 360.0


@needs_default
def test_unknown_heading_row_zero_is_the_photo_placed_at_heading_zero(default, sample):
    photo = _cut(sample[0], 90.0, 40.0)
    rows = default.embed(photo, fov_deg=90.0)
    assert rows.shape[0] == default.photo_headings
    north = default.embed(photo, heading=0.0, fov_deg=90.0)
    assert north.shape[0] == 1 and np.allclose(rows[0], north[0], atol=1e-5)
    # another heading places the photo elsewhere in the canvas: another embedding
    assert not np.allclose(default.embed(photo, heading=90.0, fov_deg=90.0)[0], north[0])


def _exif_jpeg(path, rgb: np.ndarray, focal_35mm: float | None):
    exif = Image.Exif()
    if focal_35mm is not None:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm
    Image.fromarray(rgb).save(path, quality=95, exif=exif)
    return path


@needs_default
def test_the_field_of_view_is_read_from_exif(default, sample, tmp_path):
    photo = _cut(sample[0], 70.0, 10.0, size=(240, 320))
    path = _exif_jpeg(tmp_path / "phone.jpg", photo, 26.0)
    # CIPA: the 35 mm equivalent is on the 43.27 mm diagonal; the width gets its share
    frame_w = 43.27 * 320 / math.hypot(320, 240)
    expected = math.degrees(2 * math.atan(frame_w / 2 / 26.0))
    fix = default.localize(path, heading=10.0)
    assert fix.fov_deg == pytest.approx(expected, abs=1e-6)
    assert default.localize(path.read_bytes(), heading=10.0).fov_deg == pytest.approx(expected)
    # fov_deg given wins over EXIF; an array has no EXIF (a panorama)
    assert default.localize(path, heading=10.0, fov_deg=90.0).fov_deg == 90.0
    assert default.localize(load_rgb(path), heading=10.0).fov_deg == 360.0
    # no tag, or an image 2:1 or wider (an equirectangular panorama), is a panorama
    assert default.localize(_exif_jpeg(tmp_path / "none.jpg", photo, None)).fov_deg == 360.0
    wide = _exif_jpeg(tmp_path / "pano.jpg", sample[0], 26.0)
    assert default.localize(wide, heading=0.0).fov_deg == 360.0


@needs_default
@pytest.mark.parametrize("bad", [0, -10.0, 360.5, float("nan"), float("inf"), "70", True, [[90]]])
def test_a_bad_field_of_view_is_a_typed_error(default, sample, bad):
    photo = _cut(sample[0], 90.0, 0.0)
    with pytest.raises(SearchError, match="fov_deg") as err:
        default.localize(photo, fov_deg=bad)
    assert isinstance(err.value, D4GEdgeError)
    with pytest.raises(SearchError, match="2 fields of view for 1 images"):
        default.localize_batch([photo], fov_deg=[90.0, 60.0])


@needs_default
def test_a_degenerate_photo_is_not_in_the_map_whatever_its_canvas(default):
    grey = np.full((120, 160, 3), 128, np.uint8)  # the canvas around it is not constant
    fix = default.localize(grey, fov_deg=60.0)
    assert fix.status == "not_in_map" and "constant" in fix.reason and fix.uncertainty_m is None


# ---- trust for photos ----------------------------------------------------------------------


def _without_photo_fits(cal: trust.Calibration) -> trust.Calibration:
    """``cal`` as a calibration fitted before photo groups and heading fits (its file)."""
    d = cal.to_dict()
    d["groups"] = {g: v for g, v in d["groups"].items() if g in trust.GROUPS}
    d.pop("heading", None)
    return trust.Calibration.from_dict(json.loads(json.dumps(d)))


@needs_default
def test_a_calibration_without_photo_groups_never_calls_a_photo_ok(sample):
    loc = Localizer(threads=1)
    if loc.calibration is None:
        pytest.skip("the bundled default has no calibration")
    old = _without_photo_fits(loc.calibration)
    loc.calibration = old
    assert not old.has_photo_groups
    pano = sample[0]
    photo = _cut(pano, WIDE_FOV, 0.0)
    for heading in (0.0, None):
        fix = loc.localize(photo, heading=heading, fov_deg=WIDE_FOV)
        assert fix.status == "uncertain" and "d4g-edge calibrate" in fix.reason
        # the documented stand-in: the heading_unknown group's model and radius
        f = loc.observe(photo, heading=heading, fov_deg=WIDE_FOV).features
        p = old.groups["heading_unknown"].within.predict(f[None])[0]
        assert fix.p_within_25m == pytest.approx(p)
        assert fix.uncertainty_m == pytest.approx(
            float(old.radius(np.array([p]), "heading_unknown")[0])
        )
        assert np.isfinite(fix.uncertainty_m) and fix.uncertainty_m > 0
        assert fix.heading_sigma_deg is None  # no heading fit in the old file
    # the panorama itself is still judged by its own group (it may be ok)
    assert loc.localize(pano, heading=0.0).reason != trust.NO_PHOTO_FIT


def _rows(rng, n, photo_share=0.5):
    """Synthetic feature rows: column 0 drives a right answer, lead_heading the heading error
    (right answers: |N(0, 20 / (1 + lead))| degrees), a third out of the map."""
    f = rng.normal(size=(n, len(trust.FEATURES)))
    lead = np.abs(rng.normal(size=n)) * 2
    f[:, trust.FEATURES.index("lead_heading")] = lead
    p = 1 / (1 + np.exp(-2.5 * f[:, 0]))
    in_map = rng.uniform(size=n) > 1 / 3
    f[~in_map, 1] -= 3.0  # the second column tells most out-of-map rows apart
    right = in_map & (rng.uniform(size=n) < p)
    err = np.where(right, rng.rayleigh(8.0, n), rng.uniform(100, 5000, n))
    prior = rng.uniform(size=n) < 0.3
    photo = rng.uniform(size=n) < photo_share
    known = f[:, trust.FEATURES.index("heading_known")] > 0.5
    h_err = np.abs(rng.normal(0.0, 20.0 / (1.0 + lead)))
    h_err = np.where(known, np.nan, np.where(right, h_err, rng.uniform(0, 180, n)))
    return f, err, in_map, prior, photo, h_err


def test_photo_groups_and_heading_errors_are_fitted_and_keep_their_promise():
    f, err, in_map, prior, photo, h_err = _rows(np.random.default_rng(0), 16_000)
    cal = trust.fit(f, err, in_map, prior, max_radius_m=1e4, photo=photo, heading_error_deg=h_err)
    assert cal.has_photo_groups and set(cal.heading) == {"panorama", "photo"}
    assert cal.meta["photo_groups"] == "fitted" and cal.photo_in_map_threshold is not None
    for h in cal.heading.values():  # a clearer best heading never gets a wider bound
        assert np.all(np.diff(h.bound_deg) <= 0) and max(h.bound_deg) <= 180.0
    f2, err2, in_map2, prior2, photo2, h_err2 = _rows(np.random.default_rng(1), 16_000)
    right = in_map2 & (err2 <= trust.WITHIN_M)
    sigma = np.array(
        [cal.heading_sigma(x, photo=bool(p)) or np.nan for x, p in zip(f2, photo2, strict=True)]
    )
    known = f2[:, trust.FEATURES.index("heading_known")] > 0.5
    assert np.isnan(sigma[known]).all()  # a given heading has no sigma
    for kind in (False, True):
        sel = right & ~known & (photo2 == kind)
        covered = (h_err2[sel] <= 1.96 * sigma[sel]).mean()
        assert 0.92 <= covered <= 0.98, (kind, covered)
    # the radius of photos keeps its promise in each photo group
    groups = cal.group_of(f2, prior2, photo2)
    pw = cal.p_within(f2, prior2, photo2)
    for g in trust.PHOTO_GROUPS:
        sel = in_map2 & (groups == g)
        assert 0.92 <= (err2[sel] <= cal.radius(pw[sel], g)).mean() <= 0.99, g
    # files: round trip; a file of the old kind (no photo groups, no heading) still loads
    again = trust.Calibration.from_dict(json.loads(json.dumps(cal.to_dict(), allow_nan=False)))
    assert again == cal
    old = _without_photo_fits(cal)
    assert not old.has_photo_groups and old.heading == {}
    # ... and judges a photo that a panorama group would call ok as uncertain, with the
    # heading_unknown group's radius
    x = next(x for x in f2[right] if old.judge(x)[0].status == "ok")
    photo_v = old.judge(x, photo=True)[0]
    assert photo_v.status == "uncertain" and photo_v.reason == trust.NO_PHOTO_FIT
    p = old.groups["heading_unknown"].within.predict(x[None])
    assert photo_v.uncertainty_m == pytest.approx(old.radius(p, "heading_unknown")[0])
    # half the photo groups is not a calibration
    broken = cal.to_dict()
    del broken["groups"]["photo_prior"]
    with pytest.raises(D4GEdgeError, match="groups"):
        trust.Calibration.from_dict(broken)


def test_too_few_photo_rows_leave_the_photo_groups_out():
    f, err, in_map, prior, photo, h_err = _rows(np.random.default_rng(2), 4000, photo_share=0.01)
    cal = trust.fit(f, err, in_map, prior, max_radius_m=1e4, photo=photo, heading_error_deg=h_err)
    assert not cal.has_photo_groups and "not fitted" in cal.meta["photo_groups"]
    assert cal.photo_in_map_threshold is None
    assert "photo" not in cal.heading and "panorama" in cal.heading


@needs_default
def test_heading_sigma_is_the_fitted_bound_over_1_96_and_none_when_given(sample):
    loc = Localizer(threads=1)
    if loc.calibration is None:
        pytest.skip("the bundled default has no calibration")
    fit = {"bin_edges": [0.0, 0.05], "bound_deg": [40.0, 12.0], "rows": 100}
    cal = _without_photo_fits(loc.calibration).to_dict() | {"heading": {"panorama": fit}}
    loc.calibration = trust.Calibration.from_dict(cal)
    pano = sample[0]
    searched = loc.localize(np.roll(pano, 128, axis=1))
    lead = loc.observe(np.roll(pano, 128, axis=1)).features[trust.FEATURES.index("lead_heading")]
    bound = 12.0 if lead >= 0.05 else 40.0
    assert searched.heading_sigma_deg == pytest.approx(bound / 1.959964, rel=1e-5)
    assert loc.localize(pano, heading=0.0).heading_sigma_deg is None
    # photos have no heading fit in this calibration: no sigma
    assert loc.localize(_cut(pano, WIDE_FOV, 0.0), fov_deg=WIDE_FOV).heading_sigma_deg is None


# ---- d4g-edge calibrate's rows -------------------------------------------------------------


def test_calibration_frames_give_panorama_and_photo_rows_with_their_heading_errors(paired):
    """A panorama made from a tile (shared-weight encoders: it embeds like that tile) gives
    three panorama rows and three photo rows; the searched headings' errors are measured
    against the truth turned by the random roll, so a recovered heading has error ~0."""
    from d4g_edge.build.calibration_rows import Collector, Rows
    from tests.sdk._models import GROUND_HW, pano_of_tile

    # a roll of every column: the random turn of the frame is always one of them
    loc = Localizer(paired["bundle"], threads=1, headings=GROUND_HW[1])
    tile = paired["tiles"][20]
    col, rows = Collector(loc, seed=3), Rows.empty()
    col.frame(rows, pano_of_tile(tile.read()), {"lat": tile.lat, "lon": tile.lon,
                                                "heading_deg": 0.0})  # fmt: skip
    known = rows.features[:, trust.FEATURES.index("heading_known")] > 0.5
    assert len(rows.error_m) == 6 and rows.photo.tolist() == [False] * 3 + [True] * 3
    assert rows.prior.tolist() == [False, False, True, False, False, True]
    assert known.tolist() == [True, False, False, True, False, False]
    assert np.isnan(rows.heading_error_deg[known]).all()
    assert np.isfinite(rows.heading_error_deg[~known]).all()
    # the rolled panorama: the right tile and its true heading, found within the refinement
    # (half a step of the search)
    assert rows.error_m[1] == 0.0
    assert rows.heading_error_deg[1] <= 180.0 / loc.headings


# ---- benchmarks.bench_photo --swap-query ---------------------------------------------------


@needs_default
def test_swap_query_copies_the_default_with_another_query_model(tmp_path):
    """The copy verifies like any bundle (checksums, pairing), holds the new model's bytes
    and no calibration (fitted for the old model)."""
    from benchmarks.bench_photo import swap_query
    from d4g_edge.bundle import Bundle
    from d4g_edge.fileio import sha256_file

    model = tmp_path / "other.onnx"
    model.write_bytes(Bundle.load(DEFAULT_BUNDLE).query_path.read_bytes())
    out = swap_query(DEFAULT_BUNDLE, model, tmp_path / "copy")
    copy = Bundle.load(out)
    assert sha256_file(copy.query_path) == sha256_file(model)
    assert "calibration" not in copy.manifest
    assert Localizer(out, threads=1).calibration is None
    with pytest.raises(D4GEdgeError, match="exists"):
        swap_query(DEFAULT_BUNDLE, model, out)


# ---- the command line: d4g-edge localize --fov, follow's sidecars ---------------------------


@needs_default
def test_localize_cli_takes_the_fov_from_the_flag_then_the_sidecar(sample, tmp_path):
    from tests.robustness.sdk_case import cli

    photo = tmp_path / "photo.png"
    Image.fromarray(_cut(sample[0], WIDE_FOV, 100.0)).save(photo)
    argv = ["localize", str(photo), "--heading", "100", "--json"]
    assert json.loads(cli(argv, 60).stdout)["fov_deg"] == 360.0  # no sidecar, no EXIF
    rec = json.loads(cli([*argv, "--fov", str(WIDE_FOV)], 60).stdout)
    assert rec["fov_deg"] == WIDE_FOV
    (tmp_path / "photo.png.json").write_text(json.dumps({"fov_deg": WIDE_FOV}))
    rec = json.loads(cli(argv, 60).stdout)
    assert rec["fov_deg"] == WIDE_FOV and rec["heading_deg"] == 100.0
    assert json.loads(cli([*argv, "--fov", "360"], 60).stdout)["fov_deg"] == 360.0
    for bad in ("0", "400", "nan", "wide"):
        out = cli([*argv, "--fov", bad], 60)
        assert out.kind == "typed", (bad, out.detail)


def test_follow_sidecars_read_a_field_of_view(tmp_path):
    from d4g_edge.cli.follow.errors import SidecarError
    from d4g_edge.cli.follow.sidecars import read_sidecar

    image = tmp_path / "f.jpg"
    (tmp_path / "f.jpg.json").write_text('{"fov_deg": 68.5, "heading_deg": 10}')
    assert read_sidecar(image).fov_deg == 68.5
    for bad in ("0", "361", '"wide"', "NaN"):
        (tmp_path / "f.jpg.json").write_text('{"fov_deg": ' + bad + ', "heading_deg": 10}')
        meta = read_sidecar(image)
        assert meta.fov_deg is None and meta.heading_deg == 10.0
        assert len(meta.problems) == 1 and isinstance(meta.problems[0], SidecarError)


@needs_default
def test_follow_hands_a_phone_frames_fov_to_observe(sample, tmp_path, monkeypatch):
    """The sidecar's fov_deg, else the frame's EXIF, reaches Localizer.observe (recorded by a
    wrapper around the real method) for a ground bundle."""
    from tests.robustness.sdk_case import cli

    seen = []
    real = Localizer.observe

    def observe(self, image, **kw):
        seen.append(kw.get("fov_deg"))
        return real(self, image, **kw)

    monkeypatch.setattr(Localizer, "observe", observe)
    frames = tmp_path / "frames"
    frames.mkdir()
    photo = _cut(sample[0], 70.0, 100.0, size=(240, 320))
    Image.fromarray(photo).save(frames / "f000.png")
    (frames / "f000.png.json").write_text(json.dumps({"fov_deg": 70.0}))
    _exif_jpeg(frames / "f001.jpg", photo, 26.0)
    Image.fromarray(sample[0]).save(frames / "f002.png")  # a panorama: no field of view
    argv = ["follow", str(frames), "--json", "--interval", "0.05", "--settle", "0.1"]
    out = cli([*argv, "--idle-timeout", "1", "--max-frames", "3"], 120)
    assert out.kind == "ok", out.detail
    frame_w = 43.27 * 320 / math.hypot(320, 240)  # CIPA's 35 mm equivalent, as above
    assert seen[0] == 70.0
    assert seen[1] == pytest.approx(math.degrees(2 * math.atan(frame_w / 2 / 26.0)))
    assert seen[2] is None
