"""Build a d4g-edge bundle from a dataset layout or the procedural world (repository tooling).

The same torch-free builder as ``d4g-edge build-index`` (:func:`d4g_edge.build.build_index`),
fed by the sources in :mod:`train.tile_sources`. Satellite tiles are embedded with the
exported satellite student; ``--ground`` ships the ground student in the bundle.

Country scale: ``--dask SCHEDULER --shards N`` runs the N shard builds (``--shard i/N``) as
tasks on a Dask cluster (``dask.distributed``; ``local:W`` starts a LocalCluster of W worker
processes on this machine) and merges them into one bundle here. Every worker must see the
model, the data and the output folder at the same paths (a shared filesystem); each shard
resumes from its saved parts, so a lost task is simply run again.

Usage::

    python -m tools.build_index --dataset vigor --data /data/VIGOR --split test \
        --model artifacts/satellite_int8.onnx --ground artifacts/ground_int8.onnx --out bundles/v
    python -m tools.build_index --world 90210 --style suburb --size-m 600 --tile-size-m 90 \
        --stride-m 15 --model artifacts/satellite_int8.onnx --ground ... --out bundles/town
    # on a cluster (dask scheduler at tcp://head:8786, /shared mounted on every worker):
    python -m tools.build_index --world 7 --size-m 10000 --stride-m 45 --storage pca-int8 \
        --cells --model /shared/satellite_int8.onnx --out /shared/bundles/country \
        --dask tcp://head:8786 --shards 64
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from d4g_edge.cli.build_index import add_build_args, build_from_args
from d4g_edge.config import ConfigError
from d4g_edge.errors import D4GEdgeError
from d4g_edge.log import setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.build_index", description=__doc__.split("Usage")[0]
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
    p.add_argument(
        "--origin",
        type=float,
        nargs=2,
        default=(40.0, -88.0),
        metavar=("LAT", "LON"),
        help="world's north-west corner (towns side by side need different ones)",
    )
    add_build_args(p)  # --model, --out, --shard, --resume, --ground, HNSW, --threads, --cells
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        help="run the shards as tasks on this Dask scheduler (tcp://host:8786), or on a local "
        "cluster of W worker processes (local:W), then merge (see the module doc)",
    )
    p.add_argument("--shards", type=int, default=0, help="with --dask: shard tasks (>= 1)")
    return p


def build_shard(source, model: str, out: str, shard: tuple[int, int], args: dict) -> str:
    """One shard of the build (a Dask task): embeds every n-th tile into ``out``."""
    from d4g_edge.build.builder import build_index

    build_index(source, model, out, shard=shard, resume=True, **args)
    return out


def build_on_dask(source, args) -> Path:
    """The shards of ``source`` as tasks on ``args.dask``, merged into ``args.out``."""
    from distributed import Client, LocalCluster

    from d4g_edge.build.shards import merge_shards
    from d4g_edge.cli.build_index import index_params

    n = int(args.shards)
    if n < 1:
        raise D4GEdgeError(f"--dask needs --shards N >= 1 (tasks to run), got {n}")
    if args.dask.startswith("local"):
        workers = int(args.dask.partition(":")[2] or 2)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
    else:
        cluster = None
    shard_root = args.out.with_name(args.out.name + ".shards")
    task_args = {"batch_size": args.batch_size, "threads": 1, "cell_deg": args.cell_deg}
    with Client(cluster or args.dask) as client:
        futures = [
            client.submit(
                build_shard,
                source,
                str(args.model),
                str(shard_root / str(i)),
                (i, n),
                task_args,
                key=f"d4g-shard-{i}-of-{n}-{args.out.name}",
                pure=False,
            )
            for i in range(n)
        ]
        shards = client.gather(futures)
    if cluster is not None:
        cluster.close()
    out = merge_shards(
        shards, args.out, ground=args.ground, params=index_params(args), cells=args.cells
    )
    shutil.rmtree(shard_root, ignore_errors=True)
    return out


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
                tuple(args.origin),
            )
        if args.dask:
            out = build_on_dask(src, args)
        else:
            out = build_from_args(src, args)
    except (D4GEdgeError, ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
