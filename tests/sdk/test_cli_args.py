"""The one command-line builder and the shared flag validators (d4g_edge.cli.args): flags
from a dataclass's fields, and values refused at parse time with the API's own checks."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from d4g_edge.cli import args as cli_args
from d4g_edge.cli.app import _parser
from d4g_edge.cli.app import main as d4g_edge
from d4g_edge.cli.args import (
    add_fields,
    config_from_args,
    dataclass_parser,
    flag,
    number,
    parse_size,
    whole,
)
from d4g_edge.cli.build_index import INDEX_FLAGS, index_params
from d4g_edge.index import IndexParams


@dataclass(frozen=True)
class Job:
    data: Path = field(metadata=flag("dataset root"))
    steps: int = field(default=300, metadata=flag("fine-tuning steps", type=whole(0)))
    scheme: str = field(default="int8", metadata=flag("quantization", ("int8", "fp16")))
    student: Path | None = field(default=None, metadata=flag("checkpoint (default: committed)"))
    size: tuple[int, int] = field(default=(4, 8), metadata=flag("input", group="shapes"))
    ks: tuple[int, ...] = field(default_factory=lambda: (1, 5))
    evaluate: bool = field(default=True, metadata=flag("R@1 before and after"))


def _exit(parser: argparse.ArgumentParser, argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        parser.parse_args(argv)
    return done.value.code, capsys.readouterr().err


def test_fields_become_flags_with_types_defaults_and_help(capsys):
    parser = dataclass_parser(Job, "Demo job.", prog="demo")
    cfg = config_from_args(Job, parser.parse_args(["--data", "d"]))
    assert cfg == Job(data=Path("d"))  # every default is the dataclass's
    argv = ["--data", "d", "--steps", "0", "--scheme", "fp16", "--student", "s.pt"]
    argv += ["--size", "2x6", "--ks", "3", "7", "--no-evaluate"]
    cfg = config_from_args(Job, parser.parse_args(argv))
    assert cfg == Job(Path("d"), 0, "fp16", Path("s.pt"), (2, 6), (3, 7), False)
    text = parser.format_help()
    assert "fine-tuning steps (default: 300)" in text and "shapes:" in text
    assert "checkpoint (default: committed)\n" in text  # no "(default: None)" after it
    assert "--evaluate, --no-evaluate" in text and "--size HxW" in text
    code, err = _exit(parser, [], capsys)  # --data has no default: required
    assert code == 2 and "--data" in err
    code, err = _exit(parser, ["--data", "d", "--steps", "-1"], capsys)  # the field's validator
    assert code == 2 and "argument --steps: expected a whole number >= 0, got -1" in err
    code, err = _exit(parser, ["--data", "d", "--scheme", "int4"], capsys)
    assert code == 2 and "invalid choice: 'int4'" in err
    code, err = _exit(parser, ["--data", "d", "--size", "2by6"], capsys)
    assert code == 2 and "expected HEIGHTxWIDTH like 64x256, got '2by6'" in err


def test_only_picks_and_orders_fields_and_a_typo_is_refused():
    parser = argparse.ArgumentParser()
    add_fields(parser, Job, only=("scheme", "steps"))
    assert [a.dest for a in parser._actions[1:]] == ["scheme", "steps"]
    # only the named fields are read; the others keep the dataclass's defaults
    add_fields(parser, IndexParams, only=("ef",), flags={"ef": flag("beam", default=7)})
    assert config_from_args(IndexParams, parser.parse_args([]), only=("ef",)) == IndexParams(ef=7)
    with pytest.raises(TypeError, match="no field"):  # a renamed field must not drop its flag
        add_fields(argparse.ArgumentParser(), Job, only=("stepz",))
    with pytest.raises(TypeError, match="no field"):
        add_fields(argparse.ArgumentParser(), Job, flags={"stepz": flag("x")})


def test_index_flags_take_their_defaults_from_index_params(capsys):
    # build-index and merge: the flags default to IndexParams' fields, so the two cannot drift
    for argv in (["build-index", "--tiles", "t", "--model", "m", "--out", "o"], ["merge", "a"]):
        args = _parser().parse_args([*argv, "--out", "o"] if argv[0] == "merge" else argv)
        assert index_params(args) == IndexParams()
        for name in INDEX_FLAGS:
            assert getattr(args, name) == getattr(IndexParams(), name)
    args = _parser().parse_args(["merge", "a", "--out", "o", "--M", "8", "--storage", "float16"])
    assert index_params(args) == IndexParams(M=8, storage="float16")
    # a bad value is refused at parse time with one line, exit 2
    with pytest.raises(SystemExit) as done:
        d4g_edge(["merge", "a", "--out", "o", "--ef", "1"])
    assert done.value.code == 2
    assert "argument --ef: expected a whole number >= 2, got 1" in capsys.readouterr().err


def test_compressed_index_flags_reach_index_params(capsys):
    merge = ["merge", "a", "--out", "o"]
    bits = ["--storage", "pca-bits", "--row-bytes", "40", "--lists", "8", "--probe", "4"]
    args = _parser().parse_args([*merge, *bits])
    assert index_params(args) == IndexParams(storage="pca-bits", row_bytes=40, lists=8, probe=4)
    args = _parser().parse_args(
        [*merge, "--storage", "pca-int8", "--pca-dims", "32", "--refine", "16"]
    )
    assert index_params(args) == IndexParams(storage="pca-int8", pca_dims=32, refine=16)
    with pytest.raises(SystemExit) as done:
        d4g_edge([*merge, "--row-bytes", "0"])
    assert done.value.code == 2
    assert "argument --row-bytes: expected" in capsys.readouterr().err


def test_number_states_its_bounds():
    assert number(float, 0, lo_open=True)("0.5") == 0.5
    assert number(int, 0, 100)("100") == 100
    cases = [
        (number(float, 0, lo_open=True), "0", "expected a finite number > 0, got '0'"),
        (number(int, 1), "1.5", "expected an integer >= 1, got '1.5'"),
        (number(float, 0, 10, lo_open=True), "11", "expected a finite number > 0 and <= 10"),
        (number(), "nan", "expected a finite number, got 'nan'"),
        (whole(0, 28, "a zoom level 0..28"), "29", "expected a zoom level 0..28, got 29"),
        (cli_args.positive_int, "x", "expected a whole number >= 1, got 'x'"),
        (cli_args.positive_metres, "inf", "expected metres > 0 (finite), got 'inf'"),
        (cli_args.heading_deg, "inf", "NaN and infinity are not allowed"),
        (cli_args.prior, "1,2", "expected LAT,LON,RADIUS_M (3 comma-separated numbers)"),
        (cli_args.prior, "1,2,0", "RADIUS_M must be > 0 metres"),
        (cli_args.lat_lon, "91,0", "latitude must be in -90..90"),
        (cli_args.shard_spec, "2/2", "shard"),
        (cli_args.cell_degrees, "0", "expected degrees, got '0'"),
    ]
    for parse, text, message in cases:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
            parse(text)
    assert cli_args.zoom_level("28") == 28 and cli_args.shard_spec("1/4") == (1, 4)
    assert parse_size("32") == (32, 32) and cli_args.prior("1,2,3") == (1.0, 2.0, 3.0)


def test_flight_flags_refuse_what_the_api_refuses():
    from d4g_edge.drone import Flight
    from d4g_edge.errors import SearchError

    altitude = cli_args.flight("altitude_m")
    assert altitude("120") == 120.0
    for text in ("0", "6000"):
        with pytest.raises(SearchError) as api:
            Flight(altitude_m=float(text))
        with pytest.raises(argparse.ArgumentTypeError) as flag_error:
            altitude(text)
        assert str(flag_error.value) == str(api.value)  # one definition, one message
    with pytest.raises(argparse.ArgumentTypeError, match="expected a finite number, got 'x'"):
        cli_args.flight("pitch_deg", number())("x")
