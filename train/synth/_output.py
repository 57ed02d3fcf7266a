"""The output directory: refuse to mix datasets, and record what was written.

``synth_info.json`` at the dataset root records the layout and the generating settings
(status ``writing`` while running, ``complete`` at the end). A non-empty directory is only
written into when its record shows the same dataset (re-running then regenerates the same
bytes, e.g. after an interruption); anything else needs ``overwrite=True``, which first
removes the top-level paths the three layouts own.

Usage::

    prepare_output(cfg, owned_by_layout)
    write_info(cfg, "complete")
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger

from ._config import SynthConfig

INFO_FILE = "synth_info.json"
FORMAT_VERSION = 1


class OutputDirError(FileExistsError):
    """The output directory already holds something else than the requested dataset."""


def read_info(out: Path) -> dict | None:
    try:
        return json.loads((out / INFO_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _expected(cfg: SynthConfig) -> dict:
    return {"format_version": FORMAT_VERSION, "layout": cfg.layout, "settings": cfg.fingerprint()}


def prepare_output(cfg: SynthConfig, owned: tuple[str, ...]) -> None:
    """Create ``cfg.out`` or check that it may be written into (see module docstring)."""
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"--out {out} exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    info = read_info(out)
    expected = _expected(cfg)
    if info is not None and all(info.get(k) == v for k, v in expected.items()):
        logger.info("%s holds this same dataset (%s); regenerating it", out, info.get("status"))
        return
    what = (
        f"a different dataset (layout {info.get('layout')}, settings {info.get('settings')})"
        if info is not None
        else f"files not written by train.synth (no {INFO_FILE})"
    )
    if not cfg.overwrite:
        raise OutputDirError(
            f"--out {out} is not empty and holds {what}; choose an empty directory or pass "
            "--overwrite to replace it"
        )
    for name in (*owned, INFO_FILE):
        path = out / name
        if path.is_dir():
            logger.warning("--overwrite: removing %s", path)
            shutil.rmtree(path)
        elif path.exists():
            logger.warning("--overwrite: removing %s", path)
            path.unlink()


def write_info(cfg: SynthConfig, status: str, **extra) -> None:
    record = {**_expected(cfg), "status": status, **extra}
    atomic_write(cfg.out / INFO_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
