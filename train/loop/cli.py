"""The training steps' command lines: a config dataclass's flags plus one flag per preset
hyper-parameter, built with the one builder (:mod:`d4g_edge.cli.args`).

Each step is ``run(cfg: SomeConfig)`` plus a thin ``main()``: the parser is generated from the
dataclass fields (:func:`d4g_edge.cli.args.dataclass_parser`: type, default,
``metadata={"help": ..., "choices": ...}``), and preset hyper-parameters
(:class:`train.presets.HParams`) get one ``--flag`` each whose default ``None`` means "take the
preset's value".

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
from collections.abc import Callable
from typing import Any

from d4g_edge.cli.args import add_fields, config_from_args, dataclass_parser, flag
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
_HP_CHOICES = {"amp": ("auto", "none", "bf16", "fp16")}


def add_hparam_flags(parser: argparse.ArgumentParser, hparams: type = HParams) -> None:
    """One ``--flag`` per field of ``hparams`` (default ``None``: the preset's value)."""
    group = parser.add_argument_group("hyper-parameters (default: the preset's value)")
    flags = {
        f.name: flag(_HP_HELP.get(f.name, ""), _HP_CHOICES.get(f.name), default=None)
        for f in dataclasses.fields(hparams)
    }
    add_fields(group, hparams, flags=flags)


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
