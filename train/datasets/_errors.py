"""Typed errors of the dataset loaders: every message names the file (and line) at fault.

Usage::

    raise DatasetFormatError(path, "expected 3 comma-separated fields, got 2", line=17,
                             hint="rows look like 'bingmap/19/0000001.jpg,streetview/...'")
    raise missing_file(path, referenced_by="splits/train-19zl.csv", line=17)
"""

from __future__ import annotations

import errno
from pathlib import Path


class DatasetFormatError(ValueError):
    """A dataset file does not have the layout of the official release.

    ``path`` and ``line`` (1-based, ``None`` for whole-file problems) say where; the message
    says what was found, what was expected and, where known, how to fix it.
    """

    def __init__(
        self, path: str | Path, problem: str, *, line: int | None = None, hint: str = ""
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}" + (f", line {line}" if line is not None else "")
        message = f"{where}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


def missing_file(
    path: str | Path, *, referenced_by: str | Path | None = None, line: int | None = None
) -> FileNotFoundError:
    """A ``FileNotFoundError`` for an image listed by a split file, naming both files."""
    reason = "image listed in the dataset does not exist"
    if referenced_by is not None:
        reason += f" (listed by {referenced_by}" + (f", line {line}" if line else "") + ")"
    reason += "; check the dataset root and that the download was extracted completely"
    return FileNotFoundError(errno.ENOENT, reason, str(path))
