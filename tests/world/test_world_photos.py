"""The world's own pinhole camera and d4g_edge.photo agree on where things are.

``World.render_pinhole`` ray-marches a level pinhole view directly; ``pano_to_pinhole`` cuts
it from an equirectangular panorama of the same spot. Both written independently, so their
agreement checks the panorama convention (north at the centre, azimuth clockwise, elevation
rows) and the photo geometry together; a view turned by 15 degrees must not agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.photo import pano_to_pinhole


@pytest.mark.parametrize("heading", [0.0, 37.0, 200.0])
def test_pinhole_cut_from_a_panorama_matches_the_worlds_pinhole(small_world, heading):
    spot = small_world.sample_street_points(1, np.random.default_rng(4))[0]
    pano = small_world.render_panorama(spot, height=256, width=1024, rng=np.random.default_rng(1))
    size = (48, 64)
    direct = small_world.render_pinhole(
        spot, heading, fov_deg=90.0, height=size[0], width=size[1], rng=np.random.default_rng(1)
    ).astype(int)
    cut = pano_to_pinhole(pano, fov_deg=90.0, heading_deg=heading, size=size).astype(int)
    turned = pano_to_pinhole(pano, fov_deg=90.0, heading_deg=heading + 15, size=size)
    err = np.abs(direct - cut).mean()
    assert err < 4.0, err
    assert err < 0.3 * np.abs(direct - turned.astype(int)).mean()
