"""The one training loop, shared by teacher training and distillation.

What differs between the two lives in a :class:`Task` (models, batches, loss, evaluation,
what "best" saves); the loop owns everything else: device and DDP, AdamW with warm-up +
cosine schedule, gradient clipping, mixed precision, per-epoch evaluation, best-by-R@1
selection, atomic resumable checkpoints, a JSON-lines log and ``curves.png``.

Usage::

    info = init_distributed()
    fit(task, LoopConfig(run_dir=Path("runs/t"), hp=preset.teacher_hp), info)
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger
from train.loop.arg_checks import check_step_flags
from train.loop.distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    init_distributed,
    shutdown_distributed,
)
from train.loop.run_dir import check_run_dir, claim_run_dir
from train.loop.runlog import RunLog
from train.loop.state import (
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    save_training_state,
)
from train.presets import HParams, Preset, get_preset

STATE_FILE = "last.pt"


class Task(Protocol):
    """What a training run optimises; see train/teacher.py and train/distill.py."""

    monitor: str  # metric that selects the best checkpoint, e.g. "R@1"

    def modules(self) -> dict[str, nn.Module]: ...
    def on_epoch_start(self, epoch: int, models: dict[str, nn.Module]) -> None: ...
    def train_batches(self, epoch: int) -> Iterable[Any]: ...
    def steps_per_epoch(self) -> int: ...
    def training_step(
        self, batch: Any, models: dict[str, nn.Module]
    ) -> tuple[torch.Tensor, dict[str, float]]: ...
    def evaluate(self, models: dict[str, nn.Module], epoch: int) -> dict[str, float]: ...
    def save_best(self, run_dir: Path, models: dict[str, nn.Module], record: dict) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class LoopConfig:
    run_dir: Path
    hp: HParams
    resume: bool = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - libraries may still draw from the global RNG
    torch.manual_seed(seed)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Resolve the ``--amp`` choice; None means full fp32."""
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" else "none"
    choices = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in choices:
        raise ValueError(f"amp must be one of auto, {', '.join(choices)}; got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp=fp16 needs a CUDA device; use bf16 or none on CPU")
    return choices[amp]


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up from ~0 to 1, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _param_groups(models: dict[str, nn.Module], weight_decay: float) -> list[dict]:
    # No weight decay on norms, biases and the temperature: standard for AdamW recipes
    # (timm's param_groups_weight_decay), and decaying logit_scale would fight the loss.
    decay, no_decay = [], []
    for m in models.values():
        for name, p in m.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith("logit_scale") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@dataclass
class _Optim:
    """The optimizer side of a run: AdamW over the models' parameter groups, its warm-up +
    cosine schedule, the autocast dtype (None: fp32) and the fp16 gradient scaler."""

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    dtype: torch.dtype | None
    grad_clip: float

    @classmethod
    def create(
        cls, models: dict[str, nn.Module], hp: HParams, steps: int, device: torch.device
    ) -> _Optim:
        opt = torch.optim.AdamW(_param_groups(models, hp.weight_decay), lr=hp.lr)
        total, warm = hp.epochs * steps, max(1, round(hp.warmup_epochs * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, warm))
        dtype = amp_dtype(hp.amp, device)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
        return cls(opt, sched, scaler, dtype, hp.grad_clip)

    def step(self, loss: torch.Tensor) -> None:
        """Backward, unscale, clip, optimizer and scheduler step."""
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(
            [p for g in self.opt.param_groups for p in g["params"]], self.grad_clip
        )
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()

    def lr(self) -> float:
        return self.sched.get_last_lr()[0]


def _wrap(models: dict[str, nn.Module], info: DistInfo) -> dict[str, nn.Module]:
    """Each model in DistributedDataParallel under torchrun, as it is otherwise."""
    if not info.enabled:
        return dict(models)
    ids = None if info.device.type == "cpu" else [info.device.index]
    return {k: nn.parallel.DistributedDataParallel(m, device_ids=ids) for k, m in models.items()}


