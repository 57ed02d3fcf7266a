"""``d4g-edge`` command line (also ``python -m d4g_edge``): the top-level parser, one module
per subcommand, and the one place a user's mistake becomes an ``error:`` line.

Usage::

    d4g-edge localize IMAGE [IMAGE ...] [--bundle DIR] [--top-k K] [--prior LAT,LON,RADIUS_M]
                      [--heading DEG] [--json] [--plot FILE.png]
    d4g-edge info [BUNDLE]
    d4g-edge build-index --tiles SRC --model SATELLITE.onnx --out BUNDLE [--query QUERY.onnx]
                         [--tile-size-m M --stride-m M] [--shard i/n] [--resume]
    d4g-edge merge SHARD_DIR ... --out BUNDLE [--query QUERY.onnx]
    d4g-edge bench [--bundle DIR]
    d4g-edge calibrate BUNDLE --queries FRAMES/
    d4g-edge follow SOURCE [--bundle DIR] [--mavlink URL]

Each subcommand module (:mod:`~d4g_edge.cli.localize`, :mod:`~d4g_edge.cli.info`,
:mod:`~d4g_edge.cli.build_index` for ``build-index`` and ``merge``,
:mod:`~d4g_edge.cli.bench`, :mod:`~d4g_edge.cli.calibrate`, :mod:`~d4g_edge.cli.follow`)
adds its parser and names the function that runs it; heavy imports wait for that function.

A user's mistake (a bad image, a missing or tampered bundle, a wrong flag) prints one line
``error: ...`` and exits with status 2, never a traceback. Flags are checked when they are
parsed (the validators of :mod:`d4g_edge.cli.args`: finite numbers, ranges, counts >= 1, a
``--plot`` folder that exists), so a wrong one costs no bundle load and no localization.
``--json`` output is strict JSON (:mod:`d4g_edge.cli.output`): a non-finite number is written
as ``null``, never ``NaN``.
"""

from __future__ import annotations

import argparse
import sys

from d4g_edge._version import __version__
from d4g_edge.cli import bench, build_index, calibrate, info, localize
from d4g_edge.cli.follow.parser import add_follow_parser
from d4g_edge.config import ConfigError
from d4g_edge.errors import D4GEdgeError
from d4g_edge.localizer import BUNDLE_ENV
from d4g_edge.log import setup_logging


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="d4g-edge", description="Cross-view geo-localization SDK")
    p.add_argument("--version", action="version", version=f"d4g-edge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    bundle_help = f"bundle directory (default: ${BUNDLE_ENV}, else the bundled default)"
    localize.add_parser(sub, bundle_help)
    info.add_parser(sub, bundle_help)
    build_index.add_parsers(sub)  # build-index, merge
    bench.add_parser(sub, bundle_help)
    calibrate.add_parser(sub, bundle_help)
    add_follow_parser(sub, bundle_help)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    try:
        return args.handler(args)
    except (D4GEdgeError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
