"""Named numpy arrays in one file that opens as memory maps (the compressed index's format).

Layout (little-endian): the 8-byte magic ``D4GIDX\\0\\1``, a uint64 header length, a JSON
header (``{"arrays": {name: {"dtype", "shape", "offset"}}, ...}`` plus the caller's keys),
padded so that the data starts 64-byte aligned, then each array at its offset from there,
64-byte aligned. ``np.memmap`` of each array costs no read: a 100 MB index opens in
milliseconds and only the pages a search touches become resident.

Usage::

    write_arrays(path, {"codes": codes, "mean": mean}, {"format": "..."})
    header, arrays = map_arrays(path)         # arrays["codes"] is a read-only np.memmap
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from d4g_edge.errors import BundleContentError
from d4g_edge.fileio import temp_path

MAGIC = b"D4GIDX\x00\x01"
_ALIGN = 64
_ROWS = 65_536  # rows written at once: memmapped inputs stream through in bounded chunks
_MAX_HEADER = 1 << 20


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    specs, offset = {}, 0
    for name, a in arrays.items():
        specs[name] = {"dtype": np.dtype(a.dtype).str, "shape": list(a.shape), "offset": offset}
        offset = -(-(offset + a.nbytes) // _ALIGN) * _ALIGN
    head = json.dumps({**meta, "arrays": specs}, sort_keys=True).encode()
    start = -(-(len(MAGIC) + 8 + len(head)) // _ALIGN) * _ALIGN
    head = head.ljust(start - len(MAGIC) - 8, b" ")
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<Q", len(head)) + head)
        for name, a in arrays.items():
            f.seek(start + specs[name]["offset"])
            for s in range(0, max(len(a), 1), _ROWS):
                f.write(np.ascontiguousarray(a[s : s + _ROWS]).tobytes())
        f.truncate(start + offset)


def map_arrays(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and every array of ``path`` as a read-only memory map (typed errors for a
    file of another kind, a malformed header or a truncated file)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic, size = f.read(len(MAGIC)), f.read(8)
            if magic != MAGIC or len(size) != 8:
                raise BundleContentError(
                    f"{path} is not a d4g-edge array file (starts {magic!r}, not {MAGIC!r}); "
                    "the manifest's index.storage does not match the file: rebuild the bundle"
                )
            (length,) = struct.unpack("<Q", size)
            if length > _MAX_HEADER:
                raise BundleContentError(f"{path}: header of {length} bytes; the file is corrupt")
            header = json.loads(f.read(length))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleContentError(f"cannot read {path}: {err}") from None
    start, total = len(MAGIC) + 8 + length, path.stat().st_size
    arrays = {}
    try:
        for name, spec in header["arrays"].items():
            dtype, shape = np.dtype(spec["dtype"]), tuple(int(v) for v in spec["shape"])
            off = start + int(spec["offset"])
            if off + dtype.itemsize * int(np.prod(shape)) > total:
                raise BundleContentError(f"{path} is truncated (array {name!r} runs past its end)")
            arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=off, shape=shape)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise BundleContentError(f"{path}: malformed array header ({err})") from None
    return header, arrays


def save_index_file(path: str | Path, arrays: dict, fmt: str, params: dict) -> Path:
    """An index file of ``arrays`` whose header names its ``fmt`` and shaping ``params``,
    written beside ``path`` and moved over it: a crash leaves the old file whole."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        write_arrays(tmp, arrays, {"format": fmt, "params": params})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def open_index_file(path: str | Path, fmt: str, params: dict) -> dict[str, np.ndarray]:
    """The arrays of an index file written by :func:`save_index_file` with this ``fmt`` and
    these ``params`` (the manifest's); another kind or other parameters are refused."""
    header, arrays = map_arrays(path)
    if header.get("format") != fmt:
        raise BundleContentError(
            f"{path}: index format {header.get('format')!r}, expected {fmt!r}; "
            "the manifest's index.storage does not match the file: rebuild the bundle"
        )
    if header.get("params") != params:
        raise BundleContentError(
            f"{path} was built with {header.get('params')}, the manifest says "
            f"{params}; rebuild the bundle"
        )
    return arrays


def check_arrays(path, arrays: dict, want: dict) -> None:
    """Refuse a file whose arrays lack one of ``want`` ({name: (shape, dtype)}) or differ."""
    for name, (shape, dtype) in want.items():
        a = arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            got = "missing" if a is None else f"{a.dtype} {a.shape}"
            raise BundleContentError(
                f"{path}: array {name!r} is {got}, the manifest implies "
                f"{np.dtype(dtype).name} {shape}; rebuild the bundle"
            )
