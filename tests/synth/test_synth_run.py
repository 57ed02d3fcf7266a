"""Running train.synth: determinism, crash safety, the output guard, CLI and preview, and
that the written images really show the places the index files claim."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from train.datasets import PairAugment, PairDataset, load, read_image
from train.synth import SynthConfig, synthesize
from train.synth.__main__ import main
from train.synth._render import run_jobs
from train.synth.cvusa import write_cvusa
from train.world import World


def tiny(layout: str, out, **kw) -> SynthConfig:
    base = dict(
        train=3, test=2, seed=4, sat_size=32, pano_size=(16, 64), tile_m=45.0, town_size_m=300.0
    )
    return SynthConfig(layout, out, **{**base, **kw})


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "synth_info.json"
    }


@pytest.mark.parametrize(
    "layout",  # CVACT by default: it also covers the .mat header; the others only when slow
    [
        pytest.param("cvusa", marks=pytest.mark.slow),
        "cvact",
        pytest.param("vigor", marks=pytest.mark.slow),
    ],
)
def test_same_seed_same_bytes_whatever_the_workers(tmp_path, layout):
    a = digest(synthesize(tiny(layout, tmp_path / "a", workers=1)))
    b = digest(synthesize(tiny(layout, tmp_path / "b", workers=2)))
    assert a == b and len(a) >= 10
    c = digest(synthesize(tiny(layout, tmp_path / "c", seed=5)))
    assert c != a


def test_interrupted_run_writes_no_split_file(tmp_path):
    cfg = tiny("cvusa", tmp_path)

    def crash_half_way(jobs):
        run_jobs(jobs[: len(jobs) // 2])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_cvusa(cfg, crash_half_way)
    assert any((tmp_path / "bingmap/19").iterdir())  # some images were written ...
    assert not (tmp_path / "splits").exists()  # ... but no split lists them
    assert not list(tmp_path.rglob("*.tmp"))  # and no temporary file is left behind


def test_cli_refuses_other_dataset_then_overwrites_and_previews(tmp_path):
    out, preview = tmp_path / "data", tmp_path / "sheet.png"
    args = [
        "--out",
        str(out),
        "--train",
        "2",
        "--test",
        "2",
        "--sat-size",
        "32",
        "--pano-size",
        "16x64",
        "--tile-m",
        "45",
        "--town-size-m",
        "300",
    ]
    assert main(["--layout", "cvusa", *args]) == 0
    assert main(["--layout", "vigor", *args]) == 2  # a CVUSA dataset is there: refused
    assert json.loads((out / "synth_info.json").read_text())["layout"] == "cvusa"
    assert not (out / "splits/Chicago").exists()
    assert main(["--layout", "vigor", *args, "--overwrite", "--preview", str(preview)]) == 0
    assert not (out / "bingmap").exists()  # the old layout's files are gone
    assert json.loads((out / "synth_info.json").read_text())["layout"] == "vigor"
    sheet = read_image(preview)
    assert sheet.shape[0] >= 4 * 96 and sheet.shape[1] > 96  # 4 rows: 2 train + 2 test


def test_images_show_the_listed_places(tmp_path):
    """Re-render each tile from its all.csv position in an independently built world."""
    root = synthesize(tiny("cvusa", tmp_path, gap_strength=0.0, jpeg_quality=100))
    info = json.loads((root / "synth_info.json").read_text())
    worlds = [
        World.generate(
            seed=t["seed"],
            style=t["style"],
            size_m=t["size_m"],
            origin_lat=t["origin_lat"],
            origin_lon=t["origin_lon"],
        )
        for t in info["towns"]
    ]
    split = load("cvusa", root, "train")
    written = [read_image(p).astype(float) for p in split.reference_paths]
    for i, (lat, lon) in enumerate(split.reference_latlon):
        for w in worlds:
            e, n = w.georef.latlon_to_metres(lat, lon)
            x0, y0, x1, y1 = w.extent_m
            if x0 <= e <= x1 and y0 <= n <= y1:
                break
        else:
            pytest.fail(f"pair {split.reference_ids[i]} lies in no town")
        tile = w.render_satellite((float(e), float(n)), size_px=32, gsd_m=45.0 / 32).astype(float)
        errors = [np.abs(tile - other).mean() for other in written]
        assert errors[i] < 0.5 * min(err for j, err in enumerate(errors) if j != i)


def test_pair_dataset_augments_world_pairs_consistently(tmp_path):
    root = synthesize(tiny("cvusa", tmp_path))
    split = load("cvusa", root, "train")
    plain = PairDataset(split, 32, (16, 64), None, mean=(0, 0, 0), std=(1, 1, 1))
    geometric_only = PairAugment(rotate_p=1.0, brightness=0, contrast=0, saturation=0)
    aug = PairDataset(split, 32, (16, 64), geometric_only, mean=(0, 0, 0), std=(1, 1, 1))
    ground0, sat0, _ = plain[0]
    torch.manual_seed(1)
    found = set()
    for _ in range(12):
        ground, sat, _ = aug[0]
        # identify which of the 8 tile symmetries was applied, then the panorama must match
        for flip in (False, True):
            s0, g0 = (sat0.flip(-1), ground0.flip(-1)) if flip else (sat0, ground0)
            for k in range(4):
                if torch.equal(torch.rot90(s0, k, dims=(1, 2)), sat):
                    expected = torch.roll(g0, -k * 64 // 4, dims=2)
                    assert torch.allclose(expected, ground, atol=1e-6)
                    found.add((flip, k))
    assert len(found) >= 3 and all(k > 0 for _, k in found)
