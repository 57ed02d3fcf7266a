"""Rebuilding models from checkpoints: any encoder, a teacher (ours or Sample4Geo's), --init.

Usage::

    from train.loop import load_encoder
    model, cfg, sidecar = load_encoder(run / "student_ground.pt")   # eval mode, fp32
    teacher, sidecar = load_teacher("sample4geo_cvusa.pth", name="convnext_base")  # published
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from d4g_edge.config import EncoderConfig
from d4g_edge.log import logger
from train.loop.checkpoint import (
    CheckpointError,
    check_digest,
    encoder_config,
    read_sidecar,
    read_state_dict,
    sidecar_path,
)

if TYPE_CHECKING:
    from train.models.teachers import Teacher

__all__ = ["apply_state_dict", "init_student", "load_encoder", "load_teacher"]


def _diff(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between ``state`` and ``model``'s keys and shapes."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {want[k]}"
        for k in want
        if k in state and tuple(state[k].shape) != want[k]
    ]
    out = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            out.append(f"{len(items)} {label} (first: {', '.join(items[:3])})")
    return out


def apply_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, name: str) -> None:
    """Load ``state`` strictly into ``model``; a mismatch names ``name`` and the differing keys."""
    if problems := _diff(model, state):
        hint = ""
        if state and not any(k.startswith("model.") for k in state):
            hint = " The file looks like a bare backbone; expected 'model.*' + 'logit_scale'."
        elif "logit_scale" in state and (fits := _matching_teachers(state)):
            hint = f" Its keys fit registered teacher(s) {fits}: pass name={fits[0]!r}."
        raise CheckpointError(
            f"checkpoint does not fit model {name!r}: {'; '.join(problems)}.{hint}"
        )
    model.load_state_dict(state, strict=True)


def _matching_teachers(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Registered teachers whose keys and shapes equal ``state``'s (built on the meta device)."""
    from train.models import create_model, list_models

    shapes = {k: tuple(v.shape) for k, v in state.items()}
    fits = []
    for name in list_models("teacher"):
        with torch.device("meta"):
            model = create_model("teacher", name)
        if {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes:
            fits.append(name)
    return fits


def load_encoder(path: str | Path) -> tuple[nn.Module, EncoderConfig, dict[str, Any]]:
    """Rebuild any of our encoders (teacher or student) in eval mode, with fp32 weights.

    Returns ``(model, config, sidecar)``: the sidecar as a format-2 dict (format 1 upgraded).
    Weights stored in fp16 load into the fp32 model (``load_state_dict`` casts).
    """
    path = Path(path)
    sidecar = read_sidecar(path)
    if sidecar is None:
        raise CheckpointError(
            f"{path} has no sidecar {sidecar_path(path).name}, so what it encodes is unknown; "
            "a published Sample4Geo teacher loads with load_teacher(path, name='convnext_base')"
        )
    cfg = encoder_config(sidecar, source=str(sidecar_path(path)))
    state = read_state_dict(path)
    check_digest(path, sidecar)
    model = _build_from_config(cfg, path)
    apply_state_dict(model, state, name=cfg.model_id)
    return model.float().eval(), cfg, sidecar


def _build_from_config(cfg: EncoderConfig, path: Path) -> nn.Module:
    """``create_model`` with the sidecar's ``encoder.model_id`` and ``model_kwargs``; a name or
    kwarg this version does not know is a CheckpointError naming the sidecar, not a
    KeyError/TypeError traceback."""
    from train.models import create_model
    from train.models.registry import UnknownModelError

    kwargs = dict(cfg.model_kwargs)
    try:
        return create_model(cfg.kind, cfg.model_id, **kwargs)
    except UnknownModelError as err:
        raise CheckpointError(f"{sidecar_path(path)} names an unknown model: {err}") from None
    except TypeError as err:
        raise CheckpointError(
            f"{sidecar_path(path)}: {cfg.kind} {cfg.model_id!r} does not accept its model_kwargs "
            f"{sorted(kwargs)} ({err}); the checkpoint was written by another version"
        ) from None


def load_teacher(
    path: str | Path, *, name: str | None = None, preset: str | None = None
) -> tuple[Teacher, dict[str, Any] | None]:
    """Rebuild a teacher from ``path`` (ours or a published Sample4Geo ``.pth``), in eval mode.

    Args:
        name: registry name; required when there is no sidecar (a Sample4Geo release is
            ``convnext_base``), else it must agree with the sidecar's.
        preset: if given and the sidecar records a preset, they must agree.

    Returns:
        ``(teacher, sidecar)``; ``sidecar`` is ``None`` for a file without one.
    """
    from train.models import create_model

    path = Path(path)
    sidecar = read_sidecar(path)
    if sidecar is None:
        if name is None:
            fits = _matching_teachers(read_state_dict(path))
            hint = f" (its keys fit {fits})" if fits else ""
            raise CheckpointError(
                f"{path} has no sidecar {sidecar_path(path).name}, so its architecture is "
                f"unknown: pass name=...{hint}; a published Sample4Geo checkpoint is "
                "name='convnext_base'"
            )
        teacher = create_model("teacher", name)
        apply_state_dict(teacher, read_state_dict(path), name=name)
        return teacher.eval(), None
    cfg = encoder_config(sidecar, source=str(sidecar_path(path)))
    if cfg.kind != "teacher":
        raise CheckpointError(f"{path} holds a {cfg.view} {cfg.kind}, not a teacher")
    if name is not None and name != cfg.model_id:
        raise CheckpointError(f"{path} was saved as {cfg.model_id!r}, not {name!r}")
    if preset is not None and sidecar.get("preset") not in (None, preset):
        raise CheckpointError(
            f"{path} was trained with preset {sidecar['preset']!r}, not {preset!r}; pick the "
            "matching preset (input sizes and models differ between presets)"
        )
    teacher, _, sidecar = load_encoder(path)
    return teacher, sidecar


def init_student(
    student: nn.Module, path: str | Path, *, view: str, teacher_sha256: str | None
) -> None:
    """Load an earlier student's weights into ``student`` (``train.distill --init``).

    The file must hold a ``view`` student of the same architecture and input size distilled
    from the same teacher: the weights of another teacher's student regress another space.
    """
    path = Path(path)
    sidecar = read_sidecar(path)
    cfg = None if sidecar is None else encoder_config(sidecar, source=str(sidecar_path(path)))
    if cfg is None or cfg.kind != "student":
        raise CheckpointError(
            f"--init {path}: expected a student checkpoint written by train.distill "
            f"(student_{view}.pt with its .json sidecar)"
        )
    if cfg.view != view:
        raise CheckpointError(
            f"--init {path} holds the {cfg.view} student, this run trains the {view} one"
        )
    if teacher_sha256 and cfg.teacher_sha256 not in (None, teacher_sha256):
        raise CheckpointError(
            f"--init {path} was distilled from teacher {str(cfg.teacher_sha256)[:12]}…, "
            f"this run's teacher is {teacher_sha256[:12]}…; distil from the same teacher"
        )
    size = list(student.input_size)
    if list(cfg.input().tensor_shape) != size:
        raise CheckpointError(
            f"--init {path} was built for input {list(cfg.input().tensor_shape)}, this run for "
            f"{size}"
        )
    check_digest(path, sidecar)
    apply_state_dict(student, read_state_dict(path), name=cfg.model_id)
    logger.info("initialised the %s student from %s (epoch %s)", view, path, sidecar.get("epoch"))
