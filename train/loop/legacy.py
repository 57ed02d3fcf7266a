"""The one converter from old checkpoint sidecars (``d4g-edge/checkpoint/1``) to format 2.

Format 1 kept the encoder's facts as loose top-level keys (``model``, ``model_kwargs``,
``embed_dim``, ``mean``, ``std``, ``sat_size``, ``ground_size``, ``sat_polar``, and for
students ``view``, ``input_size``, ``teacher_*``); format 2 holds them as one
:class:`d4g_edge.config.EncoderConfig` under ``encoder``. Runs started by the old code keep
loading: :func:`train.loop.checkpoint.read_sidecar` upgrades every format-1 sidecar it reads.

Usage::

    from train.loop.legacy import upgrade_sidecar
    sidecar = upgrade_sidecar(json.loads(text), source="runs/t/teacher.pt.json")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from d4g_edge.config import IMAGENET_MEAN, IMAGENET_STD, ConfigError, EncoderConfig, ViewInput
from train.loop.checkpoint_format import CHECKPOINT_FORMAT, CheckpointError

__all__ = ["FORMAT_1", "upgrade_sidecar"]

FORMAT_1 = "d4g-edge/checkpoint/1"
# Format-1 keys that describe the encoder; everything else is a training-only fact.
_ENCODER_KEYS_1 = (
    "format", "model", "model_kwargs", "embed_dim", "mean", "std", "sha256", "kind", "view",
    "input_size", "sat_size", "ground_size", "sat_polar", "teacher_model", "teacher_sha256",
    "teacher_centre",
)  # fmt: skip


def upgrade_sidecar(meta: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """``meta`` in format 2: a format-1 sidecar is converted, any other is returned as is.

    A format-1 student's per-view ``teacher_centre`` becomes its own view's centre in the
    config and, whole, the training fact ``teacher_centres`` (comparing a student with the
    teacher's other view needs that view's centre).
    """
    if meta.get("format") != FORMAT_1:
        return dict(meta)
    try:
        config = _config_1(meta)
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{source}: a {FORMAT_1} sidecar that cannot be converted ({err!s}); save the "
            f"model again with train.loop.save_checkpoint to write {CHECKPOINT_FORMAT}"
        ) from err
    facts = {k: v for k, v in meta.items() if k not in _ENCODER_KEYS_1}
    if config.kind == "student" and meta.get("teacher_centre"):
        facts["teacher_centres"] = dict(meta["teacher_centre"])
    return {
        **facts,
        "format": CHECKPOINT_FORMAT,
        "sha256": meta.get("sha256"),
        "encoder": config.to_dict(),
    }


def _config_1(meta: Mapping[str, Any]) -> EncoderConfig:
    kind = meta.get("kind", "teacher")
    sat = int(meta["sat_size"]) if meta.get("sat_size") else None
    polar = meta.get("sat_polar") or None
    if kind == "student":
        view = meta["view"]
        size = tuple(int(v) for v in meta["input_size"])
        if view == "satellite" and polar:
            inputs = {view: ViewInput(size=(sat, sat), polar=size)}
        elif view == "satellite" and sat:
            inputs = {view: ViewInput(size=(sat, sat))}
        else:
            inputs = {view: ViewInput(size=size)}
        centres = meta.get("teacher_centre") or {}
        centre = centres.get(view)
    elif kind == "teacher":
        inputs = {}
        if meta.get("ground_size"):
            inputs["ground"] = ViewInput(size=meta["ground_size"])
        if sat:
            inputs["satellite"] = ViewInput(size=(sat, sat), polar=polar)
        centre = None
    else:
        raise ValueError(f"kind {kind!r} is neither 'teacher' nor 'student'")
    return EncoderConfig(
        model_id=str(meta["model"]),
        kind=kind,
        inputs=inputs,
        embed_dim=int(meta["embed_dim"]),
        model_kwargs=meta.get("model_kwargs") or {},
        mean=meta.get("mean") or IMAGENET_MEAN,
        std=meta.get("std") or IMAGENET_STD,
        teacher_centre=centre,
        teacher_model=meta.get("teacher_model"),
        teacher_sha256=meta.get("teacher_sha256"),
        weights_sha256=meta.get("sha256"),
    )
