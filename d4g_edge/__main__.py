"""``d4g-edge`` command line (also ``python -m d4g_edge``).

Usage::

    d4g-edge localize IMAGE [IMAGE ...] [--bundle DIR] [--top-k K] [--json]

The on-device bundle (ground encoder + HNSW index of satellite embeddings) and the bundled
trained default arrive with the SDK work; until then ``localize`` checks its inputs and
explains that no bundle is available instead of failing obscurely.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from d4g_edge import __version__

BUNDLE_ENV = "D4G_EDGE_BUNDLE"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="d4g-edge", description="Cross-view geo-localization SDK")
    p.add_argument("--version", action="version", version=f"d4g-edge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    loc = sub.add_parser("localize", help="estimate lat/lon of ground images")
    loc.add_argument("images", nargs="+", type=Path, help="ground-level images (panoramas)")
    loc.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help=f"bundle directory (default: ${BUNDLE_ENV}, else the bundled default)",
    )
    loc.add_argument("--top-k", type=int, default=5, help="candidates to report (default: 5)")
    loc.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _localize(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        print(f"error: image file(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    bundle = args.bundle or (Path(os.environ[BUNDLE_ENV]) if BUNDLE_ENV in os.environ else None)
    where = f"bundle {bundle}" if bundle else "the bundled default"
    print(
        f"d4g-edge {__version__}: cannot localize yet: {where} is not available. This release "
        "ships the training tooling (python -m train.synth / train.teacher / train.distill); "
        "the on-device bundle format, index build and trained default come with the SDK.",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "localize":
        return _localize(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse restricts choices


if __name__ == "__main__":
    sys.exit(main())