def _train_epoch(
    task: Task,
    wrapped: dict[str, nn.Module],
    optim: _Optim,
    hp: HParams,
    epoch: int,
    steps: int,
    info: DistInfo,
) -> dict:
    """One pass over the task's training batches; the epoch's record (mean loss and logs)."""
    task.on_epoch_start(epoch, wrapped)
    for m in wrapped.values():
        m.train()
    t0, n, loss_sum, extra = time.time(), 0, 0.0, {}
    bar = tqdm(
        task.train_batches(epoch),
        total=steps,
        desc=f"epoch {epoch}/{hp.epochs}",
        disable=not info.is_main,
        leave=False,
    )
    dtype = optim.dtype
    for batch in bar:
        with torch.autocast(
            info.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            loss, logs = task.training_step(batch, wrapped)
        optim.step(loss)
        n, loss_sum = n + 1, loss_sum + float(loss.detach())
        for k, v in logs.items():
            extra[k] = extra.get(k, 0.0) + v
        bar.set_postfix(loss=f"{loss_sum / n:.4f}", lr=f"{optim.lr():.2e}")
    if n == 0:
        raise RuntimeError(
            f"epoch {epoch} had no training batches: the training split is smaller than "
            f"one batch ({hp.batch_size}); lower --batch-size"
        )
    record = {
        "epoch": epoch,
        "loss": loss_sum / n,
        "lr": optim.lr(),
        "train_s": round(time.time() - t0, 2),
    }
    record.update({k: v / n for k, v in extra.items()})
    return record


def fit(task: Task, cfg: LoopConfig, info: DistInfo) -> dict:
    """Train ``task`` for ``cfg.hp.epochs``; returns the best evaluation record."""
    hp, run_dir = cfg.hp, Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(hp.seed + info.rank)
    models = {k: m.to(info.device) for k, m in task.modules().items()}
    wrapped = _wrap(models, info)
    steps = task.steps_per_epoch()
    optim = _Optim.create(models, hp, steps, info.device)
    log = RunLog(run_dir) if info.is_main else None

    start, best = 1, {"epoch": 0, task.monitor: -math.inf}
    state_path = run_dir / STATE_FILE
    # everything with a state_dict() that a resumed run must restore
    stateful = {
        "optimizer": optim.opt,
        "scheduler": optim.sched,
        "scaler": optim.scaler,
        "task": task,
        **{f"model_{k}": m for k, m in models.items()},
    }
    if cfg.resume:
        _check_resumable(run_dir)
        state = load_training_state(state_path, into=stateful)
        restore_rng_state(state["rng"])
        start, best = int(state["epoch"]) + 1, dict(state["best"])
        logger.info("resumed %s at epoch %d (best %s)", run_dir, start, best)
        if log:
            log.truncate_after(start - 1)

    for epoch in range(start, hp.epochs + 1):
        record = _train_epoch(task, wrapped, optim, hp, epoch, steps, info)
        if epoch % hp.eval_every == 0 or epoch == hp.epochs:
            for m in wrapped.values():
                m.eval()
            with torch.no_grad():
                record.update(task.evaluate(wrapped, epoch))
        improved = record.get(task.monitor, -math.inf) > best[task.monitor]
        improved = broadcast_object(info, improved)
        if improved:
            best = {k: v for k, v in record.items() if isinstance(v, int | float)}
            if info.is_main:
                task.save_best(run_dir, models, best)
        if info.is_main:
            save_training_state(
                state_path, {**stateful, "epoch": epoch, "best": best, "rng": capture_rng_state()}
            )
            log.append(record)
            logger.info(
                "epoch %d: %s",
                epoch,
                {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()},
            )
        barrier(info)
    return best


def _check_resumable(run_dir: Path) -> None:
    if not (Path(run_dir) / STATE_FILE).exists():
        raise FileNotFoundError(
            f"--resume: no {STATE_FILE} in {run_dir}; start without --resume or point "
            "--out at the run folder to continue"
        )


def launch(
    make_task: Callable[[DistInfo], Task],
    cfg: Any,
    hp: HParams,
    *,
    out: Path,
    device: str,
    resume: bool,
    overwrite: bool = False,
) -> dict:
    """Run one training step's CLI config end to end: check the flags and ``out``, join
    torchrun's process group, seed (model initialisation is part of the run), build the task
    (which loads and checks every input), then write the resolved config and fit. Nothing is
    written into ``out`` before the inputs have been checked."""
    check_step_flags(cfg, hp)
    check_run_dir(out, cfg, resume=resume, overwrite=overwrite)
    if resume:  # fail before minutes of data loading, not after
        _check_resumable(out)
    info = init_distributed(device)
    try:
        # ranks on one machine share its cores
        torch.set_num_threads(max(1, torch.get_num_threads() // info.world_size))
        seed_everything(hp.seed + info.rank)
        task = make_task(info)
        if info.is_main:
            claim_run_dir(out, overwrite=overwrite)
            resolved = {
                "argv": sys.argv,
                "config": dataclasses.asdict(cfg),
                "hparams": dataclasses.asdict(hp),
                "world_size": info.world_size,
            }
            atomic_write(out / "config.json", json.dumps(resolved, indent=2, default=str))
            logger.info("resolved config: %s", json.dumps(resolved, default=str))
        return fit(task, LoopConfig(run_dir=out, hp=hp, resume=resume), info)
    finally:
        shutdown_distributed()


def run_task(
    task: Callable[[Any, Preset, HParams, DistInfo], Task],
    cfg: Any,
    hp: HParams | None,
    preset_hparams: Callable[[Preset], HParams],
) -> dict:
    """``run(cfg, hp)`` of a training step: ``hp`` defaults to the preset's
    (``preset_hparams(preset)``); the task is built once per process as ``task(cfg, preset,
    hp, info)``. Returns the best epoch's record."""
    preset = get_preset(cfg.preset)
    hp = hp or preset_hparams(preset)
    return launch(
        lambda info: task(cfg, preset, hp, info),
        cfg,
        hp,
        out=cfg.out,
        device=cfg.device,
        resume=cfg.resume,
        overwrite=cfg.overwrite,
    )
