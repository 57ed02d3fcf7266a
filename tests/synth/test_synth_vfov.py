"""Panorama vertical field of view: CVUSA-style panoramas are the horizon band of the sphere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from train.synth import SynthConfig
from train.synth._render import ViewJob, render
from train.synth._towns import TownSpec

TOWN = TownSpec(seed=3, style="suburb", origin_lat=40.0, origin_lon=-88.0, size_m=300.0)


def _pano(height: int, vfov: float) -> np.ndarray:
    job = ViewJob(
        TOWN, "panorama", (150.0, -150.0), (height, 64), 0.0, seed=5, paths=(), vfov_deg=vfov
    )
    return render(job)


def test_narrow_panorama_is_the_centre_band_of_the_full_sphere():
    band = _pano(24, 60.0)  # 60 of 180 degrees: a third of a 72-row sphere
    sphere = _pano(72, 180.0)
    assert band.shape == (24, 64, 3)
    np.testing.assert_array_equal(band, sphere[24:48])


def test_layout_conventions_and_validation():
    out = Path("unused")
    assert SynthConfig(layout="cvusa", out=out).pano_vfov_deg == 65.0
    assert SynthConfig(layout="vigor", out=out).pano_vfov_deg == 180.0
    assert SynthConfig(layout="cvact", out=out, pano_vfov=90).pano_vfov_deg == 90.0
    with pytest.raises(ValueError, match="pano_vfov"):
        SynthConfig(layout="cvusa", out=out, pano_vfov=5)
