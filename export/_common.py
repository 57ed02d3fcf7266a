"""Plumbing every exporter shares: the common flags, the source student, the embedded config,
artifact names and a timing/size log. The pieces ``quantize`` needs too (config JSON, SHA-256,
atomic writes, the dataclass -> CLI builder, the user-error type) live in
:mod:`quantize.common` (export imports quantize, never the reverse) and are re-exported here.

An exporter is a frozen dataclass (subclass of :class:`ExportConfig`) plus
``export(cfg) -> Path``; its ``__main__`` is ``run_cli(MyConfig, export, argv, __doc__)``,
so the command line is generated from the dataclass and cannot drift from the function.

Usage::

    src = load_source(cfg.view, cfg.checkpoint)            # eval fp32 model + EncoderConfig
    meta = artifact_config(src.cfg, cfg.quant)              # never mutates src.cfg
    path = artifact_path(cfg.out, cfg.view, cfg.quant, "onnx")
    with atomic_artifact(path) as tmp:                      # removed unless the block succeeds
        write(tmp, config_json(meta)); verify(tmp)
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from d4g_edge.config import METADATA_KEY, VIEWS, EncoderConfig  # noqa: F401 (re-exported)
from d4g_edge.log import logger
from quantize import common
from quantize.common import (  # noqa: F401  (re-exported: the exporters' one import)
    UserError,
    atomic_artifact,
    build_parser,
    config_json,
    flag,
    sha256_file,
    write_config_sidecar,
)

DEFAULT_OUT = Path("artifacts")


# One user-error type for quantize/ and export/: every CLI exits 2 on it.
ExportError = UserError


class VerificationError(RuntimeError):
    """The artifact disagreed with the eager model in its own runtime (it was not kept)."""


@dataclass(frozen=True)
class ExportConfig:
    """The flags every exporter has; subclasses redefine ``quant`` with their choices."""

    view: str = field(metadata=flag("which student to export", VIEWS))
    checkpoint: Path | None = field(
        default=None,
        metadata=flag(
            "student checkpoint (.pt with .json sidecar); default: the committed "
            "weights/edge-s/student_{view}.pt (drone: weights/edge-s-drone/)"
        ),
    )
    quant: str = field(default="fp32", metadata=flag("precision", ("fp32",)))
    out: Path = field(
        default=DEFAULT_OUT, metadata=flag("output folder; the artifact is {view}_{quant}.{ext}")
    )
    verify_pairs: int = field(
        default=32, metadata=flag("held-out world pairs the artifact is verified on")
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ExportError(
                    f"{type(self).__name__}.{f.name} must be one of {list(choices)}, got {value!r}"
                )
        if self.verify_pairs < 2:
            raise ExportError(
                f"verify_pairs must be >= 2 (retrieval needs a gallery), got {self.verify_pairs}"
            )
        for name in ("checkpoint", "out"):  # the CLI gives Paths, Python callers may give str
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))


# ---- command line ---------------------------------------------------------------------------


def run_cli(
    cls: type,
    export_fn: Callable[[Any], Path],
    argv: Sequence[str] | None = None,
    description: str | None = None,
) -> int:
    """``main()`` of an exporter: flags -> ``cls`` -> ``export_fn``; prints the artifact path.

    User errors exit 2 with a message (no traceback); a failed verification exits 1.
    """
    path = common.run_cli(cls, export_fn, argv, description, failures=(VerificationError,))
    print(path)
    return 0


# ---- the source student and what the artifact embeds ----------------------------------------


@dataclass(frozen=True)
class Source:
    """The deployed eval fp32 student, its config (with ``weights_sha256``) and its file."""

    model: Any  # torch.nn.Module (typed loosely: importing this module needs no torch)
    cfg: EncoderConfig
    path: Path


def load_source(view: str, checkpoint: Path | None = None) -> Source:
    """Load ``checkpoint`` (default: the committed ``edge-s`` student of ``view``)."""
    from quantize.default_weights import MissingDefaultWeightsError, default_student
    from quantize.encoder_source import load_student
    from train.loop.checkpoint import CheckpointError

    try:
        path = Path(checkpoint) if checkpoint is not None else default_student(view)
    except MissingDefaultWeightsError as err:
        raise ExportError(str(err)) from None
    if not path.is_file():
        raise ExportError(
            f"checkpoint {path} does not exist; pass --checkpoint PATH to a "
            f"student_{view}.pt written by train.distill"
        )
    try:
        model, cfg = load_student(path, view)
    except CheckpointError as err:
        raise ExportError(f"{path}: {err}") from None
    return Source(model, cfg.replace(weights_sha256=sha256_file(path)), path)


def artifact_config(cfg: EncoderConfig, quant: str) -> EncoderConfig:
    """The config an artifact of precision ``quant`` embeds (a copy; ``cfg`` is untouched)."""
    return cfg.replace(quantization=quant)


# ---- files ----------------------------------------------------------------------------------


def artifact_path(out: Path, view: str, quant: str, ext: str) -> Path:
    """``out/{view}_{quant}.{ext}``, e.g. ``artifacts/ground_int8.onnx``."""
    return Path(out) / f"{view}_{quant}.{ext}"


def artifact_size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder (``.mlpackage``)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def logged_export(fn: Callable[..., Path]) -> Callable[..., Path]:
    """Log how long an ``export(cfg) -> Path`` took and how big its artifact is."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Path:
        start = time.perf_counter()
        path = fn(*args, **kwargs)
        logger.info(
            "wrote %s (%.2f MB) in %.1f s",
            path,
            artifact_size(path) / 1e6,
            time.perf_counter() - start,
        )
        return path

    return wrapper
