"""CVACT loader: ``ACT_data.mat`` and the ANU image folders, read as distributed.

Layout (root = the extracted CVACT folder)::

    ACT_data.mat        panoIds (N pano id strings), utm (N x 2, easting/northing, zone 55S),
                        trainSet.trainInd, valSet.valInd, valSetAll.valInd (1-based rows)
    ANU_data_small/streetview/{id}_grdView.jpg
    ANU_data_small/satview_polish/{id}_satView_polish.jpg
    ANU_data_test/streetview/{id}_grdView.jpg, ANU_data_test/satview_polish/... (same names)

Splits: ``train`` = trainSet and ``val`` = valSet (both in ANU_data_small), ``test`` =
valSetAll in ANU_data_test (the CVACT_test benchmark). The id of a pair is its 1-based row
in ``ACT_data.mat`` so the same place has the same id in ``val`` and ``test``.

The official release lacks a few training images; like Sample4Geo, training pairs with a
missing image are skipped with a warning by default (``on_missing="skip"``). ``val`` and
``test`` default to ``on_missing="error"``: a benchmark split must be complete.

Usage::

    split = load_cvact("/data/CVACT", "val")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from d4g_edge.log import logger
from train.datasets.utm import UTMZone, utm_to_latlon

from ._errors import DatasetFormatError, missing_file
from ._files import FileChecker
from ._split import CrossViewSplit

CVACT_ZONE = UTMZone(55, north=False)  # Canberra

MAT_FILE = "ACT_data.mat"
# split -> (struct, index field, image folder)
SPLITS = {
    "train": ("trainSet", "trainInd", "ANU_data_small"),
    "val": ("valSet", "valInd", "ANU_data_small"),
    "test": ("valSetAll", "valInd", "ANU_data_test"),
}


def ground_relpath(folder: str, pano_id: str) -> str:
    return f"{folder}/streetview/{pano_id}_grdView.jpg"


def satellite_relpath(folder: str, pano_id: str) -> str:
    return f"{folder}/satview_polish/{pano_id}_satView_polish.jpg"


def _pano_ids(mat_path: Path, raw: np.ndarray) -> list[str]:
    """Pano ids from a MATLAB char matrix (N x L) or a cell array of strings."""
    flat = np.asarray(raw).ravel()
    if flat.dtype.kind == "U":
        return [str(s).rstrip() for s in flat]  # char matrices pad shorter rows with spaces
    if flat.dtype == object:
        out = []
        for i, cell in enumerate(flat):
            value = np.asarray(cell).ravel()
            if value.size != 1 or value.dtype.kind != "U":
                raise DatasetFormatError(
                    mat_path, f"panoIds entry {i + 1} is {cell!r}, expected one string"
                )
            out.append(str(value[0]).strip())
        return out
    raise DatasetFormatError(
        mat_path, f"panoIds has dtype {flat.dtype}, expected strings (char matrix or cell array)"
    )


def _indices(mat_path: Path, mat: dict, struct: str, field: str, n_rows: int) -> np.ndarray:
    """0-based row indices stored 1-based in ``mat[struct].field``."""
    if struct not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetFormatError(
            mat_path,
            f"has no variable {struct!r} (found {found})",
            hint="expected the official ACT_data.mat with trainSet, valSet and valSetAll",
        )
    value = mat[struct]
    names = value.dtype.names or ()
    if field not in names:
        raise DatasetFormatError(
            mat_path,
            f"struct {struct!r} has fields {list(names)}, expected a field {field!r} "
            "holding 1-based row indices into panoIds",
        )
    cell = np.asarray(value[field])
    if cell.dtype == object:  # a 1x1 MATLAB struct: every field is a 1x1 object array
        if cell.size != 1:
            raise DatasetFormatError(
                mat_path, f"{struct} is a {value.shape} struct array, expected 1x1"
            )
        cell = np.asarray(cell.ravel()[0])
    raw = cell.ravel()
    if raw.dtype.kind not in "iuf" or not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
        raise DatasetFormatError(
            mat_path, f"{struct}.{field} must hold integer indices, got {raw.dtype}"
        )
    if raw.size == 0:
        raise DatasetFormatError(
            mat_path,
            f"{struct}.{field} is empty: the split lists no pairs",
            hint="expected the 1-based rows of panoIds in this split",
        )
    idx = raw.astype(np.int64)
    bad = (idx < 1) | (idx > n_rows)
    if bad.any():
        raise DatasetFormatError(
            mat_path,
            f"{struct}.{field} has index {idx[bad][0]} outside 1..{n_rows} "
            "(indices are 1-based MATLAB rows of panoIds)",
        )
    if len(np.unique(idx)) != len(idx):
        raise DatasetFormatError(mat_path, f"{struct}.{field} repeats a row index")
    return idx - 1


def _read_mat(mat_path: Path) -> tuple[dict, list[str], np.ndarray]:
    """The MATLAB variables, the pano ids and the (N, 2) float64 UTM of ``ACT_data.mat``."""
    if not mat_path.is_file():
        raise FileNotFoundError(
            2, "CVACT index file not found under the dataset root", str(mat_path)
        )
    try:
        mat = scipy.io.loadmat(mat_path)
    except Exception as exc:  # scipy raises assorted types (even IndexError) on corrupt files
        raise DatasetFormatError(mat_path, f"not a readable MATLAB file ({exc})") from exc
    for key in ("panoIds", "utm"):
        if key not in mat:
            raise DatasetFormatError(
                mat_path,
                f"has no variable {key!r}",
                hint="expected panoIds, utm, trainSet, valSet, valSetAll",
            )
    pano_ids = _pano_ids(mat_path, mat["panoIds"])
    utm = np.asarray(mat["utm"])
    if utm.dtype.kind not in "iuf":
        raise DatasetFormatError(
            mat_path,
            f"utm holds {utm.dtype} values, expected numbers (easting, northing in metres)",
        )
    utm = utm.astype(np.float64)
    if not np.isfinite(utm).all():
        row = int(np.flatnonzero(~np.isfinite(utm).all(axis=-1))[0]) + 1 if utm.ndim == 2 else 1
        raise DatasetFormatError(mat_path, f"utm row {row} is not finite (NaN or inf)")
    if utm.shape != (len(pano_ids), 2):
        raise DatasetFormatError(
            mat_path, f"utm has shape {utm.shape}, expected ({len(pano_ids)}, 2) like panoIds"
        )
    return mat, pano_ids, utm


def _rows_with_images(
    root: Path, split: str, rows: np.ndarray, pano_ids: list[str], on_missing: str
) -> np.ndarray:
    """``rows`` whose two images exist; a missing one is an error or skipped with a warning."""
    mat_path = root / MAT_FILE
    struct, field, folder = SPLITS[split]
    checker, keep, missing = FileChecker(), [], []
    for r in rows:
        paths = (
            root / ground_relpath(folder, pano_ids[r]),
            root / satellite_relpath(folder, pano_ids[r]),
        )
        absent = [p for p in paths if not checker.exists(p)]
        if not absent:
            keep.append(r)
        elif on_missing == "error":
            raise missing_file(absent[0], referenced_by=f"{mat_path} ({struct}.{field}[{r + 1}])")
        else:
            missing.append(pano_ids[r])
    if missing:
        logger.warning(
            "CVACT %s: skipping %d of %d pairs with a missing image (as Sample4Geo does), e.g. %s",
            split,
            len(missing),
            len(rows),
            ", ".join(missing[:5]),
        )
    if not keep:
        raise missing_file(root / folder, referenced_by=mat_path)
    return np.asarray(keep, dtype=np.int64)


def _latlon(mat_path: Path, utm: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows), 2) lat/lon degrees of ``utm[rows]`` in CVACT's zone, range-checked."""
    # UTM (southern zone): eastings lie within 0..1000 km of the zone's origin, northings
    # within 0..10000 km; anything else converts to a wrong place rather than failing.
    e, n = utm[rows, 0], utm[rows, 1]
    off = (e <= 0) | (e >= 1e6) | (n < 0) | (n > 1e7)
    if off.any():
        row = int(rows[np.flatnonzero(off)[0]])
        raise DatasetFormatError(
            mat_path,
            f"utm row {row + 1} ({utm[row].tolist()}) is outside UTM's range "
            "(easting 0..1000000 m, northing 0..10000000 m)",
        )
    lat, lon = utm_to_latlon(utm[rows, 0], utm[rows, 1], CVACT_ZONE)
    latlon = np.stack([lat, lon], axis=1)
    bad = ~(np.isfinite(latlon).all(axis=1) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        raise DatasetFormatError(
            mat_path,
            f"utm row {int(rows[bad][0]) + 1} ({utm[rows[bad][0]].tolist()}) is no place in "
            f"UTM zone {CVACT_ZONE.number}S",
            hint="utm holds easting, northing in metres",
        )
    return latlon


def load_cvact(
    root: str | Path, split: str, *, check_files: bool = True, on_missing: str | None = None
) -> CrossViewSplit:
    """Read one CVACT split: ``train``, ``val`` or ``test`` (valSetAll on ANU_data_test).

    ``on_missing`` defaults to "skip" for ``train`` and "error" for ``val``/``test``: an
    evaluation split must be complete, or the benchmark silently shrinks.
    """
    if on_missing is None:
        on_missing = "skip" if split == "train" else "error"
    if on_missing not in ("skip", "error"):
        raise ValueError(f"on_missing must be 'skip' or 'error', got {on_missing!r}")
    root = Path(root)
    mat_path = root / MAT_FILE
    mat, pano_ids, utm = _read_mat(mat_path)
    struct, field, folder = SPLITS[split]
    rows = _indices(mat_path, mat, struct, field, len(pano_ids))
    if check_files:
        rows = _rows_with_images(root, split, rows, pano_ids, on_missing)
    ids = rows + 1
    latlon = _latlon(mat_path, utm, rows)
    names = tuple(pano_ids[r] for r in rows)
    return CrossViewSplit(
        dataset="cvact",
        split=split,
        root=root,
        query_paths=tuple(root / ground_relpath(folder, n) for n in names),
        reference_paths=tuple(root / satellite_relpath(folder, n) for n in names),
        reference_ids=ids,
        query_ids=ids.copy(),
        positive_index=np.arange(len(rows), dtype=np.int64),
        query_latlon=latlon,
        reference_latlon=latlon.copy(),
        reference_utm=utm[rows].copy(),
        query_names=names,
        reference_names=names,
    )
