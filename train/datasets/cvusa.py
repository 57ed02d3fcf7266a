"""CVUSA loader: the official ``splits/*-19zl.csv`` lists, read as distributed.

Layout (root = the extracted CVUSA folder)::

    splits/train-19zl.csv   splits/val-19zl.csv      # no header, one pair per row:
        bingmap/19/0000001.jpg,streetview/panos/0000001.jpg,streetview/annotations/0000001.png
    split_locations/all.csv                          # optional, no header, row id-1:
        sat_lat,sat_lon,grd_lat,grd_lon,<unused>

The id of a pair is the integer basename of its satellite file (Sample4Geo's convention), so
ids agree with ``all.csv`` rows and with published evaluation code. ``test`` reads
``val-19zl.csv`` (CVUSA has no separate test split). Every query has its own tile: R == Q.

Usage::

    split = load_cvusa("/data/CVUSA", "test")
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from d4g_edge.log import logger

from ._checks import check_latlon, inside_root, not_utf8
from ._errors import DatasetFormatError, missing_file
from ._files import FileChecker
from ._split import CrossViewSplit

SPLIT_FILES = {"train": "splits/train-19zl.csv", "test": "splits/val-19zl.csv"}
LOCATIONS_FILE = "split_locations/all.csv"
_ROW_EXAMPLE = (
    "bingmap/19/0000001.jpg,streetview/panos/0000001.jpg,streetview/annotations/0000001.png"
)


def _read_pairs(csv_path: Path) -> list[tuple[int, str, str, int]]:
    """(id, satellite, ground, line) per row of a headerless split CSV."""
    if not csv_path.is_file():
        raise FileNotFoundError(
            2,
            "CVUSA split file not found; expected the official layout with splits/"
            "train-19zl.csv and splits/val-19zl.csv under the dataset root",
            str(csv_path),
        )
    rows: list[tuple[int, str, str, int]] = []
    seen: dict[int, int] = {}
    for line_no, row in _csv_rows(csv_path):
        if not row or all(not f.strip() for f in row):
            continue  # tolerate blank lines (e.g. a trailing newline)
        fields = [f.strip() for f in row]
        if len(fields) != 3 or not all(fields):
            raise DatasetFormatError(
                csv_path,
                f"expected 3 non-empty comma-separated fields, got {row!r}",
                line=line_no,
                hint=f"rows look like {_ROW_EXAMPLE!r}",
            )
        sat = inside_root(csv_path, fields[0], line=line_no)
        ground = inside_root(csv_path, fields[1], line=line_no)
        stem = Path(sat).stem
        if not stem.isdigit():
            raise DatasetFormatError(
                csv_path,
                f"satellite file {sat!r} has no integer basename (the pair id)",
                line=line_no,
                hint=f"rows look like {_ROW_EXAMPLE!r}",
            )
        pair_id = int(stem)
        if pair_id in seen:
            raise DatasetFormatError(
                csv_path, f"pair id {pair_id} repeats line {seen[pair_id]}", line=line_no
            )
        seen[pair_id] = line_no
        rows.append((pair_id, sat, ground, line_no))
    if not rows:
        raise DatasetFormatError(
            csv_path, "no pairs listed", hint=f"expected rows like {_ROW_EXAMPLE!r}"
        )
    return rows


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every row; a file that is not UTF-8 CSV is a format error."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        try:
            return list(enumerate(csv.reader(fh), start=1))
        except UnicodeDecodeError as err:
            raise not_utf8(path, err) from None
        except csv.Error as err:
            raise DatasetFormatError(path, f"not readable as CSV ({err})") from None


def _read_locations(path: Path) -> np.ndarray:
    """(N, 4) float64 [sat_lat, sat_lon, grd_lat, grd_lon]; row i belongs to id i + 1."""
    out: list[list[float]] = []
    for line_no, row in _csv_rows(path):
        if not row:
            continue
        try:
            if len(row) < 4:
                raise ValueError
            out.append([float(v) for v in row[:4]])
            for what, (lat, lon) in (("satellite", out[-1][:2]), ("ground", out[-1][2:])):
                check_latlon(path, lat, lon, line=line_no, what=f"{what} position")
        except DatasetFormatError:
            raise
        except ValueError:
            raise DatasetFormatError(
                path,
                f"expected at least 4 numbers (sat_lat,sat_lon,grd_lat,grd_lon), got {row!r}",
                line=line_no,
                hint="the file has no header; row k holds the pair with id k",
            ) from None
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def load_cvusa(root: str | Path, split: str, *, check_files: bool = True) -> CrossViewSplit:
    """Read one CVUSA split (``train`` or ``test`` = ``val-19zl.csv``)."""
    root = Path(root)
    csv_path = root / SPLIT_FILES[split]
    rows = _read_pairs(csv_path)
    if check_files:
        checker = FileChecker()
        for _, sat, ground, line_no in rows:
            for rel in (sat, ground):
                if not checker.exists(root / rel):
                    raise missing_file(root / rel, referenced_by=csv_path, line=line_no)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    query_latlon = reference_latlon = None
    loc_path = root / LOCATIONS_FILE
    if loc_path.is_file():
        locations = _read_locations(loc_path)
        if ids.max() > len(locations) or ids.min() < 1:
            raise DatasetFormatError(
                loc_path,
                f"has {len(locations)} rows but {csv_path.name} uses ids {ids.min()}..{ids.max()}",
                hint="row k must hold the pair with id k",
            )
        reference_latlon = locations[ids - 1, 0:2]
        query_latlon = locations[ids - 1, 2:4]
    else:
        logger.info("CVUSA: %s not found; splits carry no GPS", loc_path)
    return CrossViewSplit(
        dataset="cvusa",
        split=split,
        root=root,
        query_paths=tuple(root / r[2] for r in rows),
        reference_paths=tuple(root / r[1] for r in rows),
        reference_ids=ids,
        query_ids=ids.copy(),
        positive_index=np.arange(len(rows), dtype=np.int64),
        query_latlon=query_latlon,
        reference_latlon=reference_latlon,
    )
