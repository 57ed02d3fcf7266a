"""``python -m train.synth``: write a synthetic dataset in an official layout.

The flags are generated from :class:`train.synth.SynthConfig` by the builder every step
uses (:func:`d4g_edge.cli.args.dataclass_parser`), so the command line and the function cannot
drift apart.

Usage::

    python -m train.synth --layout cvusa --out data/cvusa --train 1000 --test 200 --seed 0 \
        --sat-size 256 --pano-size 128x512 --workers 4 --preview cvusa.png
    python -m train.synth --layout university1652 --out data/u1652 --train 8 --test 6 \
        --sat-size 128 --tile-m 120 --drone-per-location 12 --drone-px 128
"""

from __future__ import annotations

import sys

from d4g_edge.cli.args import config_from_args, dataclass_parser
from d4g_edge.log import logger, setup_logging

from . import OutputDirError, SynthConfig, synthesize

DESCRIPTION = """\
Render a cross-view dataset from the procedural world and write it in the official CVUSA,
CVACT, VIGOR or University-1652 file layout (read back by train.datasets.load). Test pairs
come from towns never used for training. Same settings and seed give the same files."""


def build_parser():
    return dataclass_parser(SynthConfig, DESCRIPTION, prog="python -m train.synth")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    logger.info("argv: %s", " ".join(sys.argv if argv is None else ["train.synth", *argv]))
    try:
        cfg = config_from_args(SynthConfig, args)
    except ValueError as exc:
        parser.error(str(exc))
    logger.info("config: %s", cfg)
    try:
        synthesize(cfg)
    except OutputDirError as exc:
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
