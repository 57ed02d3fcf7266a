"""VIGOR loader: ``splits/{city}/*.txt`` and the city image folders, read as distributed.

Layout (root = the extracted VIGOR folder)::

    splits/{city}/satellite_list.txt                  one satellite file name per line
    splits/{city}/pano_label_balanced.txt             cross-area labels, all panoramas
    splits/{city}/same_area_balanced_{train,test}.txt same-area labels
    {city}/satellite/satellite_{lat}_{lon}.png   {city}/panorama/{id},{lat},{lon},.jpg
      (or satellite/{city}/... and ground/{city}/..., the layout Sample4Geo expects)

A label line has 13 whitespace-separated tokens: the panorama, its positive tile and the
pixel offset ``delta_lat delta_lon`` (tile centre minus panorama, north and east, in tile
pixels), then three semi-positive tiles, each with its offset. Cities: cross-area trains on
NewYork + Seattle and tests on Chicago + SanFrancisco; same-area uses all four for both.
The reference set is every tile of the split's cities; ids are rows of the concatenated
satellite lists in city order, positions come from the file names.

Usage::

    split = load_vigor("/data/VIGOR", "test", mode="cross")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d4g_edge.log import logger

from ._checks import check_latlon, not_utf8, plain_name
from ._errors import DatasetFormatError, missing_file
from ._files import FileChecker
from ._split import CrossViewSplit

CITIES = ("Chicago", "NewYork", "SanFrancisco", "Seattle")  # Sample4Geo's order
CROSS_CITIES = {"train": ("NewYork", "Seattle"), "test": ("Chicago", "SanFrancisco")}
MODES = ("same", "cross")
TILE_STRIDE = 0.5  # tiles overlap by half: neighbouring centres are half a tile apart
LABEL_TOKENS = 13
_LINE_EXAMPLE = (
    "<pano>.jpg satellite_<lat>_<lon>.png dlat dlon <semi1> dlat dlon <semi2> ... <semi3> dlat dlon"
)


def satellite_name(lat: float, lon: float) -> str:
    # repr() of a Python float is the shortest string that reads back to the same value.
    return f"satellite_{float(lat)!r}_{float(lon)!r}.png"


def parse_satellite_name(name: str) -> tuple[float, float]:
    """(lat, lon) of ``satellite_{lat}_{lon}.png``; raises ValueError otherwise."""
    stem, ext = name.rsplit(".", 1) if "." in name else (name, "")
    parts = stem.split("_")
    if parts[0] != "satellite" or len(parts) != 3 or ext.lower() not in ("png", "jpg", "jpeg"):
        raise ValueError(f"{name!r} is not satellite_{{lat}}_{{lon}}.png")
    return float(parts[1]), float(parts[2])


def parse_panorama_name(name: str) -> tuple[str, float, float]:
    """(id, lat, lon) of ``{id},{lat},{lon},.jpg``; raises ValueError otherwise."""
    parts = name.split(",")
    if len(parts) != 4 or not parts[0] or not parts[3].startswith("."):
        raise ValueError(f"{name!r} is not {{id}},{{lat}},{{lon}},.jpg")
    return parts[0], float(parts[1]), float(parts[2])


def detect_layout(root: Path, city: str) -> tuple[Path, Path]:
    """(satellite dir, panorama dir) of ``city`` in either supported folder layout."""
    options = [
        (root / city / "satellite", root / city / "panorama"),  # official release
        (root / "satellite" / city, root / "ground" / city),  # Sample4Geo's rearrangement
    ]
    for sat_dir, pano_dir in options:
        if sat_dir.is_dir() and pano_dir.is_dir():
            return sat_dir, pano_dir
    tried = "; ".join(f"{s} + {p}" for s, p in options)
    raise FileNotFoundError(
        2, f"VIGOR image folders for {city} not found (tried {tried})", str(root)
    )


def _read_lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise FileNotFoundError(
            2, "VIGOR split file not found (expected splits/{city}/...)", str(path)
        )
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return [(i, s.strip()) for i, s in enumerate(fh, start=1) if s.strip()]
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None


def _read_labels(path: Path, sat_index: dict[str, int]):
    """Per line: (pano name, 4 tile indices, (4, 2) offsets)."""
    out = []
    for line_no, text in _read_lines(path):
        tok = text.split()
        if len(tok) != LABEL_TOKENS:
            raise DatasetFormatError(
                path,
                f"expected {LABEL_TOKENS} whitespace-separated tokens, got {len(tok)}",
                line=line_no,
                hint=f"lines look like {_LINE_EXAMPLE!r}",
            )
        try:
            plain_name(path, tok[0], line=line_no)
            _, lat, lon = parse_panorama_name(tok[0])
            check_latlon(path, lat, lon, line=line_no, what="panorama position")
            offsets = np.array([[float(tok[i + 1]), float(tok[i + 2])] for i in (1, 4, 7, 10)])
            if not np.isfinite(offsets).all():
                raise ValueError(f"pixel offsets must be finite numbers, got {offsets.tolist()}")
        except DatasetFormatError:
            raise
        except ValueError as exc:
            raise DatasetFormatError(
                path, str(exc), line=line_no, hint=f"lines look like {_LINE_EXAMPLE!r}"
            ) from None
        tiles = []
        for i in (1, 4, 7, 10):
            if tok[i] not in sat_index:
                raise DatasetFormatError(
                    path, f"tile {tok[i]!r} is not in this city's satellite_list.txt", line=line_no
                )
            tiles.append(sat_index[tok[i]])
        out.append((tok[0], tiles, offsets))
    return out


def _read_satellite_list(
    list_path: Path, sat_dir: Path, checker: FileChecker | None
) -> dict[str, tuple[float, float]]:
    """A city's ``satellite_list.txt``: tile name -> (lat, lon) from the name, in file order;
    with a ``checker``, every tile must exist in ``sat_dir``."""
    tiles: dict[str, tuple[float, float]] = {}
    for line_no, name in _read_lines(list_path):
        try:
            plain_name(list_path, name, line=line_no)
            latlon = parse_satellite_name(name)
            check_latlon(list_path, *latlon, line=line_no, what="tile position")
        except DatasetFormatError:
            raise
        except ValueError as exc:
            raise DatasetFormatError(list_path, str(exc), line=line_no) from None
        if name in tiles:
            raise DatasetFormatError(list_path, f"tile {name!r} listed twice", line=line_no)
        if checker is not None and not checker.exists(sat_dir / name):
            raise missing_file(sat_dir / name, referenced_by=list_path, line=line_no)
        tiles[name] = latlon
    return tiles


def load_vigor(
    root: str | Path,
    split: str,
    *,
    mode: str = "same",
    cities: tuple[str, ...] | None = None,
    check_files: bool = True,
) -> CrossViewSplit:
    """Read one VIGOR split (``train``/``test``) in ``same``- or ``cross``-area mode."""
    if mode not in MODES:
        raise ValueError(f"VIGOR mode must be one of {MODES}, got {mode!r}")
    root = Path(root)
    if cities is None:
        cities = CITIES if mode == "same" else CROSS_CITIES[split]
    unknown = [c for c in cities if c not in CITIES]
    if unknown:
        raise ValueError(f"unknown VIGOR cities {unknown}; valid: {CITIES}")
    label_file = "pano_label_balanced.txt" if mode == "cross" else f"same_area_balanced_{split}.txt"

    checker = FileChecker()
    ref_paths, ref_names, ref_latlon = [], [], []
    q_paths, q_names, q_latlon, q_tiles, q_offsets = [], [], [], [], []
    for city in cities:
        sat_dir, pano_dir = detect_layout(root, city)
        list_path = root / "splits" / city / "satellite_list.txt"
        city_tiles = _read_satellite_list(list_path, sat_dir, checker if check_files else None)
        # reference rows run on across cities: a label's tile index is its global row
        sat_index = {name: len(ref_paths) + i for i, name in enumerate(city_tiles)}
        ref_paths += [sat_dir / name for name in city_tiles]
        ref_names += list(city_tiles)
        ref_latlon += list(city_tiles.values())
        label_path = root / "splits" / city / label_file
        labels = _read_labels(label_path, sat_index)
        if not labels:
            logger.warning("VIGOR %s: %s lists no panoramas", city, label_path)
        for pano, tiles, offsets in labels:
            if check_files and not checker.exists(pano_dir / pano):
                raise missing_file(pano_dir / pano, referenced_by=label_path)
            q_paths.append(pano_dir / pano)
            q_names.append(pano)
            q_latlon.append(parse_panorama_name(pano)[1:])
            q_tiles.append(tiles)
            q_offsets.append(offsets)

    if not q_paths:
        raise DatasetFormatError(
            root / "splits",
            f"the {mode}-area {split} split lists no panoramas in {', '.join(cities)}",
            hint=f"each city's splits/<city>/{label_file} should hold label lines",
        )
    ids = np.arange(len(ref_paths), dtype=np.int64)
    tiles = np.asarray(q_tiles, dtype=np.int64).reshape(-1, 4)
    return CrossViewSplit(
        dataset="vigor",
        split=split,
        root=root,
        query_paths=tuple(q_paths),
        reference_paths=tuple(ref_paths),
        reference_ids=ids,
        query_ids=ids[tiles[:, 0]],
        positive_index=tiles[:, 0].copy(),
        semi_positive_ids=ids[tiles[:, 1:]],
        query_latlon=np.asarray(q_latlon, dtype=np.float64).reshape(-1, 2),
        reference_latlon=np.asarray(ref_latlon, dtype=np.float64).reshape(-1, 2),
        query_names=tuple(q_names),
        reference_names=tuple(ref_names),
        positive_offsets_px=np.asarray(q_offsets, dtype=np.float64).reshape(-1, 4, 2),
        tile_stride=TILE_STRIDE,
    )
