"""Resumable training state (``last.pt``): modules' state dicts, epoch, best record, RNGs.

Loaded with ``weights_only=True`` like every file this project reads: the content is checked
on save to consist of tensors and plain Python values only, so no file can execute code.

Usage::

    save_training_state(run / "last.pt", {"model": model, "optimizer": opt, "epoch": 7,
                        "scheduler": sched, "sampler": sampler, "rng": capture_rng_state()})
    state = load_training_state(run / "last.pt", into={"model": model, "optimizer": opt,
                                "scheduler": sched, "sampler": sampler})
    restore_rng_state(state["rng"]); start_epoch = state["epoch"] + 1
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from d4g_edge.fileio import atomic_write
from train.loop.checkpoint import CheckpointError, torch_bytes
from train.loop.distributed import unwrap

__all__ = [
    "capture_rng_state",
    "load_training_state",
    "restore_rng_state",
    "save_training_state",
]

TRAINING_STATE_FORMAT = "d4g-edge/training-state/1"


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy (global) and torch CPU/CUDA generator states, for save_training_state
    (which stores NumPy's uint32 key array as an int64 tensor)."""
    return {
        "python": random.getstate(),
        # The legacy global generator, because that is what third-party code draws from.
        "numpy": np.random.get_state(legacy=False),  # noqa: NPY002
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (after a save/load round trip)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    key = np.asarray(np_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(  # noqa: NPY002
        {**np_state, "state": {**np_state["state"], "key": key}}
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(obj: Any, where: str) -> Any:
    """``obj`` as tensors + plain Python values that torch.load(weights_only=True) accepts."""
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = (unwrap(obj) if isinstance(obj, nn.Module) else obj).state_dict()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        # torch has no uint32 arithmetic; int64 holds every value of the integer dtypes we use.
        return torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, Mapping):
        return {k: _plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(
        f"training state entry {where} is a {type(obj).__name__}, which a weights_only load "
        "cannot restore; store plain values (numbers, strings, lists, dicts, tensors) instead"
    )


def save_training_state(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Atomically save everything needed to resume: objects with ``state_dict()`` (model,
    optimizer, scheduler, GradScaler, sampler) are stored as their state dicts, NumPy arrays
    as tensors; anything that would need pickling raises ``TypeError`` naming the entry.
    """
    path = Path(path)
    if "_format" in state:
        raise ValueError("'_format' is reserved for the file format marker; rename that entry")
    payload = {k: _plain(v, k) for k, v in state.items()}
    payload["_format"] = TRAINING_STATE_FORMAT
    atomic_write(path, torch_bytes(payload))
    return path


def load_training_state(
    path: str | Path, into: Mapping[str, Any] | None = None, *, map_location: str = "cpu"
) -> dict[str, Any]:
    """Load a resume file (``weights_only=True``) and ``load_state_dict`` each object in ``into``.

    Returns the whole stored dict (e.g. ``epoch``, ``rng``) for the caller's own entries.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training state not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable training state: {err}") from err
    if not isinstance(payload, dict) or payload.get("_format") != TRAINING_STATE_FORMAT:
        raise CheckpointError(
            f"{path} is not a {TRAINING_STATE_FORMAT} file (a model checkpoint? resume from the "
            "run's training-state file instead)"
        )
    for key, obj in (into or {}).items():
        if key not in payload:
            raise CheckpointError(f"{path} has no {key!r}; it has {sorted(payload)}")
        target = unwrap(obj) if isinstance(obj, nn.Module) else obj
        target.load_state_dict(payload[key])
    return payload
