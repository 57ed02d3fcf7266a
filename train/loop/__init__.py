"""The training loop's plumbing, shared by every step (``train.teacher``, ``train.distill``...).

* :mod:`~train.loop.engine` — the one epoch loop (``launch(task)``), DDP, AMP, resume;
* :mod:`~train.loop.distributed` — torchrun process group, rank info, ``unwrap``;
* :mod:`~train.loop.checkpoint` — weights file + sidecar format (``save_checkpoint``);
  :mod:`~train.loop.legacy` upgrades old sidecars; :mod:`~train.loop.rebuild` rebuilds models
  (``load_encoder``); :mod:`~train.loop.checkpoint_format` holds the format name and
  ``CheckpointError`` both import; :mod:`~train.loop.state` is the resumable training state;
* :mod:`~train.loop.runlog` — metrics + curves (files are written by
  :func:`d4g_edge.fileio.atomic_write`, the project's one atomic writer);
* :mod:`~train.loop.cli` — the command-line builder; :mod:`~train.loop.arg_checks` — the
  flag checks; :mod:`~train.loop.run_dir` — the run-folder guard (``--overwrite``);
* :mod:`~train.loop.embed` and :mod:`~train.loop.evalsets` — embedding and scoring retrieval
  sets.

Names are re-exported lazily, so ``import train.loop.cli`` does not import torch.

Usage::

    from train.loop import load_encoder, save_checkpoint, unwrap
    model, cfg, sidecar = load_encoder("runs/teacher/teacher.pt")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from train.loop.checkpoint import CheckpointError, save_checkpoint
    from train.loop.distributed import unwrap
    from train.loop.rebuild import load_encoder

__all__ = ["CheckpointError", "load_encoder", "save_checkpoint", "unwrap"]

_HOME = {
    "CheckpointError": "checkpoint",
    "load_encoder": "rebuild",
    "save_checkpoint": "checkpoint",
    "unwrap": "distributed",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'train.loop' has no attribute {name!r}")
    return getattr(importlib.import_module(f"train.loop.{_HOME[name]}"), name)
