"""Build a command line from a config dataclass, so the CLI and the function cannot drift.

Each step is ``run(cfg: SomeConfig)`` plus a thin ``main()``: the parser is generated from the
dataclass fields (type, default, ``metadata={"help": ..., "choices": ...}``), and preset
hyper-parameters (:class:`train.presets.HParams`) get one ``--flag`` each whose default
``None`` means "take the preset's value".

Usage::

    parser = dataclass_parser(TeacherConfig, description=__doc__)
    add_hparam_flags(parser, TeacherHParams)  # only the fields this step reads
    args = parser.parse_args(argv)
    cfg = config_from_args(TeacherConfig, args)
    hp = resolve_hparams(preset.teacher_hp, args)
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from train.presets import HParams, Preset, get_preset

_HP_HELP = {
    "epochs": "training epochs",
    "batch_size": "global batch size (split across torchrun ranks)",
    "lr": "peak AdamW learning rate",
    "weight_decay": "AdamW weight decay (not applied to norms, biases, logit_scale)",
    "warmup_epochs": "linear warm-up length in epochs (fractions allowed), then cosine decay",
    "grad_clip": "gradient-norm clipping threshold",
    "label_smoothing": "InfoNCE label smoothing (teacher)",
    "gps_neighbours": "GPS neighbours that seed each anchor's batch (teacher)",
    "sim_update_every": "re-embed the training set for similarity sampling every N epochs, 0=off",
    "sim_neighbours": "most similar non-matching references pulled into a batch (teacher)",
    "eval_every": "evaluate every N epochs (the last epoch always)",
    "workers": "DataLoader worker processes",
    "amp": "mixed precision: auto (bf16 on CUDA, none on CPU), none, bf16, fp16",
    "seed": "random seed",
}


class SizeError(ValueError, argparse.ArgumentTypeError):
    """A malformed HEIGHTxWIDTH size (argparse shows its message as is)."""


def parse_size(text: str) -> tuple[int, int]:
    """'64x256' -> (64, 256); a single number means a square."""
    try:
        parts = [int(p) for p in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise SizeError(f"expected HEIGHTxWIDTH like 64x256, got {text!r}")
    return parts[0], parts[1]


def _flag_kwargs(tp: Any) -> dict[str, Any]:
    """argparse ``type`` (and ``nargs``/``metavar``) of a field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _flag_kwargs(args[0])
    if origin is tuple and typing.get_args(tp)[1:] == (Ellipsis,):  # tuple[int, ...]
        return {"type": typing.get_args(tp)[0], "nargs": "+"}
    if origin is tuple:
        return {"type": parse_size, "metavar": "HxW"}
    return {"type": {Path: Path, int: int, float: float, str: str}.get(tp, str)}


def dataclass_parser(
    cls: type, description: str | None = None, *, prog: str | None = None
) -> argparse.ArgumentParser:
    """A parser with one ``--flag`` per field of the dataclass ``cls``.

    Field metadata: ``help``, ``choices``, ``metavar``; ``group`` (title of an argument
    group to list the flag under); ``one_of`` (name of a required set of mutually exclusive
    flags: exactly one of them must be given).
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    groups: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        kw: dict[str, Any] = {"help": f.metadata.get("help", "")}
        if hints[f.name] in (bool, bool | None):  # None: "the preset decides"
            kw["action"] = argparse.BooleanOptionalAction
            kw["default"] = f.default
        else:
            kw |= _flag_kwargs(hints[f.name])
            kw |= {k: f.metadata[k] for k in ("choices", "metavar") if k in f.metadata}
            if required:
                kw["required"] = True
            else:
                kw["default"] = f.default
                if f.default is not None and "one_of" not in f.metadata:
                    kw["help"] += f" (default: {f.default})"
        if one_of := f.metadata.get("one_of"):
            key = "one_of:" + one_of
            if key not in groups:
                groups[key] = parser.add_mutually_exclusive_group(required=True)
            target = groups[key]
        elif title := f.metadata.get("group"):
            target = groups.setdefault(title, parser.add_argument_group(title))
        else:
            target = parser
        target.add_argument(flag, **kw)
    return parser


def add_hparam_flags(parser: argparse.ArgumentParser, hparams: type = HParams) -> None:
    """One ``--flag`` per field of ``hparams`` (default ``None``: the preset's value)."""
    group = parser.add_argument_group("hyper-parameters (default: the preset's value)")
    for f in dataclasses.fields(hparams):
        tp = {"int": int, "float": float, "str": str}[
            f.type if isinstance(f.type, str) else f.type.__name__
        ]
        kw: dict[str, Any] = {"type": tp, "default": None, "help": _HP_HELP.get(f.name, "")}
        if f.name == "amp":
            kw["choices"] = ["auto", "none", "bf16", "fp16"]
        group.add_argument("--" + f.name.replace("_", "-"), **kw)


def config_from_args(cls: type, args: argparse.Namespace):
    """``cls`` built from the parsed flags (``nargs`` lists become tuples)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def resolve_hparams(base: HParams, args: argparse.Namespace | dict) -> HParams:
    """``base`` with the flags that were given (those not ``None``) replacing its fields."""
    given = vars(args) if isinstance(args, argparse.Namespace) else args
    overrides = {
        f.name: given[f.name] for f in dataclasses.fields(base) if given.get(f.name) is not None
    }
    return dataclasses.replace(base, **overrides)


def step_main(
    cls: type,
    run: Callable[[Any, HParams], dict],
    preset_hparams: Callable[[Preset], HParams],
    argv: list[str] | None,
    *,
    description: str | None,
    epilog: str | None = None,
    hparams: type = HParams,
) -> int:
    """``main()`` of a training step: parse flags into ``cls`` + resolved hyper-parameters,
    run, and turn user errors into a message and exit status 2 instead of a traceback."""
    from d4g_edge.log import logger, setup_logging
    from train.loop.arg_checks import user_message

    setup_logging()
    parser = dataclass_parser(cls, description=description)
    parser.epilog = epilog
    add_hparam_flags(parser, hparams)
    args = parser.parse_args(argv)
    cfg = config_from_args(cls, args)
    try:
        best = run(cfg, resolve_hparams(preset_hparams(get_preset(cfg.preset)), args))
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {user_message(err)}\n")
    logger.info("best epoch: %s", best)
    return 0
