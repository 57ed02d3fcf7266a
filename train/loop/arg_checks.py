"""Up-front checks of a training step's flags, so a bad value fails before any work is done.

argparse checks types; these check ranges and availability: ``--epochs 0`` used to exit 0
having trained nothing, ``--eval-every 0`` died on a ZeroDivisionError after a whole
epoch, ``--sat-size 0`` silently became the preset's size (``0 or preset``) and
``--device cuda`` without a GPU ended in a torch traceback. Every failure is a
:class:`FlagError` (a ``ValueError``) naming the flag, the value and what is allowed.

Usage::

    check_step_flags(cfg, hp)             # in train.loop.engine.launch, before anything is written
    check_device("cuda")                  # raises FlagError when no GPU is visible
    check_output_file(path, "--json")     # not a directory, parent not a file
    message = user_message(err)           # an error's text without DataLoader worker tracebacks
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from train.presets import HParams


class FlagError(ValueError):
    """A command-line value out of its allowed range."""


# HParams field -> (lowest allowed, whether the lowest itself is allowed, what it means)
_HP_RANGES: dict[str, tuple[float, bool, str]] = {
    "epochs": (1, True, "at least one epoch"),
    "batch_size": (1, True, "a positive batch size"),
    "eval_every": (1, True, "evaluate every N >= 1 epochs (the last epoch is always evaluated)"),
    "workers": (0, True, "0 (load in the main process) or more worker processes"),
    "lr": (0, False, "a positive learning rate"),
    "weight_decay": (0, True, "a non-negative weight decay"),
    "warmup_epochs": (0, True, "a non-negative warm-up length"),
    "grad_clip": (0, False, "a positive clipping threshold"),
    "label_smoothing": (0, True, "a smoothing in [0, 1)"),
    "gps_neighbours": (0, True, "0 or more GPS neighbours"),
    "sim_update_every": (0, True, "0 (off) or every N >= 1 epochs"),
    "sim_neighbours": (0, True, "0 or more similar references"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_hparams(hp: HParams) -> None:
    for name, (low, inclusive, meaning) in _HP_RANGES.items():
        value = getattr(hp, name, None)
        if value is None:
            continue
        if value != value or (value < low if inclusive else value <= low):  # NaN fails too
            raise FlagError(f"{_flag(name)} {value}: expected {meaning}")
    smoothing = getattr(hp, "label_smoothing", None)  # teacher-only (TeacherHParams)
    if smoothing is not None and not smoothing < 1:
        raise FlagError(f"--label-smoothing {smoothing}: expected a value in [0, 1)")


def check_sizes(cfg: Any) -> None:
    """Pixel sizes given on the command line must be positive (None = the preset's)."""
    for name in ("sat_size",):
        value = getattr(cfg, name, None)
        if value is not None and value < 1:
            raise FlagError(
                f"{_flag(name)} {value}: expected a positive side in pixels, e.g. 128 "
                "(omit the flag for the preset's size)"
            )
    variants = getattr(cfg, "variants", None)
    if variants is not None and variants < 1:
        raise FlagError(f"--variants {variants}: expected at least 1 geometric variant")


def check_device(device: str) -> None:
    """``auto``, ``cpu`` or ``cuda[:N]`` that this machine actually has."""
    if device == "auto":
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise FlagError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise FlagError(f"--device {device}: no CUDA GPU is visible; use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise FlagError(f"--device {device}: only {count} CUDA device(s) are visible")
    elif dev.type != "cpu":
        raise FlagError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def check_step_flags(cfg: Any, hp: HParams) -> None:
    """Every range check of a training step's config and hyper-parameters."""
    check_hparams(hp)
    check_sizes(cfg)
    check_device(getattr(cfg, "device", "auto"))
    if getattr(cfg, "resume", False) and getattr(cfg, "overwrite", False):
        raise FlagError("--resume continues the run in --out, --overwrite replaces it: pick one")


def check_output_file(path: Path | None, flag: str) -> None:
    """An output file path that can be written: not a directory, its parent not a file."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise FlagError(f"{flag} {path} is a directory; give a file name, e.g. {path / 'out'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FlagError(f"{flag} {path}: {parent} is a file, not a folder")
            break


_WORKER = re.compile(r"^Caught (\w+) in DataLoader worker process \d+\.\s*Original Traceback")


def user_message(err: BaseException) -> str:
    """``str(err)``, but for an error re-raised from a DataLoader worker (whose text is the
    worker's whole traceback) only the original error's last line."""
    text = str(err)
    if _WORKER.match(text):
        last = text.strip().splitlines()[-1]
        return last.split(": ", 1)[-1] if ": " in last else last
    return text
