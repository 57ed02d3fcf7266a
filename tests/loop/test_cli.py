"""The training steps' command lines (the one builder, d4g_edge.cli.args, plus the preset
hyper-parameters of train.loop.cli): each step shows exactly the flags it reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from d4g_edge.cli.args import config_from_args, dataclass_parser
from train import distill, evaluate, teacher
from train.loop.cli import add_hparam_flags
from train.presets import HParams, TeacherHParams
from train.synth.__main__ import build_parser as synth_parser

TEACHER_ONLY = ("label_smoothing", "gps_neighbours", "sim_neighbours", "sim_update_every")


def _help(main, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_distill_shows_no_teacher_only_flags_and_teacher_shows_them(capsys) -> None:
    distill_help, teacher_help = _help(distill.main, capsys), _help(teacher.main, capsys)
    for name in TEACHER_ONLY:
        flag = "--" + name.replace("_", "-")
        assert flag in teacher_help and flag not in distill_help
    for f in dataclasses.fields(HParams):  # the loop's own settings: both steps
        flag = "--" + f.name.replace("_", "-")
        assert flag in teacher_help and flag in distill_help
    assert {f.name for f in dataclasses.fields(TeacherHParams)} - {
        f.name for f in dataclasses.fields(HParams)
    } == set(TEACHER_ONLY)


def test_distill_refuses_a_teacher_only_flag(capsys) -> None:
    argv = ["--dataset", "cvusa", "--data", "d", "--teacher", "t.pt", "--out", "o"]
    with pytest.raises(SystemExit) as done:
        distill.main([*argv, "--label-smoothing", "0.2"])
    assert done.value.code == 2 and "--label-smoothing" in capsys.readouterr().err


@dataclass(frozen=True)
class Demo:
    source: Path | None = field(default=None, metadata={"one_of": "src", "metavar": "FILE"})
    name: str | None = field(default=None, metadata={"one_of": "src", "choices": ("a", "b")})
    size: tuple[int, int] = field(default=(4, 8), metadata={"group": "shapes"})
    ks: tuple[int, ...] = (1, 5)
    fast: bool = False


def test_builder_fields_groups_and_exclusive_choices(capsys) -> None:
    parser = dataclass_parser(Demo, prog="demo")
    cfg = config_from_args(Demo, parser.parse_args(["--name", "a", "--ks", "3", "7", "--fast"]))
    assert cfg == Demo(name="a", ks=(3, 7), fast=True)
    cfg = config_from_args(Demo, parser.parse_args(["--source", "f", "--size", "2x6"]))
    assert cfg == Demo(source=Path("f"), size=(2, 6))
    for bad in ([], ["--source", "f", "--name", "a"], ["--name", "c"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    text = parser.format_help()
    assert "shapes:" in text and "--source FILE" in text


def test_evaluate_and_synth_parse_into_their_configs() -> None:
    args = evaluate.build_parser().parse_args(["--embeddings", "e.npz", "--ks", "1", "10"])
    cfg = config_from_args(evaluate.EvaluateConfig, args)
    assert cfg.embeddings == Path("e.npz") and cfg.ks == (1, 10) and cfg.split == "test"
    with pytest.raises(SystemExit):  # exactly one mode
        evaluate.build_parser().parse_args(["--embeddings", "e.npz", "--dataset", "cvusa"])
    args = synth_parser().parse_args(["--layout", "vigor", "--out", "d", "--vigor-layout", "alt"])
    assert args.vigor_layout == "alt" and args.out == Path("d")


def test_hparam_flags_default_to_the_preset() -> None:
    # one flag per hyper-parameter, typed from the dataclass, None unless given
    parser = dataclass_parser(Demo)
    add_hparam_flags(parser, HParams)
    args = parser.parse_args(["--name", "a", "--lr", "0.5", "--epochs", "3", "--amp", "bf16"])
    assert (args.lr, args.epochs, args.amp, args.seed) == (0.5, 3, "bf16", None)
    assert {f.name for f in dataclasses.fields(HParams)} <= set(vars(args))
    with pytest.raises(SystemExit):
        parser.parse_args(["--name", "a", "--amp", "fp8"])
