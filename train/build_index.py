"""Build a d4g-edge bundle from a dataset layout or the procedural world (repository tooling).

The same torch-free builder as ``d4g-edge build-index`` (:func:`d4g_edge.build.build_index`),
fed by the sources in :mod:`train.tile_sources`. Satellite tiles are embedded with the
exported satellite student; ``--ground`` ships the ground student in the bundle.

Usage::

    python -m train.build_index --dataset vigor --data /data/VIGOR --split test \
        --model artifacts/satellite_int8.onnx --ground artifacts/ground_int8.onnx --out bundles/v
    python -m train.build_index --world 90210 --style suburb --size-m 600 --tile-size-m 90 \
        --stride-m 15 --model artifacts/satellite_int8.onnx --ground ... --out bundles/town
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from d4g_edge._log import setup_logging
from d4g_edge.build import add_build_args, build_from_args
from d4g_edge.config import ConfigError
from d4g_edge.errors import D4GEdgeError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.build_index", description=__doc__.split("Usage")[0]
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=("cvusa", "cvact", "vigor"))
    src.add_argument("--world", type=int, metavar="SEED", help="procedural town seed")
    p.add_argument("--data", type=Path, help="dataset root (with --dataset)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--vigor-mode",
        choices=("same", "cross"),
        default="cross",
        help="VIGOR area protocol (cross: the test cities' tiles), as train.evaluate",
    )
    p.add_argument(
        "--footprint-m",
        type=float,
        default=float("nan"),
        help="dataset tiles' ground footprint (m), if known",
    )
    p.add_argument("--style", default="suburb", help="world town style")
    p.add_argument("--size-m", type=float, default=600.0, help="world side (m)")
    p.add_argument("--tile-size-m", type=float, default=90.0, help="world tile side (m)")
    p.add_argument("--stride-m", type=float, default=15.0, help="world tile stride (m)")
    p.add_argument("--tile-px", type=int, default=256, help="world tile pixels")
    p.add_argument("--gap-strength", type=float, default=1.0, help="world capture domain gap")
    add_build_args(p)  # --model, --out, --shard, --resume, --ground, HNSW, --threads, --cells
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging()
    from train.tile_sources import DatasetTileSource, WorldTileSource

    try:
        if args.dataset:
            if args.data is None:
                raise D4GEdgeError("--dataset needs --data DIR")
            src = DatasetTileSource(
                args.dataset, args.data, args.split, args.footprint_m, args.vigor_mode
            )
        else:
            src = WorldTileSource(
                args.world,
                args.style,
                args.size_m,
                args.tile_size_m,
                args.stride_m,
                args.tile_px,
                args.gap_strength,
            )
        out = build_from_args(src, args)
    except (D4GEdgeError, ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
