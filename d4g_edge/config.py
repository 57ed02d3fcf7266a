"""The encoder config: what a runtime needs to feed an encoder, written once, read once.

One frozen, numpy-only dataclass (timm's ``PretrainedCfg`` is the model) travels with every
encoder this project produces: checkpoint sidecars, exported artifacts (ONNX
``metadata_props``, Core ML ``user_defined_metadata``, ExecuTorch constant methods) and
bundles. Runtimes take preprocessing from it, never from constants.

A *student* serves one view; a *teacher* is shared by views (``inputs`` has one entry per
view it was trained on). Each view's input is an image resized to ``size`` (H, W) with
Pillow's bilinear filter, optionally polar-transformed around the tile centre to ``polar``
(H, W) (:mod:`d4g_edge.polar`) — around a point other than the centre when the encoder
was trained on re-centred tiles (``centre_step``) — then normalised with ``mean``/``std``
into NCHW float32.

Usage::

    from d4g_edge.config import EncoderConfig
    cfg = EncoderConfig.from_dict(json.loads(text))   # ConfigError names what is wrong
    cfg.view, cfg.input("ground").tensor_shape, cfg.embed_dim
    text = json.dumps(cfg.to_dict())
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from d4g_edge.errors import D4GEdgeError

SCHEMA_VERSION = 1
VIEWS = ("ground", "satellite", "drone")
KINDS = ("teacher", "student")
QUANTIZATIONS = ("fp32", "fp16", "int8", "int8-int4w", "pt2e-int8", "int8-weights")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# the key under which every artifact (ONNX metadata_props, Core ML user metadata) embeds its
# EncoderConfig; the runtime reads it, quantize/ and export/ write it
METADATA_KEY = "d4g_edge.encoder_config"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ConfigError(D4GEdgeError, ValueError):
    """An encoder config that is missing, malformed or from an unknown schema (a ValueError
    too, for code written before it was a :class:`D4GEdgeError`)."""


def _hw(value: Any, what: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{what} must be [height, width], got {value!r}") from err
    if h <= 0 or w <= 0 or [h, w] != [float(v) for v in value]:
        raise ConfigError(f"{what} must be two positive integers, got {value!r}")
    return h, w


@dataclass(frozen=True)
class ViewInput:
    """How one view's image becomes the encoder's input tensor."""

    size: tuple[int, int]  # (height, width) the decoded RGB image is resized to
    polar: tuple[int, int] | None = None  # then polar-transformed to this (height, width)
    # Off-centre recipe (polar views only): the encoder was trained on tiles re-centred on the
    # camera, so a reference set embeds each tile around several centres at most this many
    # tile sides apart (d4g_edge.polar.cell_centres); None = only the tile centre.
    centre_step: float | None = None
    # Rows kept before resizing, as fractions of the image height (top, bottom): a
    # full-sphere panorama (VIGOR) is cut to the band around the horizon a CVUSA panorama
    # shows, where the ground the satellite sees is resolved; None = the whole image.
    crop_rows: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _hw(self.size, "input size"))
        if self.crop_rows is not None:
            try:
                top, bottom = (float(v) for v in self.crop_rows)
            except (TypeError, ValueError) as err:
                raise ConfigError(
                    f"crop_rows must be [top, bottom], got {self.crop_rows!r}"
                ) from err
            if not 0.0 <= top < bottom <= 1.0:
                raise ConfigError(
                    f"crop_rows must be fractions 0 <= top < bottom <= 1, got {self.crop_rows!r}"
                )
            object.__setattr__(self, "crop_rows", (top, bottom))
        if self.polar is not None:
            object.__setattr__(self, "polar", _hw(self.polar, "polar shape"))
            if self.size[0] != self.size[1]:
                raise ConfigError(f"a polar transform needs a square tile, got size {self.size}")
        if self.centre_step is not None:
            step = self.centre_step
            if self.polar is None:
                raise ConfigError("centre_step applies to polar inputs only")
            if isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step <= 1:
                raise ConfigError(
                    f"centre_step must be a fraction of the tile in (0, 1], got {step!r}"
                )
            object.__setattr__(self, "centre_step", float(step))

    @property
    def tensor_shape(self) -> tuple[int, int]:
        """(height, width) of the tensor the network sees."""
        return self.polar or self.size

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "polar": list(self.polar) if self.polar else None,
            "centre_step": self.centre_step,
            "crop_rows": list(self.crop_rows) if self.crop_rows else None,
        }


@dataclass(frozen=True)
class EncoderConfig:
    """Everything a runtime needs to turn an image into this encoder's embedding."""

    model_id: str  # registry name (train.models), e.g. "fastervit_edge"
    kind: str  # "teacher" (shared by views) or "student" (one view)
    inputs: Mapping[str, ViewInput]  # view -> its input
    embed_dim: int
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # A student regresses normalise(t - centre) of its teacher's embeddings t; whoever compares
    # it with the teacher's raw embeddings subtracts the same centre (None: raw targets).
    teacher_centre: tuple[float, ...] | None = None
    teacher_model: str | None = None  # the teacher a student was distilled from
    teacher_sha256: str | None = None
    weights_sha256: str | None = None  # of the fp32 checkpoint the encoder came from
    quantization: str = "fp32"
    layout: str = "NCHW"
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ConfigError(
                f"encoder config schema {self.schema_version!r} is not the supported "
                f"{SCHEMA_VERSION}; upgrade d4g-edge, or re-export the artifact with this version"
            )
        if not isinstance(self.model_id, str) or not self.model_id:
            raise ConfigError(f"model_id must be a registry name, got {self.model_id!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {self.kind!r}")
        inputs = {}
        for view, spec in dict(self.inputs).items():
            if view not in VIEWS:
                raise ConfigError(f"unknown view {view!r} in inputs; views are {VIEWS}")
            inputs[view] = spec if isinstance(spec, ViewInput) else _view_input(spec, view)
        if not inputs:
            raise ConfigError("inputs must describe at least one view")
        if self.kind == "student" and len(inputs) != 1:
            raise ConfigError(f"a student serves one view, got inputs for {sorted(inputs)}")
        object.__setattr__(self, "inputs", MappingProxyType(inputs))
        object.__setattr__(self, "model_kwargs", MappingProxyType(dict(self.model_kwargs)))
        if not isinstance(self.embed_dim, int) or self.embed_dim <= 0:
            raise ConfigError(f"embed_dim must be a positive integer, got {self.embed_dim!r}")
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise ConfigError(f"{name} needs 3 finite values, got {values}")
            object.__setattr__(self, name, values)
        if min(self.std) <= 0:
            raise ConfigError(f"std must be positive, got {self.std}")
        if self.teacher_centre is not None:
            centre = tuple(float(v) for v in self.teacher_centre)
            if len(centre) != self.embed_dim or not all(math.isfinite(v) for v in centre):
                raise ConfigError(
                    f"teacher_centre needs {self.embed_dim} finite values, got {len(centre)}"
                )
            object.__setattr__(self, "teacher_centre", centre)
        for name in ("teacher_sha256", "weights_sha256"):
            value = getattr(self, name)
            if value is not None and not _SHA256.match(str(value)):
                raise ConfigError(f"{name} must be 64 lowercase hex digits, got {value!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(
                f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}"
            )
        if self.layout != "NCHW":
            raise ConfigError(f"layout must be 'NCHW', got {self.layout!r}")

    # ---- views ---------------------------------------------------------------------------

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    @property
    def view(self) -> str:
        """The one view a student serves (a teacher has several: use :meth:`input`)."""
        if len(self.inputs) != 1:
            raise ConfigError(
                f"the {self.model_id} {self.kind} serves views {self.views}; name one"
            )
        return next(iter(self.inputs))

    def input(self, view: str | None = None) -> ViewInput:
        """The input spec of ``view`` (default: the student's only view)."""
        view = self.view if view is None else view
        if view not in self.inputs:
            raise ConfigError(
                f"the {self.model_id} {self.kind} has no {view!r} input; it serves {self.views}"
            )
        return self.inputs[view]

    def replace(self, **changes: Any) -> EncoderConfig:
        """A copy with ``changes`` (configs are frozen; never mutate a shared one)."""
        return dataclasses.replace(self, **changes)

    # ---- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; ``from_dict(to_dict())`` round-trips exactly."""
        return {
            "schema_version": self.schema_version,
            "model_id": self.model_id,
            "kind": self.kind,
            "model_kwargs": dict(self.model_kwargs),
            "inputs": {view: spec.to_dict() for view, spec in self.inputs.items()},
            "embed_dim": self.embed_dim,
            "mean": list(self.mean),
            "std": list(self.std),
            "teacher_centre": list(self.teacher_centre) if self.teacher_centre else None,
            "teacher_model": self.teacher_model,
            "teacher_sha256": self.teacher_sha256,
            "weights_sha256": self.weights_sha256,
            "quantization": self.quantization,
            "layout": self.layout,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "encoder config") -> EncoderConfig:
        """Read a dict written by :meth:`to_dict`; missing or unknown keys are a ConfigError."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if _is_required(f)}
        missing, unknown = sorted(required - set(data)), sorted(set(data) - fields)
        if missing or unknown:
            parts = [f"missing keys {missing}"] if missing else []
            parts += [f"unknown keys {unknown}"] if unknown else []
            raise ConfigError(
                f"{source}: {' and '.join(parts)} (schema {SCHEMA_VERSION} expects "
                f"{sorted(fields)}); was it written by another d4g-edge version?"
            )
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"{source}: schema_version {version!r} is not the supported {SCHEMA_VERSION}; "
                "upgrade d4g-edge or re-export with this version"
            )
        inputs = data["inputs"]
        if not isinstance(inputs, Mapping):
            raise ConfigError(f"{source}: inputs must map view -> {{size, polar}}, got {inputs!r}")
        try:
            return cls(**{**data, "inputs": {v: _view_input(s, v) for v, s in inputs.items()}})
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{source}: {err}") from err


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _view_input(spec: Any, view: str) -> ViewInput:
    keys = {"size", "polar", "centre_step", "crop_rows"}
    if not isinstance(spec, Mapping) or "size" not in spec or set(spec) - keys:
        raise ConfigError(
            f"inputs[{view!r}] must be {{'size': [H, W], 'polar': [H, W] | null, "
            "'centre_step': float | null, 'crop_rows': [top, bottom] | null}"
        )
    return ViewInput(
        size=spec["size"],
        polar=spec.get("polar"),
        centre_step=spec.get("centre_step"),
        crop_rows=spec.get("crop_rows"),
    )
