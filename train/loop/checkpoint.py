"""Weights files in Sample4Geo's format and their JSON sidecar (``d4g-edge/checkpoint/2``).

A weights file holds only a flat ``{name: tensor}`` state_dict (for teachers ``model.*`` +
``logit_scale``, byte-compatible with Sample4Geo), so anything reads it with
``torch.load(weights_only=True)``. Next to it, ``<file>.json`` holds::

    {"format": "d4g-edge/checkpoint/2", "sha256": <of the weights file>,
     "encoder": EncoderConfig.to_dict(), ...training-only facts (preset, dataset, epoch, ...)}

The SHA-256 ties the sidecar to its file, so a sidecar can never silently describe another
one. Sidecars of format 1 are upgraded on read by :func:`train.loop.legacy.upgrade_sidecar`.

Usage::

    from train.loop.checkpoint import config_for, save_checkpoint, read_sidecar
    cfg = config_for(teacher, kind="teacher", inputs={"ground": ViewInput((64, 256))})
    save_checkpoint(run / "teacher.pt", teacher, cfg, extra={"epoch": 7, "metrics": {...}})
    sidecar = read_sidecar(run / "teacher.pt")      # format 2, whatever was on disk
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from d4g_edge.config import ConfigError, EncoderConfig, ViewInput
from d4g_edge.fileio import atomic_write, sha256_file
from d4g_edge.log import logger
from train.loop.checkpoint_format import CHECKPOINT_FORMAT, CheckpointError
from train.loop.distributed import unwrap
from train.loop.legacy import upgrade_sidecar

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "check_digest",
    "config_for",
    "encoder_config",
    "read_sidecar",
    "read_state_dict",
    "save_checkpoint",
    "sidecar_path",
    "torch_bytes",
]

_RESERVED = ("format", "sha256", "encoder")
# Wrappers whose prefixes we strip: DDP/DataParallel ("module.") and torch.compile ("_orig_mod.").
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def torch_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` as bytes (for :func:`d4g_edge.fileio.atomic_write`)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def config_for(
    model: nn.Module, *, kind: str, inputs: Mapping[str, ViewInput], **fields: Any
) -> EncoderConfig:
    """The EncoderConfig of one of our models (teacher or student) with the given inputs.

    Registry name, architecture kwargs (students' factory kwargs, teachers' timm ones),
    embedding size and normalisation come from the model itself; ``fields`` sets the rest
    (``teacher_centre``, ``teacher_model``, ``teacher_sha256``).
    """
    model = unwrap(model)
    return EncoderConfig(
        model_id=str(model.name),
        kind=kind,
        inputs=inputs,
        embed_dim=int(model.embed_dim),
        # students record their factory kwargs as model_kwargs, teachers the timm ones
        model_kwargs=dict(
            getattr(model, "model_kwargs", None) or getattr(model, "timm_kwargs", {})
        ),
        mean=tuple(model.mean),
        std=tuple(model.std),
        **fields,
    )


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: EncoderConfig,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model``'s state_dict to ``path`` and the sidecar to ``<path>.json``.

    The sidecar holds ``config`` (its ``weights_sha256`` set to the file's SHA-256) and the
    training-only facts in ``extra`` (which must not use the keys ``format``, ``sha256`` or
    ``encoder``; NaN/inf values are stored as null). ``extra`` itself is not modified.
    """
    path = Path(path)
    extra = dict(extra or {})
    if clash := [k for k in _RESERVED if k in extra]:
        raise ValueError(f"extra must not set the sidecar's own key(s) {clash}; drop them")
    state = {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
    weights = torch_bytes(state)
    digest = hashlib.sha256(weights).hexdigest()
    sidecar = {
        **_finite(extra, "extra"),
        "format": CHECKPOINT_FORMAT,
        "sha256": digest,
        "encoder": config.replace(weights_sha256=digest).to_dict(),
    }
    try:
        text = json.dumps(sidecar, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"checkpoint metadata must be JSON-serialisable (str/number/list/dict; model kwargs "
            f"as strings, e.g. norm_layer='batchnorm2d'): {err}"
        ) from err
    atomic_write(path, weights)
    atomic_write(sidecar_path(path), text + "\n")
    logger.info("saved %s checkpoint %s (%.1f MB)", config.model_id, path, len(weights) / 1e6)
    return path


def _finite(value: Any, where: str) -> Any:
    """``value`` with NaN/inf floats as ``None``: strict JSON has no NaN, and a diverged or
    undefined metric (e.g. a metre error without GPS) must not make the save fail."""
    if isinstance(value, float) and not math.isfinite(value):
        logger.warning("checkpoint metadata %s is %s; stored as null", where, value)
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_sidecar(path: str | Path) -> dict[str, Any] | None:
    """The sidecar ``<path>.json`` in format 2 (format 1 is upgraded), or ``None`` if absent."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{sidecar}:{err.lineno}: not valid JSON ({err.msg}); delete or repair the sidecar"
        ) from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{sidecar}: expected a JSON object, got {type(meta).__name__}")
    meta = upgrade_sidecar(meta, source=str(sidecar))
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{sidecar}: unknown format {meta.get('format')!r}; this version reads "
            f"{CHECKPOINT_FORMAT} (and d4g-edge/checkpoint/1); upgrade d4g-edge"
        )
    return meta


def encoder_config(sidecar: Mapping[str, Any], *, source: str) -> EncoderConfig:
    """The EncoderConfig in a format-2 sidecar; a malformed one is a CheckpointError."""
    try:
        return EncoderConfig.from_dict(sidecar.get("encoder"), source=f"{source} encoder")
    except ConfigError as err:
        raise CheckpointError(f"{err}; re-save the checkpoint with this version") from err


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a flat ``{name: tensor}`` state_dict with ``weights_only=True``.

    Accepts a top-level ``{"state_dict": {...}}`` wrapper, strips the ``module.`` prefix of
    DDP (and ``_orig_mod.`` of torch.compile) and ignores non-tensor entries (e.g. a stray
    ``epoch`` or ``meta``) with a warning: they cannot be weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError for non-zip/corrupt files, ...
        raise CheckpointError(
            f"{path} is not a plain state_dict loadable with torch.load(weights_only=True) "
            f"({_load_failure(err)}). If it is a pickled model you trust, re-save it with "
            "torch.save(model.state_dict(), path)"
        ) from err
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, expected a state_dict")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if dropped := sorted(str(k) for k in obj if k not in state):
        logger.warning("%s: ignoring non-tensor entries %s", path, dropped[:5])
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _load_failure(err: Exception) -> str:
    """The specific reason inside torch's long weights_only error text."""
    text = str(err)
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n\n|$)", text, re.DOTALL)
    return (found.group(1) if found else text.strip().splitlines()[0]).strip()


def check_digest(path: str | Path, sidecar: Mapping[str, Any]) -> None:
    """Refuse weights that are not the file the sidecar was written for."""
    digest = sidecar.get("sha256")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        # Without it, weights swapped under an intact sidecar would load unnoticed.
        raise CheckpointError(
            f"{sidecar_path(path)} has no valid 'sha256' of the weights (got {digest!r}), so "
            f"{Path(path).name} cannot be checked against it; re-save the checkpoint with "
            "train.loop.save_checkpoint"
        )
    if digest != sha256_file(path):
        raise CheckpointError(
            f"{path} does not match the SHA-256 in its sidecar (the weights were replaced "
            "after saving); save the checkpoint again"
        )
