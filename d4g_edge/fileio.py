"""File helpers for the SDK and the repository's tooling: a file's SHA-256 and THE atomic
writer (a temp file beside the target, fsynced, then ``os.replace``), so a reader sees the
old file or the new one, never half of either, and a crash never leaves a half-written bundle,
checkpoint or log under its final name.

Public: training, quantization, export and the benchmarks import it (and :mod:`d4g_edge.log`)
instead of keeping their own copies.

Usage::

    from d4g_edge.fileio import atomic_write, atomic_write_json, sha256_file
    atomic_write(run / "metrics.jsonl", text)          # str (UTF-8) or bytes
    atomic_write_json(bundle / "manifest.json", manifest)
    with atomic_output(out / "model.pte") as tmp:       # a library writes tmp; renamed on success
        save(program, tmp)
    digest = sha256_file(bundle / "index.bin")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_output", "atomic_write", "atomic_write_json", "sha256_file", "temp_path"]

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def temp_path(path: str | Path) -> Path:
    """A fresh temporary name next to ``path`` (same filesystem, so the rename is atomic), for
    writers that need a path (a library's ``save``) rather than bytes."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (``str`` as UTF-8) to ``path`` via a temp file beside it + ``os.replace``.

    The temp file lives in the same directory so the rename never crosses file systems; it is
    fsynced first so a crash cannot leave a renamed but empty file. Parent folders are created.
    """
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else bytes(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented, key-sorted JSON + newline, written by :func:`atomic_write`."""
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """For writers that must be given a path (a library's ``save``): yield a temporary sibling
    of ``path`` (same suffix, so runtimes and ``torch.export`` accept it); rename it onto
    ``path`` when the block succeeds, delete it when it raises.

    A Core ML ``.mlpackage`` is a folder: an old one is removed just before the rename (a
    folder cannot be replaced in one step), so a reader can briefly see none, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise OSError(f"the writer wrote nothing to {tmp}")
        if tmp.is_dir():
            _remove(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
