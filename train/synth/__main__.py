"""``python -m train.synth``: write a synthetic dataset in an official layout.

The flags are generated from :class:`train.synth.SynthConfig` (one flag per field, help
from the field metadata), so the command line and the function cannot drift apart.

Usage::

    python -m train.synth --layout cvusa --out data/cvusa --train 1000 --test 200 --seed 0 \
        --sat-size 256 --pano-size 128x512 --workers 4 --preview cvusa.png
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from d4g_edge import logger
from d4g_edge._log import setup_logging

from . import LAYOUTS, VIGOR_LAYOUTS, OutputDirError, SynthConfig, parse_size, synthesize

_CHOICES = {"layout": LAYOUTS, "vigor_layout": VIGOR_LAYOUTS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train.synth",
        description="Render a cross-view dataset from the procedural world and write it in "
        "the official CVUSA, CVACT or VIGOR file layout (read back by train.datasets.load). "
        "Test pairs come from towns never used for training. Same settings and seed give "
        "the same files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in dataclasses.fields(SynthConfig):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        if f.name in ("layout", "out"):
            kind = str if f.name == "layout" else Path
            help_ = "dataset layout to write" if f.name == "layout" else "output directory"
            parser.add_argument(
                flag,
                type=kind,
                required=True,
                default=argparse.SUPPRESS,
                choices=_CHOICES.get(f.name),
                help=help_,
            )
        elif f.type in (bool, "bool"):
            parser.add_argument(flag, action="store_true", help=help_)
        elif f.name == "pano_size":
            default = "{}x{}".format(*f.default)  # argparse parses string defaults with `type`
            parser.add_argument(flag, type=parse_size, default=default, metavar="HxW", help=help_)
        elif f.name == "preview":
            parser.add_argument(flag, type=Path, default=None, metavar="FILE.png", help=help_)
        else:
            parser.add_argument(
                flag,
                type=type(f.default),
                default=f.default,
                choices=_CHOICES.get(f.name),
                help=help_,
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    logger.info("argv: %s", " ".join(sys.argv if argv is None else ["train.synth", *argv]))
    try:
        cfg = SynthConfig(**vars(args))
    except ValueError as exc:
        build_parser().error(str(exc))
    logger.info("config: %s", cfg)
    try:
        synthesize(cfg)
    except OutputDirError as exc:
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
