"""University-1652 loader: the ``University-Release`` folder tree, read as distributed.

Layout (root = the extracted ``University-Release`` folder; ``<id>`` = an all-digit location
folder name, 4 digits in the release, e.g. ``0839``)::

    train/drone/<id>/image-01.jpeg ...         54 drone frames per location
    train/satellite/<id>/<id>.jpg              exactly one tile per location
    test/query_drone/<id>/image-NN.jpeg        test/gallery_drone/<id>/image-NN.jpeg
    test/query_satellite/<id>/<id>.jpg         test/gallery_satellite/<id>/<id>.jpg
    world_locations.csv                        optional, see below

``gallery_satellite`` and ``gallery_drone`` also hold distractor locations that no query
shows. Not read here: ``train/street``, ``train/google``, ``test/query_street``,
``test/gallery_street`` and ``test/4K_drone`` (the ground and 4K views are other tasks).

``mode`` picks the benchmark direction; the split always has drone frames on the query side
and satellite tiles on the reference side (``query_view == "drone"``):

* ``"drone"`` (Drone->Satellite): train = ``train/drone`` vs ``train/satellite``; test =
  ``test/query_drone`` vs ``test/gallery_satellite``, distractor tiles included.
* ``"satellite"`` (Satellite->Drone, test only): ``test/gallery_drone`` vs
  ``test/query_satellite``; the evaluator ranks the drone frames for each tile (transposed).
  Drone frames of distractor locations have no tile: their ``positive_index`` is -1.

Ids are the folder names as integers; locations are sorted by id and frames by file name,
so the order never depends on the file system. ``world_locations.csv`` is written only by
this project's procedural world (the release has no coordinates): header
``split,id,lat,lon,town,east_m,north_m``, one row per location (its tile centre). When it
exists, ``query_latlon`` / ``reference_latlon`` come from it.

Usage::

    split = load_university1652("/data/University-Release", "test", mode="drone")
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path

import numpy as np

from d4g_edge.log import logger

from ._checks import check_latlon, not_utf8
from ._errors import DatasetFormatError, missing_file
from ._split import CrossViewSplit

MODES = ("drone", "satellite")
# (split, mode) -> (drone folder, satellite folder), relative to the root
FOLDERS = {
    ("train", "drone"): ("train/drone", "train/satellite"),
    ("test", "drone"): ("test/query_drone", "test/gallery_satellite"),
    ("test", "satellite"): ("test/gallery_drone", "test/query_satellite"),
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
LOCATIONS_FILE = "world_locations.csv"
LOCATIONS_HEADER = ("split", "id", "lat", "lon", "town", "east_m", "north_m")
_ID = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also accepts e.g. "²"


def _scan_view(root: Path, rel: str, *, check_files: bool) -> dict[int, tuple[str, list[str]]]:
    """{id: (folder name, sorted image file names)} of a view folder such as ``train/drone``,
    in increasing id order."""
    folder = root / rel
    if not folder.is_dir():
        raise DatasetFormatError(
            folder,
            f"folder {rel}/ not found",
            hint="root must be the extracted University-Release folder, which holds "
            "train/{drone,satellite} and test/{query,gallery}_{drone,satellite}",
        )
    with os.scandir(folder) as it:
        entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    out: dict[int, tuple[str, list[str]]] = {}
    for entry in entries:
        if not (_ID.fullmatch(entry.name) and entry.is_dir()):
            raise DatasetFormatError(
                folder / entry.name,
                f"{rel}/ must hold only location folders named by digits, found "
                f"{'folder' if entry.is_dir() else 'file'} {entry.name!r}",
                hint="the release names each location by its 4-digit id, e.g. 0839/",
            )
        loc = int(entry.name)
        if loc in out:
            raise DatasetFormatError(
                folder / entry.name,
                f"folders {out[loc][0]!r} and {entry.name!r} both name location {loc}",
                hint="keep one folder per location",
            )
        out[loc] = (entry.name, _scan_location(Path(entry.path), check_files=check_files))
    if not out:
        raise DatasetFormatError(folder, f"{rel}/ holds no location folders")
    return dict(sorted(out.items()))


def _scan_location(folder: Path, *, check_files: bool) -> list[str]:
    """Sorted image file names in one ``<view>/<id>/`` folder (hidden entries ignored)."""
    images, other = [], []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            if os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                other.append(entry.name)
                continue
            if check_files:
                if not entry.is_file():  # a folder named *.jpg, or a dangling link
                    raise missing_file(entry.path)
                if entry.stat().st_size == 0:
                    raise DatasetFormatError(
                        entry.path,
                        "image file is empty (0 bytes)",
                        hint="the archive was probably extracted incompletely; extract it again",
                    )
            images.append(entry.name)
    if other:
        logger.warning(
            "University-1652: ignoring %d non-image entries in %s, e.g. %r",
            len(other),
            folder,
            sorted(other)[0],
        )
    if not images:
        raise DatasetFormatError(
            folder,
            "location folder holds no images",
            hint=f"expected files ending in {', '.join(IMAGE_EXTENSIONS)} (any case)",
        )
    return sorted(images)


def _read_locations(path: Path) -> dict[tuple[str, int], tuple[float, float]]:
    """{(split, id): (lat, lon)} from ``world_locations.csv``."""
    example = "train,0839,47.61,-122.33,Town A,120.0,-40.0"
    with open(path, newline="", encoding="utf-8-sig") as fh:
        try:
            rows = list(enumerate(csv.reader(fh), start=1))
        except UnicodeDecodeError as err:
            raise not_utf8(path, err) from None
        except csv.Error as err:
            raise DatasetFormatError(path, f"not readable as CSV ({err})") from None
    if not rows or tuple(f.strip() for f in rows[0][1]) != LOCATIONS_HEADER:
        got = ",".join(rows[0][1]) if rows else "an empty file"
        raise DatasetFormatError(
            path, f"expected the header {','.join(LOCATIONS_HEADER)!r}, got {got!r}", line=1
        )
    out: dict[tuple[str, int], tuple[float, float]] = {}
    for line_no, row in rows[1:]:
        if not row or all(not f.strip() for f in row):
            continue
        fields = [f.strip() for f in row]
        try:
            if len(fields) != len(LOCATIONS_HEADER):
                raise ValueError(f"expected {len(LOCATIONS_HEADER)} fields, got {len(fields)}")
            split, loc = fields[0], fields[1]
            if split not in ("train", "test") or not _ID.fullmatch(loc):
                raise ValueError(f"split must be train or test and id all digits, got {row!r}")
            lat, lon, east, north = (float(fields[i]) for i in (2, 3, 5, 6))
            if not (math.isfinite(east) and math.isfinite(north)):
                raise ValueError(f"east_m/north_m must be finite, got {east}, {north}")
        except ValueError as exc:
            raise DatasetFormatError(
                path, str(exc), line=line_no, hint=f"rows look like {example!r}"
            ) from None
        check_latlon(path, lat, lon, line=line_no, what="location")
        key = (split, int(loc))
        if key in out:
            raise DatasetFormatError(path, f"{split} location {loc} listed twice", line=line_no)
        out[key] = (lat, lon)
    return out


def _latlon(path: Path, table: dict, split: str, ids: np.ndarray, what: str) -> np.ndarray:
    missing = sorted({int(i) for i in ids if (split, int(i)) not in table})
    if missing:
        raise DatasetFormatError(
            path,
            f"has no {split} row for {len(missing)} {what} locations, e.g. {missing[:5]}",
            hint="one row per location id of the split, as the procedural world writes it",
        )
    return np.array([table[(split, int(i))] for i in ids], dtype=np.float64).reshape(-1, 2)


def load_university1652(
    root: str | Path, split: str, *, mode: str = "drone", check_files: bool = True
) -> CrossViewSplit:
    """Read one University-1652 split (``train``/``test``) in ``drone`` or ``satellite`` mode.

    ``check_files`` also requires every image to be a non-empty regular file (listing the
    folders already proves the names exist).
    """
    if mode not in MODES:
        raise ValueError(f"University-1652 mode must be one of {MODES}, got {mode!r}")
    if (split, mode) not in FOLDERS:
        raise ValueError(
            f"University-1652 mode {mode!r} exists for the test split only (Satellite->Drone "
            f"is an evaluation protocol); use mode='drone' for {split}"
        )
    root = Path(root)
    drone_rel, sat_rel = FOLDERS[(split, mode)]
    drones = _scan_view(root, drone_rel, check_files=check_files)
    sats = _scan_view(root, sat_rel, check_files=check_files)
    for name, files in sats.values():
        if len(files) != 1:
            raise DatasetFormatError(
                root / sat_rel / name,
                f"a satellite location folder must hold exactly 1 image, found {len(files)}",
                hint="the release has one tile per location, <id>/<id>.jpg",
            )
    if mode == "satellite":  # every satellite query needs drone frames in the gallery
        lost, where, side = sorted(set(sats) - set(drones)), drone_rel, "satellite query"
    else:  # every drone frame needs its tile
        lost, where, side = sorted(set(drones) - set(sats)), sat_rel, "drone"
    if lost:
        raise DatasetFormatError(
            root / where,
            f"{len(lost)} {side} locations have no folder here, e.g. {lost[:5]}",
            hint="the release is incomplete; re-extract it",
        )

    # names relative to the root, as posix paths: "train/drone/0839/image-01.jpeg"
    ref_ids = np.fromiter(sats, dtype=np.int64, count=len(sats))
    ref_names = [f"{sat_rel}/{name}/{files[0]}" for name, files in sats.values()]
    q_names = [f"{drone_rel}/{name}/{f}" for name, files in drones.values() for f in files]
    q_ids = np.array([loc for loc, (_, fs) in drones.items() for _ in fs], dtype=np.int64)
    index = {int(loc): i for i, loc in enumerate(ref_ids)}
    positive = np.array([index.get(int(loc), -1) for loc in q_ids], dtype=np.int64)

    query_latlon = reference_latlon = None
    loc_path = root / LOCATIONS_FILE
    if loc_path.is_file():
        table = _read_locations(loc_path)
        reference_latlon = _latlon(loc_path, table, split, ref_ids, "satellite")
        query_latlon = _latlon(loc_path, table, split, q_ids, "drone")
    logger.info(
        "University-1652 %s (%s): %d drone frames of %d locations, %d satellite tiles%s",
        split,
        mode,
        len(q_ids),
        len(drones),
        len(ref_ids),
        "" if reference_latlon is None else f", positions from {LOCATIONS_FILE}",
    )
    return CrossViewSplit(
        dataset="university1652",
        split=split,
        root=root,
        query_paths=tuple(root / n for n in q_names),
        reference_paths=tuple(root / n for n in ref_names),
        reference_ids=ref_ids,
        query_ids=q_ids,
        positive_index=positive,
        query_latlon=query_latlon,
        reference_latlon=reference_latlon,
        query_names=tuple(q_names),
        reference_names=tuple(ref_names),
        query_view="drone",
    )
