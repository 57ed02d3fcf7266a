"""Checks shared by the loaders for what a split file may contain: text encoding, paths
that stay inside the dataset root, and coordinates that are places on Earth.

Usage::

    with open(path, encoding="utf-8") as fh:
        try: ... except UnicodeDecodeError as err: raise not_utf8(path, err) from None
    rel = inside_root(csv_path, "bingmap/19/0000001.jpg", line=3)
    check_latlon(path, lat, lon, line=3)
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath, PureWindowsPath

from ._errors import DatasetFormatError


def not_utf8(path: Path, err: UnicodeDecodeError) -> DatasetFormatError:
    """The error for a split file that is not UTF-8 text, at the line of the first bad byte."""
    try:
        line = Path(path).read_bytes()[: err.start].count(b"\n") + 1
    except OSError:
        line = None
    return DatasetFormatError(
        path,
        f"is not UTF-8 text ({err.reason} at byte {err.start})",
        line=line,
        hint="split files of the official release are plain ASCII; re-download this file",
    )


def inside_root(listing: Path, rel: str, *, line: int | None) -> str:
    """``rel`` if it is a relative path below the dataset root, else DatasetFormatError: an
    absolute path or ``..`` would read images from outside the dataset."""
    posix, windows = PurePosixPath(rel), PureWindowsPath(rel)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts:
        raise DatasetFormatError(
            listing,
            f"path {rel!r} leaves the dataset root (absolute or with '..')",
            line=line,
            hint="list paths relative to the dataset root, as the release does",
        )
    return rel


def plain_name(listing: Path, name: str, *, line: int | None) -> str:
    """``name`` if it is a bare file name (no folder part), else DatasetFormatError."""
    if "/" in name or "\\" in name or name in (".", ".."):
        raise DatasetFormatError(
            listing,
            f"{name!r} is not a plain file name (it has a folder part)",
            line=line,
            hint="entries name files inside the city's image folder",
        )
    return name


def check_latlon(listing: Path, lat: float, lon: float, *, line: int | None, what: str) -> None:
    """Finite degrees with |lat| <= 90 and |lon| <= 180, else DatasetFormatError."""
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
        raise DatasetFormatError(
            listing,
            f"{what} ({lat}, {lon}) is not a latitude/longitude in degrees",
            line=line,
            hint="latitude in [-90, 90], longitude in [-180, 180]",
        )
