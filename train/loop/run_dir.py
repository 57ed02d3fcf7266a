"""The run folder guard: never mix two runs in one ``--out``, never lose what is there.

A fresh run (no ``--resume``) into a folder that already holds a run used to overwrite
``teacher.pt`` / ``last.pt`` and append to ``metrics.jsonl`` (epochs 1, 2, 1). Now:

* :func:`check_run_dir` (before anything is written or loaded) refuses a non-empty folder
  unless ``--resume`` (continue it, with the same model-defining flags) or ``--overwrite``;
* :func:`claim_run_dir` (after every input has been checked) removes what a killed run
  left half-written (``.*.tmp`` files of the atomic writes) and, with ``--overwrite``, the
  previous run's own files, so a run that fails on bad input deletes nothing.

``teacher_cache/`` is not "a run": it is keyed by teacher and data and checks itself, so a
distillation may reuse it.

Usage::

    check_run_dir(out, cfg, resume=False, overwrite=False)   # RunDirError (ValueError)
    ...load and check the data...
    claim_run_dir(out, overwrite=False)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from d4g_edge.log import logger

CONFIG_FILE = "config.json"
REUSABLE = ("teacher_cache",)
# Files a run writes; --overwrite removes exactly these (and sidecars), nothing else.
RUN_FILES = ("config.json", "metrics.jsonl", "curves.png", "last.pt", "teacher.pt")
RUN_PREFIXES = ("student_",)
# Config fields that fix the shapes of what last.pt holds: resuming with others cannot work.
MODEL_FIELDS = ("model", "preset", "sat_size", "ground_size", "sat_polar", "view", "paper_head")


class RunDirError(ValueError):
    """``--out`` cannot be used as asked (it holds another run, or resume flags differ)."""


def _is_tmp(path: Path) -> bool:
    # _atomic_write / RunLog temp names: ".<name>.<random>.tmp", ".<name>.tmp", ".<stem>.tmp.png"
    return path.name.startswith(".") and ".tmp" in path.name and path.is_file()


def _owned(path: Path) -> bool:
    name = path.name.removesuffix(".json") if path.name.endswith(".pt.json") else path.name
    return name in RUN_FILES or (name.startswith(RUN_PREFIXES) and name.endswith(".pt"))


def _jsonable(cfg: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def check_run_dir(out: Path, cfg: Any, *, resume: bool, overwrite: bool) -> None:
    """Refuse ``out`` when a fresh run would mix with a run already there (see module doc)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} exists and is not a folder; choose a folder")
    if not out.is_dir():
        return
    present = sorted(p.name for p in out.iterdir() if p.name not in REUSABLE and not _is_tmp(p))
    if present and not (resume or overwrite):
        shown = ", ".join(present[:6]) + (", ..." if len(present) > 6 else "")
        raise RunDirError(
            f"--out {out} is not empty (it holds {shown}); pass --resume to continue that "
            "run, --overwrite to replace it, or choose an empty --out"
        )
    if resume:
        _check_same_model(out, cfg)


def _check_same_model(out: Path, cfg: Any) -> None:
    try:
        before = json.loads((out / CONFIG_FILE).read_text()).get("config", {})
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return  # nothing to compare with; the state file itself is checked on load
    now = _jsonable(cfg)
    differ = [
        f"--{k.replace('_', '-')} {before[k]!r} then, {now[k]!r} now"
        for k in MODEL_FIELDS
        if k in before and k in now and before[k] != now[k]
    ]
    if differ:
        raise RunDirError(
            f"--resume: the run in {out} was started with other model flags ({'; '.join(differ)}"
            f"); resume with the flags in {out / CONFIG_FILE}, or start a new --out"
        )


def claim_run_dir(out: Path, *, overwrite: bool) -> None:
    """Create ``out``; drop stale temp files and, with ``overwrite``, the previous run's files.

    Call only once the inputs have been checked: this is the first write into ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(out.iterdir()):
        if _is_tmp(path):
            logger.warning("removing %s, left half-written by an interrupted run", path)
            path.unlink(missing_ok=True)
        elif overwrite and _owned(path):
            logger.warning("--overwrite: removing %s of the previous run", path)
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
