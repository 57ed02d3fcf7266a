"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Usage::

    from train.loop import atomic_write
    atomic_write(run / "metrics.json", json.dumps(record) + "\\n")
    atomic_write(run / "teacher.pt", weight_bytes)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


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
