"""The bundled default (``d4g_edge/_default``, written by ``python -m tools.default_bundle``):
it verifies, was built with the off-centre recipe, fits the wheel budget, and the README's
first command localizes its sample query without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from d4g_edge.bundle import Bundle
from d4g_edge.geo import haversine_m
from d4g_edge.localizer import DEFAULT_BUNDLE, Localizer
from d4g_edge.polar import cell_centres

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "query_pano.jpg"

pytestmark = pytest.mark.skipif(
    not (DEFAULT_BUNDLE / "manifest.json").is_file(), reason="no bundled default in this tree"
)


def test_default_bundle_verifies_and_is_the_offcentre_recipe():
    b = Bundle.load(DEFAULT_BUNDLE)  # checksums, schema, pairing
    size = sum(p.stat().st_size for p in DEFAULT_BUNDLE.rglob("*") if p.is_file())
    assert size <= 30 * 2**20
    # the shipped default predates models.query: its models.ground is read as the alias
    assert "ground" in b.manifest["models"] and b.query_path.name == "ground.onnx"
    assert b.query_config.quantization == "int8"
    assert b.satellite_config.input().centre_step is not None
    assert b.query_config.input().crop_rows is not None
    # VIGOR's half-overlap grid (stride 0.5 tile) at the config's spacing: 5 x 5 at 1/10
    n = len(cell_centres(0.5, b.satellite_config.input().centre_step))
    assert n >= 9 and b.centres_per_tile == n
    assert len(b.tiles) == n * len(set(b.tiles.tile_id.tolist()))
    assert b.manifest["index"]["storage"] == "pca-int8"  # issue 22: the index <= 1 MB
    assert (DEFAULT_BUNDLE / "index.bin").stat().st_size <= 1_000_000
    info = json.loads((DEFAULT_BUNDLE / "default.json").read_text())
    # the command that built it: tools.default_bundle (train.default_bundle before issue 24's
    # move; the shipped default is kept byte for byte, so it still records the old path)
    assert info["command"].split()[:3] in (
        ["python", "-m", "tools.default_bundle"],
        ["python", "-m", "train.default_bundle"],
    )
    assert len(info["samples"]) >= 3


def test_samples_localize_with_their_truth():
    loc = Localizer()  # the default
    errors = []
    for sample in sorted((DEFAULT_BUNDLE / "samples").glob("*.jpg")):
        truth = json.loads(sample.with_name(sample.name + ".json").read_text())
        fix = loc.localize(sample, heading=0.0)
        errors.append(float(haversine_m(fix.lat, fix.lon, truth["lat"], truth["lon"])))
        assert fix.candidates[0].tile_id in set(loc.bundle.tiles.tile_id.tolist())
    assert len(errors) >= 3 and all(e >= 0 for e in errors)


def test_readme_first_command_runs_torch_free():
    # block torch (and the repository tooling) the way a device install lacks them
    blocked = "sys.modules.update({m: None for m in ('torch', 'train', 'export')})"
    code = (
        f"import sys; {blocked}; import runpy; "
        f"sys.argv = ['d4g-edge', 'localize', {str(EXAMPLE)!r}]; "
        "runpy.run_module('d4g_edge', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "lat " in proc.stdout and "error " in proc.stdout and " m" in proc.stdout
    truth = json.loads(EXAMPLE.with_name(EXAMPLE.name + ".json").read_text())
    assert {"lat", "lon"} <= set(truth)


def test_the_default_is_calibrated_and_its_sample_promise_holds():
    """The bundled default carries its fit (d4g-edge calibrate on benchmarks.trust_data's
    fit set): the samples (north-aligned, heading from their sidecars) get a radius that holds
    their error, and a black frame is no fix."""
    import numpy as np

    loc = Localizer()
    assert loc.calibration is not None and loc.calibration.coverage == 0.95
    assert loc.calibration.track.get("margin_m", 0) > 0  # fitted on held-out drives
    for sample in sorted((DEFAULT_BUNDLE / "samples").glob("*.jpg")):
        truth = json.loads(sample.with_name(sample.name + ".json").read_text())
        fix = loc.localize(sample, heading=truth["heading_deg"])
        err = float(haversine_m(fix.lat, fix.lon, truth["lat"], truth["lon"]))
        assert fix.status in ("ok", "uncertain") and 0 <= fix.p_within_25m <= 1
        if fix.status == "ok":
            assert err <= fix.uncertainty_m <= 1000, (sample.name, err, fix.uncertainty_m)
    black = loc.localize(np.zeros((128, 512, 3), np.uint8))
    assert black.status == "not_in_map" and black.uncertainty_m is None
