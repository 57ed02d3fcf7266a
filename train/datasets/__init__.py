"""Cross-view dataset loaders for CVUSA, CVACT, VIGOR and University-1652 in their official
layouts.

``load`` reads a release exactly as distributed (see each module's docstring for the
layout) into a :class:`CrossViewSplit` of paths, ids and coordinates. This package imports
numpy, Pillow and scipy only; the torch datasets live in :mod:`train.datasets.pairs` and
are re-exported lazily, so ``import train.datasets`` never imports torch.

Usage::

    from train.datasets import load, PairAugment, PairDataset
    split = load("cvusa", "/data/CVUSA", "train")
    ds = PairDataset(split, sat_size=128, ground_size=(64, 256), augment=PairAugment(),
                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import DatasetFormatError
from ._files import read_image
from ._split import CrossViewSplit
from .augment import PairAugment
from .cvact import load_cvact
from .cvusa import load_cvusa
from .university1652 import load_university1652
from .vigor import load_vigor

if TYPE_CHECKING:
    from .pairs import PairDataset, ViewDataset

__all__ = [
    "DATASETS",
    "MODES",
    "SPLITS",
    "CrossViewSplit",
    "DatasetFormatError",
    "PairAugment",
    "PairDataset",
    "ViewDataset",
    "load",
    "read_image",
]

DATASETS = ("cvact", "cvusa", "university1652", "vigor")
SPLITS = {
    "cvact": ("train", "val", "test"),
    "cvusa": ("train", "test"),
    "university1652": ("train", "test"),
    "vigor": ("train", "test"),
}
# Datasets whose ``mode`` picks a protocol, with the valid modes (the first is the default).
MODES = {"university1652": ("drone", "satellite"), "vigor": ("same", "cross")}


def _choice_error(kind: str, value: str, valid: tuple[str, ...]) -> ValueError:
    close = difflib.get_close_matches(value, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}{hint}")


def load(
    name: str,
    root: str | Path,
    split: str = "test",
    *,
    mode: str | None = None,
    cities: tuple[str, ...] | None = None,
    check_files: bool = True,
    on_missing: str | None = None,
) -> CrossViewSplit:
    """Load ``split`` of dataset ``name`` from ``root``.

    ``mode`` selects the protocol of VIGOR ("same" | "cross" area, default "same") and of
    University-1652 ("drone" = Drone->Satellite, the default, for train and test; "satellite"
    = Satellite->Drone, test only: drone frames of ``test/gallery_drone`` against the tiles of
    ``test/query_satellite``, ranked transposed by the evaluator). ``cities`` applies to VIGOR
    only. ``check_files`` verifies that every listed image exists before returning (for
    University-1652, whose images are found by listing folders, that each is a non-empty file).
    ``on_missing`` applies to CVACT only: "skip" (the default for ``train``, as Sample4Geo:
    the release lacks a few train images) or "error" (the default for ``val``/``test``: an
    evaluation split must be complete).
    """
    if name not in DATASETS:
        raise _choice_error("dataset", name, DATASETS)
    if split not in SPLITS[name]:
        raise _choice_error(f"{name} split", split, SPLITS[name])
    if mode is not None and name not in MODES:
        valid = "; ".join(f"{n}: {'/'.join(m)}" for n, m in MODES.items())
        raise ValueError(
            f"mode selects the protocol of VIGOR or University-1652 ({valid}); {name} has none"
        )
    if mode is not None and mode not in MODES[name]:
        raise _choice_error(f"{name} mode", mode, MODES[name])
    if name != "vigor" and cities is not None:
        raise ValueError(f"cities select VIGOR's cities; {name} has none")
    if name != "cvact" and on_missing is not None:
        raise ValueError(
            f"on_missing applies to CVACT only; {name} always errors on a missing image"
        )
    if name == "cvusa":
        return load_cvusa(root, split, check_files=check_files)
    if name == "cvact":
        return load_cvact(root, split, check_files=check_files, on_missing=on_missing)
    if name == "university1652":
        return load_university1652(root, split, mode=mode or "drone", check_files=check_files)
    return load_vigor(root, split, mode=mode or "same", cities=cities, check_files=check_files)


def __getattr__(name: str) -> Any:
    # Lazy torch-side exports: importing train.datasets must not import torch.
    if name in ("PairDataset", "ViewDataset"):
        from . import pairs

        return getattr(pairs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
