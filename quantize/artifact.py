"""A quantized student on disk: a ``torch.export`` program (``.pt2``) plus its EncoderConfig.

``quantize.qat`` writes ``RUN_DIR/student_{view}_{scheme}.pt2`` (the converted graph, saved
with ``torch.export.save``) and ``<file>.json`` (the EncoderConfig with ``quantization`` set);
``export.executorch --qat RUN_DIR`` loads it and lowers it. Both files are written under
temporary names and renamed into place, the program last-but-one and the sidecar last, so a
reader that finds the sidecar finds a complete program.

Usage::

    path = save_quantized(run_dir, quantized_graph, cfg.replace(quantization="int8"))
    program, cfg = load_quantized(run_dir, view="ground")   # ExportedProgram, EncoderConfig
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.export import Dim

from d4g_edge.config import ConfigError, EncoderConfig
from quantize.common import UserError, atomic_artifact, write_config_sidecar
from quantize.pt2e import MAX_BATCH


def artifact_name(view: str, scheme: str) -> str:
    return f"student_{view}_{scheme}.pt2"


def save_quantized(run_dir: str | Path, module: torch.nn.Module, cfg: EncoderConfig) -> Path:
    """Export ``module`` (dynamic batch) and save it with ``cfg``'s sidecar; returns the path."""
    h, w = cfg.input().tensor_shape
    example = (torch.zeros(2, 3, h, w),)
    program = torch.export.export(
        module, example, dynamic_shapes=({0: Dim("batch", min=1, max=MAX_BATCH)},)
    )
    path = Path(run_dir) / artifact_name(cfg.view, cfg.quantization)
    with atomic_artifact(path) as tmp:  # same suffix: torch.export.save wants the extension
        torch.export.save(program, tmp)
    write_config_sidecar(path, cfg)
    return path


def find_quantized(run_dir: str | Path, view: str) -> Path:
    """The one ``student_{view}_*.pt2`` of a ``quantize.qat`` run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"--qat {run_dir}: no such folder; pass a quantize.qat --out folder")
    found = sorted(run_dir.glob(f"student_{view}_*.pt2"))
    if len(found) != 1:
        have = sorted(p.name for p in run_dir.glob("*.pt2")) or "no .pt2 files"
        raise UserError(
            f"--qat {run_dir}: expected one student_{view}_<scheme>.pt2, found {have}; run "
            f"python -m quantize.qat --student <{view} student> --out {run_dir} first"
        )
    return found[0]


def load_quantized(
    run_dir_or_file: str | Path, view: str
) -> tuple[torch.export.ExportedProgram, EncoderConfig]:
    """The saved program and its config; a wrong view or missing sidecar is a UserError."""
    path = Path(run_dir_or_file)
    if not path.exists():
        raise UserError(
            f"{path}: no such folder or file; pass a quantize.qat --out folder (or its .pt2)"
        )
    path = find_quantized(path, view) if path.is_dir() else path
    sidecar = path.with_name(path.name + ".json")
    if not path.is_file() or not sidecar.is_file():
        raise UserError(f"{path} (and its .json sidecar) must both exist; rerun quantize.qat")
    try:
        cfg = EncoderConfig.from_dict(json.loads(sidecar.read_text()), source=str(sidecar))
    except (ConfigError, json.JSONDecodeError) as err:
        raise UserError(f"{sidecar}: {err}") from err
    if cfg.view != view:
        raise UserError(f"{path} holds the {cfg.view} student, not the {view} one")
    # The converted graph calls torchao's quantize/dequantize ops: register them first.
    import torchao.quantization.pt2e  # noqa: F401

    return torch.export.load(path), cfg
