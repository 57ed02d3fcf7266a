"""torchrun / DDP plumbing: process group set-up, rank info and gathering results.

Works unchanged for a plain ``python -m ...`` run (world size 1, no process group) and for
``torchrun --nproc-per-node N python -m ...`` (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP/DataParallel and torch.compile wrappers.

    Checkpoints store the plain module's keys, and evaluation bypasses DDP: its forward syncs
    buffers with the other ranks, which would deadlock when ranks hold different numbers of
    batches.
    """
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment and join the process group when there is more than one rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(f"cuda:{local}" if device == "cuda" else device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_rows(info: DistInfo, indices: np.ndarray, rows: np.ndarray, total: int) -> np.ndarray:
    """Assemble per-rank ``rows`` (computed for ``indices``) into one ``(total, ...)`` array.

    Every rank receives the full array, so decisions taken from it (best epoch, similarity
    sampling) are identical on all ranks without a second broadcast.
    """
    if not info.enabled:
        parts = [(indices, rows)]
    else:
        parts = [None] * info.world_size
        dist.all_gather_object(parts, (indices, rows))
    out = np.empty((total, *rows.shape[1:]), dtype=rows.dtype)
    seen = np.zeros(total, dtype=bool)
    for idx, r in parts:
        out[idx] = r
        seen[idx] = True
    if not seen.all():
        raise RuntimeError(f"gather_rows: {int((~seen).sum())} of {total} rows missing")
    return out


def broadcast_object(info: DistInfo, obj):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
