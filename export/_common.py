"""Plumbing every exporter shares: config dataclass -> CLI, the source student, the embedded
config, atomic artifact writes and a timing/size log.

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

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from d4g_edge import logger
from d4g_edge.config import ConfigError, EncoderConfig

METADATA_KEY = "d4g_edge.encoder_config"  # the key every artifact embeds the config under
VIEWS = ("ground", "satellite")
DEFAULT_OUT = Path("artifacts")


class ExportError(ValueError):
    """A user error: bad option, missing checkpoint, unsupported combination."""


class VerificationError(RuntimeError):
    """The artifact disagreed with the eager model in its own runtime (it was not kept)."""


def flag(help: str, choices: Sequence[str] | None = None) -> dict[str, Any]:
    """Field metadata that :func:`build_parser` turns into the flag's help (and choices)."""
    return {"help": help, **({"choices": tuple(choices)} if choices else {})}


@dataclass(frozen=True)
class ExportConfig:
    """The flags every exporter has; subclasses redefine ``quant`` with their choices."""

    view: str = field(metadata=flag("which student to export", VIEWS))
    checkpoint: Path | None = field(
        default=None,
        metadata=flag(
            "student checkpoint (.pt with .json sidecar); default: the committed "
            "weights/edge-s/student_{view}.pt"
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
            if choices and value not in choices:
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


def build_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """One ``--flag`` per field of the config dataclass ``cls`` (type, default, choices, help)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        kw: dict[str, Any] = {"type": tp, "help": f.metadata.get("help", "")}
        if tp is bool:
            kw = {"action": argparse.BooleanOptionalAction, "help": kw["help"]}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if f.default is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = f.default
            if tp is not bool:  # BooleanOptionalAction states its default itself
                kw["help"] += f" (default: {f.default})"
        parser.add_argument("--" + f.name.replace("_", "-"), **kw)
    return parser


def run_cli(
    cls: type,
    export_fn: Callable[[Any], Path],
    argv: Sequence[str] | None = None,
    description: str | None = None,
) -> int:
    """``main()`` of an exporter: flags -> ``cls`` -> ``export_fn``; prints the artifact path.

    User errors exit 2 with a message (no traceback); a failed verification exits 1.
    """
    from d4g_edge._log import setup_logging

    setup_logging()
    parser = build_parser(cls, description)
    args = parser.parse_args(argv)
    try:
        cfg = cls(**vars(args))
        logger.info("argv: %s", " ".join(sys.argv))
        logger.info("config: %s", cfg)
        path = export_fn(cfg)
    except (ExportError, ConfigError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    except VerificationError as err:
        parser.exit(1, f"verification failed: {err}\n")
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
    from train.checkpoint import CheckpointError
    from train.default_weights import MissingDefaultWeightsError, default_student
    from train.encoder_source import load_student

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


def config_json(cfg: EncoderConfig) -> str:
    """The compact, key-sorted JSON every artifact embeds under :data:`METADATA_KEY`."""
    return json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(functools.partial(fh.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- files ----------------------------------------------------------------------------------


def artifact_path(out: Path, view: str, quant: str, ext: str) -> Path:
    """``out/{view}_{quant}.{ext}``, e.g. ``artifacts/ground_int8.onnx``."""
    return Path(out) / f"{view}_{quant}.{ext}"


@contextlib.contextmanager
def atomic_artifact(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (same suffix, so runtimes accept it); rename it
    onto ``path`` when the block succeeds, delete it when the block raises.

    A Core ML ``.mlpackage`` is a folder: an old one is removed just before the rename (a
    folder cannot be replaced in one step), so a reader can briefly see none, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"the exporter wrote nothing to {tmp}")
        if tmp.is_dir():
            _remove(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def write_config_sidecar(artifact: Path, cfg: EncoderConfig) -> Path:
    """``<artifact>.json`` holding ``cfg`` (for runtimes that read no embedded strings)."""
    sidecar = Path(artifact).with_name(Path(artifact).name + ".json")
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(cfg.to_dict(), sort_keys=True, indent=1) + "\n")
        os.replace(tmp, sidecar)
    finally:
        tmp.unlink(missing_ok=True)
    return sidecar


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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
