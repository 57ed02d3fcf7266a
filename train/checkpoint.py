"""Model checkpoints in Sample4Geo's format plus a JSON sidecar, and resumable training state.

Usage::

    from train.checkpoint import save_checkpoint, load_teacher

    save_checkpoint(run / "teacher.pt", teacher, meta={"preset": "edge-s", "dataset": "cvusa",
                    "sat_size": 128, "ground_size": [64, 256], "epoch": 7, "metrics": {...}})
    teacher, meta = load_teacher(run / "teacher.pt")              # name read from the sidecar
    teacher, meta = load_teacher("sample4geo_cvusa.pth", name="convnext_base")  # published file

    save_training_state(run / "last.ckpt", {"model": model, "optimizer": opt, "epoch": 7,
                        "scheduler": sched, "sampler": sampler, "rng": capture_rng_state()})
    state = load_training_state(run / "last.ckpt", into={"model": model, "optimizer": opt,
                                "scheduler": sched, "sampler": sampler})
    restore_rng_state(state["rng"]); start_epoch = state["epoch"] + 1

A weights file holds only a flat ``{name: tensor}`` state_dict (for teachers ``model.*`` +
``logit_scale``, byte-compatible with Sample4Geo), so anything reads it with
``torch.load(weights_only=True)``; metadata lives next to it in ``<file>.json`` together with
the weights' SHA-256, so a sidecar can never silently describe another file. Every file is
loaded with ``weights_only=True`` — resume files included: their content is checked on save
to consist of tensors and plain Python values only (no pickled objects), so no file this
project reads can execute code.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from d4g_edge._log import logger

if TYPE_CHECKING:
    from train.models.teachers import Teacher

__all__ = [
    "CheckpointError",
    "apply_state_dict",
    "capture_rng_state",
    "load_encoder",
    "load_teacher",
    "load_training_state",
    "read_checkpoint_meta",
    "read_state_dict",
    "restore_rng_state",
    "save_checkpoint",
    "save_training_state",
]

CHECKPOINT_FORMAT = "d4g-edge/checkpoint/1"
TRAINING_STATE_FORMAT = "d4g-edge/training-state/1"
_RESERVED = ("format", "model", "model_kwargs", "embed_dim", "mean", "std", "sha256")
# Wrappers whose prefixes we strip: DDP/DataParallel ("module.") and torch.compile ("_orig_mod.").
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says what is wrong and the fix."""


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP/DataParallel and torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_checkpoint(path: str | Path, model: nn.Module, *, meta: Mapping[str, Any]) -> Path:
    """Write ``model``'s state_dict to ``path`` and ``meta`` (JSON) to ``<path>.json``.

    The registry name comes from ``model.name`` (teachers have it) or ``meta["model"]``; the
    keys this function adds (``format``, ``model``, ``model_kwargs``, ``embed_dim``, ``mean``,
    ``std``, ``sha256``) must not contradict ``meta``. ``meta`` itself is not modified.
    """
    path = Path(path)
    model = _unwrap(model)
    name = getattr(model, "name", None) or meta.get("model")
    if not name:
        raise ValueError("cannot tell which registered model this is: pass meta={'model': NAME}")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    weights = _torch_bytes(state)
    ours = {
        "format": CHECKPOINT_FORMAT,
        "model": name,
        # students record their factory kwargs as model_kwargs, teachers the timm ones
        "model_kwargs": dict(
            getattr(model, "model_kwargs", None) or getattr(model, "timm_kwargs", {})
        ),
        "embed_dim": getattr(model, "embed_dim", None),
        "mean": list(getattr(model, "mean", ())) or None,
        "std": list(getattr(model, "std", ())) or None,
        "sha256": hashlib.sha256(weights).hexdigest(),
    }
    clash = [k for k in _RESERVED if k in meta and meta[k] != ours[k] and k != "format"]
    if clash:
        raise ValueError(f"meta contradicts the model for key(s) {clash}; drop them from meta")
    sidecar = _finite({**meta, **ours}, "meta")
    try:
        text = json.dumps(sidecar, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"checkpoint metadata must be JSON-serialisable (str/number/list/dict; model kwargs "
            f"as strings, e.g. norm_layer='batchnorm2d'): {err}"
        ) from err
    _atomic_write(path, weights)
    _atomic_write(_sidecar_path(path), (text + "\n").encode())
    logger.info("saved %s checkpoint %s (%.1f MB)", name, path, len(weights) / 1e6)
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


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_checkpoint_meta(path: str | Path) -> dict[str, Any] | None:
    """The sidecar ``<path>.json`` as a dict, or ``None`` when there is none."""
    sidecar = _sidecar_path(Path(path))
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
    return meta


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


def load_teacher(
    path: str | Path, *, name: str | None = None, preset: str | None = None
) -> tuple[Teacher, dict[str, Any]]:
    """Rebuild a teacher from ``path`` (ours or a published Sample4Geo ``.pth``), in eval mode.

    Args:
        name: registry name; required when there is no sidecar (a Sample4Geo release is
            ``convnext_base``), else it must agree with the sidecar's.
        preset: if given and the sidecar records a preset, they must agree.

    Returns:
        ``(teacher, meta)``: meta is the sidecar (``{"model": name}`` without one).
    """

    path = Path(path)
    state = read_state_dict(path)
    meta = read_checkpoint_meta(path)
    if meta is None:
        if name is None:
            fits = _matching_teachers(state)
            hint = f" (its keys fit {fits})" if fits else ""
            raise CheckpointError(
                f"{path} has no sidecar {_sidecar_path(path).name}, so its architecture is "
                f"unknown: pass name=...{hint}; a published Sample4Geo checkpoint is "
                "name='convnext_base'"
            )
        meta = {"model": name}
    else:
        if name is not None and name != meta.get("model"):
            raise CheckpointError(f"{path} was saved as {meta.get('model')!r}, not {name!r}")
        if preset is not None and meta.get("preset") not in (None, preset):
            raise CheckpointError(
                f"{path} was trained with preset {meta['preset']!r}, not {preset!r}; pick the "
                "matching preset (input sizes and models differ between presets)"
            )
        _check_digest(path, meta)
        name = str(meta.get("model"))
    teacher = _build_from_sidecar("teacher", name, meta, path)
    apply_state_dict(teacher, state, name=name)
    return teacher.eval(), meta


