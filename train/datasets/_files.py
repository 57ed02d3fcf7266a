"""Image decoding and up-front existence checks shared by the loaders (numpy + Pillow).

Checking every listed image before training starts turns a missing file into one clear
error at ``load()`` time instead of a crash inside a DataLoader worker hours later. Each
directory is listed once (``os.scandir``), so checking the ~200k files of VIGOR costs a
few directory reads rather than one ``stat`` per image.

Usage::

    img = read_image("bingmap/19/0000001.jpg")        # (H, W, 3) uint8 RGB
    checker = FileChecker()
    if not checker.exists(path): raise missing_file(path, referenced_by=csv, line=n)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._errors import DatasetFormatError, missing_file
from ._images import to_rgb8


def read_image(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image file to an (H, W, 3) uint8 RGB array.

    ``size`` = (height, width) resizes with Pillow's antialiased bilinear filter. A missing
    file raises ``FileNotFoundError``; an undecodable one ``DatasetFormatError``.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img = to_rgb8(img, path)
            if size is not None and (img.height, img.width) != tuple(size):
                img = img.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise missing_file(path) from None
    except DatasetFormatError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        # Pillow reports truncated/corrupt files as OSError, some decoders as SyntaxError or
        # ValueError, and absurd dimensions as DecompressionBombError.
        raise DatasetFormatError(
            path, f"cannot decode image ({exc})", hint="re-download or re-extract this file"
        ) from exc


class FileChecker:
    """Existence test backed by one cached directory listing per directory."""

    def __init__(self) -> None:
        self._listings: dict[Path, frozenset[str]] = {}

    def exists(self, path: Path) -> bool:
        parent = path.parent
        names = self._listings.get(parent)
        if names is None:
            try:
                with os.scandir(parent) as it:
                    names = frozenset(e.name for e in it)
            except (FileNotFoundError, NotADirectoryError):
                names = frozenset()
            self._listings[parent] = names
        return path.name in names

    def listing(self, directory: Path) -> frozenset[str]:
        """All names in ``directory`` (empty if it does not exist)."""
        self.exists(directory / "\0")  # fills the cache; "\0" never names a file
        return self._listings[directory]
