"""Typed errors of the dataset loaders: every message names the file (and line) at fault.

Usage::

    raise DatasetFormatError(path, "expected 3 comma-separated fields, got 2", line=17,
                             hint="rows look like 'bingmap/19/0000001.jpg,streetview/...'")
    raise missing_file(path, referenced_by="splits/train-19zl.csv", line=17)
"""

from __future__ import annotations

import errno
import re
from pathlib import Path


class DatasetFormatError(ValueError):
    """A dataset file does not have the layout of the official release.

    ``path`` and ``line`` (1-based, ``None`` for whole-file problems) say where; the message
    says what was found, what was expected and, where known, how to fix it.
    """

    def __init__(
        self,
        path: str | Path,
        problem: str | None = None,
        *,
        line: int | None = None,
        hint: str = "",
    ) -> None:
        if problem is None:  # one argument: re-raised from a DataLoader worker, see below
            path, problem, line = _from_worker(str(path))
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}" + (f", line {line}" if line is not None else "")
        message = f"{where}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


def _from_worker(text: str) -> tuple[str, str, int | None]:
    """(path, problem, line) of the one-string form torch's DataLoader builds when it re-raises
    a worker's exception ("Caught DatasetFormatError in DataLoader worker process 0. Original
    Traceback ...": ``torch._utils.ExceptionWrapper.reraise``). Only the original message's
    last line is kept, so the CLI shows the file at fault rather than a worker traceback."""
    last = text.strip().splitlines()[-1] if text.strip() else text
    last = last.split("DatasetFormatError: ", 1)[-1]
    found = re.match(r"(.+?)(?:, line (\d+))?: (.+)", last, re.DOTALL)
    if not found:
        return "<unknown>", last, None
    line = int(found.group(2)) if found.group(2) else None
    return found.group(1), found.group(3), line


def missing_file(
    path: str | Path, *, referenced_by: str | Path | None = None, line: int | None = None
) -> FileNotFoundError:
    """A ``FileNotFoundError`` for an image listed by a split file, naming both files."""
    reason = "image listed in the dataset does not exist"
    if referenced_by is not None:
        reason += f" (listed by {referenced_by}" + (f", line {line}" if line else "") + ")"
    reason += "; check the dataset root and that the download was extracted completely"
    return FileNotFoundError(errno.ENOENT, reason, str(path))
