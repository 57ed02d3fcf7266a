"""Hand-written miniature releases in the official layouts (independent of train.synth).

Each image is a solid colour that encodes its role, so a test can tell by pixel value
which file a loader returned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image


def solid(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (8, 16)) -> Path:
    """Write an (h, w) solid-colour image; PNG is lossless so the colour reads back exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), rgb, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def cvusa_root(tmp_path: Path) -> Path:
    """3 train pairs (ids 1, 2, 5) and 2 val pairs (ids 3, 4); all.csv with 5 rows."""
    root = tmp_path / "CVUSA"
    (root / "splits").mkdir(parents=True)
    for i in range(1, 6):
        solid(root / f"bingmap/19/{i:07d}.jpg", (i * 10, 0, 0), (8, 8))
        solid(root / f"streetview/panos/{i:07d}.jpg", (0, i * 10, 0))
    rows = lambda ids: "".join(  # noqa: E731
        f"bingmap/19/{i:07d}.jpg,streetview/panos/{i:07d}.jpg,streetview/annotations/{i:07d}.png\n"
        for i in ids
    )
    (root / "splits/train-19zl.csv").write_text(rows([1, 2, 5]))
    (root / "splits/val-19zl.csv").write_text(rows([3, 4]))
    (root / "split_locations").mkdir()
    # row k (1-based) = id k: sat at (40 + k/1000, -88), ground 1e-5 deg further north
    (root / "split_locations/all.csv").write_text(
        "".join(f"{40 + k / 1000},-88.0,{40 + k / 1000 + 1e-5},-88.0,0\n" for k in range(1, 6))
    )
    return root


CVACT_IDS = ["__a1", "-b2x", "c3yy", "d4zz", "e5ww", "f6vv"]  # equal length: a char matrix


def write_act_mat(path: Path, pano_ids, utm, train, val, val_all, first_field: str = "Num") -> None:
    """ACT_data.mat with 1x1 structs holding (count, 1-based indices) like the real file."""

    def struct(prefix: str, idx) -> np.ndarray:
        dtype = [(f"{prefix}{first_field}", object), (f"{prefix}Ind", object)]
        s = np.empty((1, 1), dtype=dtype)
        s[0, 0] = (np.array([[len(idx)]], dtype=float), np.array(idx, dtype=float).reshape(-1, 1))
        return s

    scipy.io.savemat(
        path,
        {
            "panoIds": np.array(pano_ids),
            "utm": np.asarray(utm, dtype=float),
            "trainSet": struct("train", train),
            "valSet": struct("val", val),
            "valSetAll": struct("val", val_all),
        },
    )


@pytest.fixture
def cvact_root(tmp_path: Path) -> Path:
    """Rows 1..6; train = rows 1, 2, 4; val = row 6; valSetAll = rows 5, 6 (ANU_data_test)."""
    root = tmp_path / "CVACT"
    root.mkdir()
    utm = [[690000.0 + 10 * i, 6090000.0 + 20 * i] for i in range(6)]
    write_act_mat(root / "ACT_data.mat", CVACT_IDS, utm, [1, 2, 4], [6], [5, 6])
    for row, pid in enumerate(CVACT_IDS, start=1):
        for folder in ("ANU_data_small", "ANU_data_test"):
            solid(root / f"{folder}/streetview/{pid}_grdView.jpg", (0, row * 10, 0))
            solid(
                root / f"{folder}/satview_polish/{pid}_satView_polish.jpg", (row * 10, 0, 0), (8, 8)
            )
    return root


def vigor_line(pano: str, tiles: list[str], offsets: list[tuple[float, float]]) -> str:
    parts = [pano]
    for t, (a, b) in zip(tiles, offsets, strict=True):
        parts += [t, f"{a}", f"{b}"]
    return " ".join(parts) + "\n"


def make_vigor(root: Path, layout: str = "official") -> dict:
    """Two tiles per city plus 2 extra; one pano per city; returns the names written."""
    info = {}
    for c, city in enumerate(("Chicago", "NewYork", "SanFrancisco", "Seattle")):
        lat0, lon0 = 40.0 + c, -80.0 - c
        tiles = [f"satellite_{lat0 + 0.001 * k}_{lon0}.png" for k in range(4)]
        pano = f"pano{c}xx,{lat0 + 0.0001},{lon0 + 0.0002},.jpg"
        sat_dir, pano_dir = (
            (root / city / "satellite", root / city / "panorama")
            if layout == "official"
            else (root / "satellite" / city, root / "ground" / city)
        )
        for k, t in enumerate(tiles):
            solid(sat_dir / t, (c * 40, k * 40, 0), (8, 8))
        solid(pano_dir / pano, (0, 0, c * 40))
        split_dir = root / "splits" / city
        split_dir.mkdir(parents=True)
        (split_dir / "satellite_list.txt").write_text("".join(t + "\n" for t in tiles))
        line = vigor_line(pano, [tiles[1], tiles[0], tiles[2], tiles[3]], [(1.5, -2.0)] * 4)
        (split_dir / "pano_label_balanced.txt").write_text(line)
        (split_dir / "same_area_balanced_train.txt").write_text(line if c % 2 == 0 else "")
        (split_dir / "same_area_balanced_test.txt").write_text("" if c % 2 == 0 else line)
        info[city] = (tiles, pano)
    return info