def load_encoder(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild any of our encoders (teacher or student, from the sidecar's ``kind``), in eval
    mode. The meta gains ``sizes``: the (H, W) input each view is embedded at."""

    path = Path(path)
    meta = read_checkpoint_meta(path)
    if meta is None or meta.get("kind", "teacher") == "teacher":
        teacher, meta = load_teacher(path)
        sizes = {}
        if meta.get("sat_size"):
            sizes["satellite"] = (int(meta["sat_size"]),) * 2
        if meta.get("ground_size"):
            sizes["ground"] = tuple(int(v) for v in meta["ground_size"])
        return teacher, {**meta, "sizes": sizes}
    # A satellite student reads square tiles of ``sat_size`` (polar-transformed to its input
    # where ``sat_polar`` is set); a ground student reads panoramas at its input size.
    if meta.get("kind") != "student" or "view" not in meta or "input_size" not in meta:
        raise CheckpointError(
            f"{_sidecar_path(path)} describes neither a teacher nor a student (kind "
            f"{meta.get('kind')!r}, view {meta.get('view')!r}); re-save it with train.distill"
        )
    _check_digest(path, meta)
    student = _build_from_sidecar("student", str(meta["model"]), meta, path)
    apply_state_dict(student, read_state_dict(path), name=str(meta["model"]))
    size = tuple(int(v) for v in meta["input_size"])
    if meta["view"] == "satellite" and meta.get("sat_size"):
        size = (int(meta["sat_size"]),) * 2
    return student.eval(), {**meta, "sizes": {meta["view"]: size}}


def init_student(
    student: nn.Module, path: str | Path, *, view: str, teacher_sha256: str | None
) -> None:
    """Load an earlier student's weights into ``student`` (``train.distill --init``).

    The file must hold a ``view`` student of the same architecture and input size distilled
    from the same teacher: the weights of another teacher's student regress another space.
    """
    path = Path(path)
    meta = read_checkpoint_meta(path)
    if meta is None or meta.get("kind") != "student":
        raise CheckpointError(
            f"--init {path}: expected a student checkpoint written by train.distill "
            f"(student_{view}.pt with its .json sidecar)"
        )
    if meta.get("view") != view:
        raise CheckpointError(
            f"--init {path} holds the {meta.get('view')} student, this run trains the {view} one"
        )
    if teacher_sha256 and meta.get("teacher_sha256") not in (None, teacher_sha256):
        raise CheckpointError(
            f"--init {path} was distilled from teacher {str(meta['teacher_sha256'])[:12]}…, "
            f"this run's teacher is {teacher_sha256[:12]}…; distil from the same teacher"
        )
    size = list(student.input_size)
    if list(meta.get("input_size", size)) != size:
        raise CheckpointError(
            f"--init {path} was built for input {meta['input_size']}, this run for {size}"
        )
    _check_digest(path, meta)
    apply_state_dict(student, read_state_dict(path), name=str(meta.get("model")))
    logger.info("initialised the %s student from %s (epoch %s)", view, path, meta.get("epoch"))


def _build_from_sidecar(kind: str, name: str, meta: dict[str, Any], path: Path) -> nn.Module:
    """``create_model`` with the sidecar's name and kwargs; a name or kwarg this version does
    not know is a CheckpointError naming the sidecar, not a KeyError/TypeError traceback."""
    from train.models import create_model
    from train.models.registry import UnknownModelError

    kwargs = meta.get("model_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{_sidecar_path(path)}: model_kwargs must be an object")
    try:
        return create_model(kind, name, **kwargs)
    except UnknownModelError as err:
        raise CheckpointError(f"{_sidecar_path(path)} names an unknown model: {err}") from None
    except TypeError as err:
        raise CheckpointError(
            f"{_sidecar_path(path)}: {kind} {name!r} does not accept its model_kwargs "
            f"{sorted(kwargs)} ({err}); the checkpoint was written by another version"
        ) from None


def _check_digest(path: Path, meta: dict[str, Any]) -> None:
    digest = meta.get("sha256")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        # Without it, weights swapped under an intact sidecar would load unnoticed.
        raise CheckpointError(
            f"{_sidecar_path(path)} has no valid 'sha256' of the weights (got {digest!r}), so "
            f"{path.name} cannot be checked against it; re-save the checkpoint with "
            "train.checkpoint.save_checkpoint"
        )
    if digest != _sha256(path):
        raise CheckpointError(
            f"{path} does not match the SHA-256 in its sidecar (the weights were replaced "
            "after saving); save the checkpoint again"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- resumable training state --------------------------------------------------------------


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
        obj = (_unwrap(obj) if isinstance(obj, nn.Module) else obj).state_dict()
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
    _atomic_write(path, _torch_bytes(payload))
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
        target = _unwrap(obj) if isinstance(obj, nn.Module) else obj
        target.load_state_dict(payload[key])
    return payload
