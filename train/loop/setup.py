"""Set-up shared by the training steps: the two splits and the batch-size check.

Usage::

    train_split, test_split = load_splits(cfg.dataset, cfg.data, vigor_mode=cfg.vigor_mode)
    check_batch_size(hp.batch_size, info)
"""

from __future__ import annotations

from pathlib import Path

from train.datasets import CrossViewSplit, load
from train.loop.distributed import DistInfo

__all__ = ["check_batch_size", "load_splits"]


def load_splits(
    dataset: str, root: Path, *, vigor_mode: str
) -> tuple[CrossViewSplit, CrossViewSplit]:
    """The ``train`` and ``test`` splits (VIGOR in ``vigor_mode``, same- or cross-area)."""
    kw = {"mode": vigor_mode} if dataset == "vigor" else {}
    return load(dataset, root, "train", **kw), load(dataset, root, "test", **kw)


def check_batch_size(batch_size: int, info: DistInfo) -> None:
    """Each torchrun process takes an equal share of the global batch."""
    if batch_size % info.world_size:
        raise ValueError(
            f"--batch-size {batch_size} must be divisible by the number "
            f"of torchrun processes ({info.world_size})"
        )
