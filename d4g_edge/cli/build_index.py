"""``d4g-edge build-index`` and ``d4g-edge merge``: satellite tiles into a bundle, and the
shards of a sharded build joined into one.

The flags of every command that writes a bundle (:func:`add_index_args`) and of every command
that embeds tiles (:func:`add_build_args`) are defined here once; ``tools.build_index`` adds
the same ones to its dataset and world sources. The index flags are the fields of
:class:`~d4g_edge.index.IndexParams` (:mod:`d4g_edge.cli.args` builds them), so their
defaults are the API's. Every value is checked when it is parsed, before any tile is read.

Usage::

    d4g-edge build-index --tiles SRC --model SATELLITE.onnx --out BUNDLE [--query QUERY.onnx]
                         [--tile-size-m M --stride-m M] [--shard i/n] [--resume]
    d4g-edge merge SHARD_DIR ... --out BUNDLE [--query QUERY.onnx]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from d4g_edge.build.builder import DEFAULT_MAX_TILES, build_index
from d4g_edge.cli.args import (
    add_fields,
    cell_degrees,
    config_from_args,
    flag,
    number,
    positive_int,
    positive_metres,
    shard_spec,
    whole,
    zoom_level,
)
from d4g_edge.errors import BundleError
from d4g_edge.index import STORAGES, IndexParams
from d4g_edge.tiletable import DEFAULT_CELL_DEG

# IndexParams fields that are flags, with their help and checks (>= 2 for the HNSW
# parameters, as IndexParams requires; 0 exact threshold = never search exactly)
INDEX_FLAGS = {
    "M": flag("HNSW graph degree", type=whole(2)),
    "ef_construction": flag("HNSW build beam", type=whole(2)),
    "ef": flag("HNSW search beam", type=whole(2)),
    "exact_threshold": flag("search exactly below this many tiles", type=whole(0)),
    "storage": flag(
        "hnswlib graph; float16 vectors searched exactly (half the size; for bundles below "
        "the exact threshold); pca-int8 (64 B a row) or pca-bits (--row-bytes a row): "
        "compressed, memory-mapped (docs/map_scale.md)",
        STORAGES,
    ),
    "pca_dims": flag("pca-int8: PCA components kept as int8 codes", type=whole(1)),
    "lists": flag(
        "pca-int8 / pca-bits: k-means lists (0: none below 32,768 rows, else 4 sqrt(rows))",
        type=whole(0),
    ),
    "probe": flag("pca-int8 / pca-bits: lists a search scores", type=whole(1)),
    "refine": flag("pca-int8: candidates re-scored from float16 rows (0: none)", type=whole(0)),
    "unit_rows": flag(
        "pca-int8: scale each row's projection to unit length before its codes (default; "
        "--no-unit-rows: the plain projection of bundles built before 2026-12-05)"
    ),
    "row_bytes": flag("pca-bits: code bytes a row (bits allocated to fit)", type=whole(1, 1024)),
    "aniso_cos": flag(
        "pca-bits: round the codes for queries at this cosine to their best row "
        "(anisotropic; 0: nearest rounding)",
        type=number(float, 0, 1, hi_open=True),
    ),
}


def add_index_args(p) -> None:
    """The flags shared by every command that writes a bundle (``--query``, HNSW, cells)."""
    p.add_argument(
        "--query",
        "--ground",  # its first name: the query model was a ground model before drone bundles
        dest="ground",
        metavar="MODEL",
        type=Path,
        action="append",
        help="query model to ship in the bundle, the one that encodes what the device sees "
        "(.onnx and/or .pte; repeat for both); --ground is its older name",
    )
    add_fields(p, IndexParams, only=INDEX_FLAGS, flags=INDEX_FLAGS)
    p.add_argument(
        "--threads", type=positive_int, default=None, help="encoder threads (default: all cores)"
    )
    p.add_argument(
        "--cells",
        action="store_true",
        help="one index per geographic cell, so a device loads only the cells near a prior",
    )


def add_build_args(p) -> None:
    """The flags of every command that embeds tiles (``d4g-edge build-index``,
    ``tools.build_index``): encoder, output, sharding, cells, plus :func:`add_index_args`."""
    p.add_argument("--model", required=True, type=Path, help="satellite encoder (.onnx/.pte)")
    p.add_argument("--out", required=True, type=Path, help="bundle (or shard) directory")
    p.add_argument(
        "--shard",
        type=shard_spec,
        default="0/1",
        help="embed only shard i of n, 0 <= i < n (then: merge)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted build")
    p.add_argument(
        "--batch-size", type=positive_int, default=32, help="tiles per encoder call (default: 32)"
    )
    p.add_argument(
        "--max-tiles",
        type=positive_int,
        default=DEFAULT_MAX_TILES,
        help="refuse a build of more tiles than this (a mistyped stride or CRS), counted before "
        f"any work (default: {DEFAULT_MAX_TILES:,})",
    )
    p.add_argument(
        "--cell-deg",
        type=cell_degrees,
        default=DEFAULT_CELL_DEG,
        help="cell size (deg; default 0.01, ~1.1 km)",
    )
    add_index_args(p)


def index_params(args: argparse.Namespace) -> IndexParams:
    """The :class:`IndexParams` of the flags :func:`add_index_args` parsed."""
    try:
        return config_from_args(IndexParams, args, only=INDEX_FLAGS)
    except ValueError as err:
        raise BundleError(str(err)) from None


def build_from_args(source, args: argparse.Namespace) -> Path:
    """:func:`~d4g_edge.build.builder.build_index` of the tile source ``source`` with the
    flags :func:`add_build_args` parsed."""
    return build_index(
        source,
        args.model,
        args.out,
        ground=args.ground,
        shard=args.shard,  # parsed by shard_spec (argparse converts the "0/1" default too)
        resume=args.resume,
        params=index_params(args),
        batch_size=args.batch_size,
        threads=args.threads,
        cell_deg=args.cell_deg,
        cells=args.cells,
        max_tiles=getattr(args, "max_tiles", DEFAULT_MAX_TILES),
    )


def add_parsers(sub) -> None:
    """``build-index`` and ``merge``."""
    bld = sub.add_parser("build-index", help="embed satellite tiles into a bundle (torch-free)")
    bld.add_argument(
        "--tiles",
        required=True,
        type=Path,
        help="XYZ folder z/x/y.png|jpg, or a world-file image / GeoTIFF",
    )
    bld.add_argument(
        "--tile-size-m", type=positive_metres, default=None, help="raster tile side (m)"
    )
    bld.add_argument(
        "--stride-m",
        type=positive_metres,
        default=None,
        help="raster tile stride (m); default: half the tile size",
    )
    bld.add_argument("--crs", default=None, help="CRS of a world file, e.g. EPSG:32616")
    bld.add_argument(
        "--zoom", type=zoom_level, default=None, help="XYZ zoom (default: the highest)"
    )
    add_build_args(bld)
    bld.set_defaults(handler=run_build)

    mrg = sub.add_parser("merge", help="join the shards of a build-index --shard run")
    mrg.add_argument("shards", nargs="+", type=Path)
    mrg.add_argument("--out", required=True, type=Path)
    add_index_args(mrg)
    mrg.set_defaults(handler=run_merge)


def run_build(args: argparse.Namespace) -> int:
    from d4g_edge.build.tiles import open_tile_source

    src = open_tile_source(
        args.tiles,
        tile_size_m=args.tile_size_m,
        stride_m=args.stride_m,
        crs=args.crs,
        zoom=args.zoom,
    )
    out = build_from_args(src, args)
    print(f"wrote {out}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from d4g_edge.build.shards import merge_shards

    out = merge_shards(
        args.shards,
        args.out,
        ground=args.ground,
        params=index_params(args),
        threads=args.threads,
        cells=args.cells,
    )
    print(f"wrote {out}")
    return 0
