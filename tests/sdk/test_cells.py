"""Cell-sharded bundles: a device loads only the cells near its prior, searches them like one
index, verifies only what it loads, and agrees with the single-index bundle."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.build.builder import build_index
from d4g_edge.build.tiles import open_tile_source
from d4g_edge.bundle import Bundle
from d4g_edge.cells import CellIndex
from d4g_edge.errors import BundleChecksumError, SearchError
from d4g_edge.localizer import Localizer
from tests.sdk._models import pano_of_tile

CELL_DEG = 0.0003  # ~33 m x 26 m: the 100 x 80 m raster spans a dozen cells


@pytest.fixture(scope="module")
def cell_bundle(paired, tmp_path_factory):
    src = open_tile_source(paired["dir"] / "ortho.png", tile_size_m=32, stride_m=8)
    out = tmp_path_factory.mktemp("cells") / "b"
    build_index(
        src, paired["satellite"], out, ground=paired["ground"], cell_deg=CELL_DEG, cells=True
    )
    return out, list(src)


def test_all_cells_equal_the_single_index(cell_bundle, paired):
    out, _ = cell_bundle
    full = Bundle.load(out)
    single = Bundle.load(paired["bundle"])
    assert isinstance(full.index, CellIndex) and len(full.index.parts) >= 4
    assert not (out / "index.bin").exists()
    assert np.all(np.diff(full.tiles.cell) >= 0)  # rows sorted by cell
    q = single.index.get_vectors([0, 17, 40]) * 0.9 + 0.05
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    a_ids, a_s = full.index.search(q, k=4)
    b_ids, b_s = single.index.search(q, k=4)
    np.testing.assert_allclose(a_s, b_s, atol=1e-5)
    np.testing.assert_array_equal(full.tiles.tile_id[a_ids], single.tiles.tile_id[b_ids])


def test_region_loads_only_nearby_cells(cell_bundle):
    out, tiles = cell_bundle
    t0 = tiles[0]
    part = Bundle.load(out, region=(t0.lat, t0.lon, 10.0))
    full = Bundle.load(out)
    assert 0 < len(part.index.parts) < len(full.index.parts)
    loc = Localizer(part)
    fix = loc.localize(pano_of_tile(t0.read()), heading=0, prior=(t0.lat, t0.lon, 10.0))
    assert fix.candidates[0].tile_id == t0.tile_id
    far = tiles[-1]
    with pytest.raises(SearchError, match="outside the cells loaded"):
        loc.localize(pano_of_tile(far.read()), heading=0, prior=(far.lat, far.lon, 5.0))
    with pytest.raises(SearchError, match="no tile of this bundle"):
        Bundle.load(out, region=(41.0, -88.0, 10.0))


def test_only_loaded_cells_are_verified(cell_bundle, tmp_path):
    import shutil

    out, tiles = cell_bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    t0 = tiles[0]
    near_keys = set(Bundle.load(copy, region=(t0.lat, t0.lon, 10.0)).index.keys)
    victim = next(p for p in sorted((copy / "cells").iterdir()) if p.stem not in near_keys)
    victim.write_bytes(victim.read_bytes()[:-8])
    Bundle.load(copy, region=(t0.lat, t0.lon, 10.0))  # the damaged cell is not needed here
    with pytest.raises(BundleChecksumError, match=victim.name):
        Bundle.load(copy)
