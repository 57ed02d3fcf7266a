"""Embed satellite tiles with the exported satellite encoder into a bundle (torch-free).

Tiles come from any tile source (:mod:`d4g_edge.tiles`, or ``train.tile_sources`` for
datasets and the procedural world). Work is saved in parts of ``part_size`` tiles under
``<out>.parts/``, so ``resume=True`` continues an interrupted build; ``shard=(i, n)`` embeds
every n-th tile starting at i and writes a *shard* (embeddings + tile rows, no graph) that
:func:`merge_shards` joins into one bundle, so a country is embedded on many machines by any
scheduler. A progress bar shows when tqdm is installed.

Usage::

    from d4g_edge.build import build_index
    from d4g_edge.shards import merge_shards
    build_index(source, "satellite_int8.onnx", "bundles/town", ground="ground_int8.onnx")
    build_index(source, sat, "shards/2", shard=(2, 8)); merge_shards(dirs, "bundles/all")
"""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge._io import atomic_write_bytes, atomic_write_json
from d4g_edge._log import logger
from d4g_edge.bundle import check_pairing, model_entry, write_bundle
from d4g_edge.errors import BundleError, TileSourceError
from d4g_edge.geo import offset_latlon
from d4g_edge.image import load_rgb
from d4g_edge.index import STORAGES, IndexParams
from d4g_edge.polar import cell_centres
from d4g_edge.preprocess import preprocess
from d4g_edge.runtime import open_encoder
from d4g_edge.shards import open_grounds, parse_shard, write_shard
from d4g_edge.tiles.base import DEFAULT_CELL_DEG, TileSource, TileTable

__all__ = [
    "add_build_args",
    "add_index_args",
    "build_from_args",
    "build_index",
    "embed_tiles",
    "index_params",
    "parse_shard",
]


def add_index_args(p) -> None:
    """The flags shared by every command that writes a bundle (``--ground``, HNSW, cells)."""
    p.add_argument(
        "--ground",
        type=Path,
        action="append",
        help="ground model to ship in the bundle (.onnx and/or .pte; repeat for both)",
    )
    p.add_argument("--M", type=int, default=32, help="HNSW graph degree (default: 32)")
    p.add_argument("--ef-construction", type=int, default=200, help="HNSW build beam")
    p.add_argument("--ef", type=int, default=128, help="HNSW search beam (default: 128)")
    p.add_argument(
        "--exact-threshold",
        type=int,
        default=20_000,
        help="search exactly below this many tiles (default: 20000)",
    )
    p.add_argument(
        "--storage",
        choices=STORAGES,
        default="hnswlib",
        help="hnswlib graph, or float16 vectors searched exactly (half the size; for bundles "
        "below the exact threshold) (default: hnswlib)",
    )
    p.add_argument("--threads", type=int, default=None, help="encoder threads")
    p.add_argument(
        "--cells",
        action="store_true",
        help="one index per geographic cell, so a device loads only the cells near a prior",
    )


def add_build_args(p) -> None:
    """The flags of every command that embeds tiles (``d4g-edge build-index``,
    ``train.build_index``): encoder, output, sharding, cells, plus :func:`add_index_args`."""
    p.add_argument("--model", required=True, type=Path, help="satellite encoder (.onnx/.pte)")
    p.add_argument("--out", required=True, type=Path, help="bundle (or shard) directory")
    p.add_argument("--shard", default="0/1", help="embed only shard i of n (then: merge)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted build")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--cell-deg", type=float, default=DEFAULT_CELL_DEG, help="cell size (deg; ~1.1 km)"
    )
    add_index_args(p)


def build_from_args(source: TileSource, args) -> Path:
    """:func:`build_index` of ``source`` with the flags :func:`add_build_args` parsed."""
    return build_index(
        source,
        args.model,
        args.out,
        ground=args.ground,
        shard=parse_shard(args.shard),
        resume=args.resume,
        params=index_params(args),
        batch_size=args.batch_size,
        threads=args.threads,
        cell_deg=args.cell_deg,
        cells=args.cells,
    )


def index_params(args) -> IndexParams:
    try:
        return IndexParams(
            M=args.M,
            ef_construction=args.ef_construction,
            ef=args.ef,
            exact_threshold=args.exact_threshold,
            storage=args.storage,
        )
    except ValueError as err:
        raise BundleError(str(err)) from None


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="tile")
    except ImportError:
        return None


def embed_tiles(
    source: TileSource,
    satellite: Any,
    work: Path,
    *,
    shard: tuple[int, int] = (0, 1),
    batch_size: int = 32,
    part_size: int = 1024,
    resume: bool = False,
    cell_deg: float = DEFAULT_CELL_DEG,
) -> tuple[np.ndarray, TileTable]:
    """Embeddings and tile rows of ``source`` (this shard's tiles), saved part by part.

    An off-centre satellite encoder (``centre_step`` in its config) embeds every tile around
    :func:`reference_centres`: one row per (tile, centre), placed at the centre.
    """
    centres = reference_centres(source, satellite.config)
    state = {
        "source": source.describe(),
        "satellite_sha256": satellite.sha256,
        "shard": list(shard),
        "part_size": part_size,
        "centres": None if centres is None else centres.tolist(),
    }
    state_file = work / "state.json"
    if work.exists() and resume:
        old = json.loads(state_file.read_text()) if state_file.is_file() else None
        if old != state:
            raise BundleError(
                f"cannot resume from {work}: it was started with {old}, this build "
                f"is {state}; drop --resume to start over"
            )
    elif work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(state_file, state)
    i, n = shard
    tiles = [t for k, t in enumerate(source) if k % n == i]
    if not tiles:
        raise TileSourceError(f"shard {i}/{n} of {state['source']} holds no tiles")
    bar = _progress(len(tiles), "embedding tiles")
    started, done_before = time.perf_counter(), 0
    parts = []
    for p, start in enumerate(range(0, len(tiles), part_size)):
        path = work / f"part-{p:06d}.npz"
        chunk = tiles[start : start + part_size]
        if path.is_file():
            done_before += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
        else:
            vecs = []
            for b in range(0, len(chunk), batch_size):
                imgs = [t.read() for t in chunk[b : b + batch_size]]
                vecs.append(_embed_batch(satellite, imgs, centres, batch_size))
                if bar is not None:
                    bar.update(len(imgs))
            table = _table(chunk, centres, cell_deg)
            _save_part(path, np.concatenate(vecs), table)
            if bar is None:
                logger.info("embedded %d / %d tiles", start + len(chunk), len(tiles))
        parts.append(path)
    if bar is not None:
        bar.close()
    logger.info(
        "embedded %d tiles in %.1f s (%d resumed)",
        len(tiles),
        time.perf_counter() - started,
        done_before,
    )
    loaded = [_load_part(p) for p in parts]
    return np.concatenate([v for v, _ in loaded]), TileTable.concat([t for _, t in loaded])


def grid_stride(source: TileSource) -> float | None:
    """Distance between neighbouring tile centres in tile sides: the source's ``grid_stride``
    (None: every query sits at its tile's centre, as in CVUSA), else ``stride_m /
    tile_size_m`` from ``describe()``, else 1.0 (abutting tiles, e.g. web-map tiles)."""
    if hasattr(source, "grid_stride"):
        return source.grid_stride
    d = source.describe()
    if d.get("stride_m") and d.get("tile_size_m"):
        return float(d["stride_m"]) / float(d["tile_size_m"])
    return 1.0


def reference_centres(source: TileSource, config) -> np.ndarray | None:
    """``(C, 2)`` (east, north) centres in tile sides to embed each tile around, or None for
    the tile centre alone (:func:`d4g_edge.polar.cell_centres` of the encoder's
    ``centre_step`` over the source's :func:`grid_stride`)."""
    step = config.input().centre_step
    stride = grid_stride(source)
    if step is None or stride is None:
        return None
    centres = cell_centres(stride, step)
    if len(centres) > 1:
        logger.info(
            "off-centre encoder: each tile embedded around %d centres (grid stride %.3g tiles, "
            "centre step %.3g)",
            len(centres),
            stride,
            step,
        )
    return centres if len(centres) > 1 else None


def _embed_batch(satellite: Any, imgs, centres: np.ndarray | None, batch_size: int) -> np.ndarray:
    if centres is None:
        return satellite.embed(imgs, batch_size=batch_size)
    x = [
        preprocess(load_rgb(img), satellite.config, centre=tuple(c))
        for img in imgs
        for c in centres
    ]
    return np.concatenate(
        [
            satellite.embed_tensor(np.concatenate(x[k : k + batch_size]))
            for k in range(0, len(x), batch_size)
        ]
    )


def _table(chunk, centres: np.ndarray | None, cell_deg: float) -> TileTable:
    """One row per tile, or per (tile, centre) placed at the centre."""
    ids = np.array([t.tile_id for t in chunk], np.int64)
    lat = np.array([t.lat for t in chunk], np.float64)
    lon = np.array([t.lon for t in chunk], np.float64)
    side = np.array([t.footprint_m for t in chunk], np.float64)
    if centres is not None:
        if not np.isfinite(side).all():
            raise TileSourceError(
                "an off-centre encoder places each tile's centres in metres, but this source "
                "gives no tile footprint; give the tile size (e.g. --footprint-m)"
            )
        c = len(centres)
        lat, lon = offset_latlon(
            np.repeat(lat, c),
            np.repeat(lon, c),
            np.tile(centres[:, 0], len(chunk)) * np.repeat(side, c),
            np.tile(centres[:, 1], len(chunk)) * np.repeat(side, c),
        )
        ids, side = np.repeat(ids, c), np.repeat(side, c)
    return TileTable.from_rows(ids, lat, lon, side, cell_deg)


def _save_part(path: Path, vectors: np.ndarray, table: TileTable) -> None:
    buf = io.BytesIO()
    np.savez(buf, vectors=vectors, tiles=np.frombuffer(table.to_bytes(), np.uint8))
    atomic_write_bytes(path, buf.getvalue())


def _load_part(path: Path) -> tuple[np.ndarray, TileTable]:
    with np.load(path, allow_pickle=False) as data:
        vectors, raw = data["vectors"], data["tiles"].tobytes()
    return vectors, TileTable.load(io.BytesIO(raw))


def build_index(
    source: TileSource,
    satellite_model: str | Path,
    out: str | Path,
    *,
    ground: str | Path | Sequence[str | Path] | None = None,
    shard: tuple[int, int] = (0, 1),
    resume: bool = False,
    params: IndexParams | None = None,
    batch_size: int = 32,
    part_size: int = 1024,
    threads: int | None = None,
    georeference: dict | None = None,
    cell_deg: float = DEFAULT_CELL_DEG,
    cells: bool = False,
) -> Path:
    """Embed ``source`` and write a bundle (or, with ``shard`` n > 1, a shard) to ``out``."""
    out = Path(out)
    sat = open_encoder(satellite_model, threads=threads)
    if sat.config.view != "satellite":
        raise BundleError(
            f"{satellite_model} is the {sat.config.view} encoder; --model takes "
            "the satellite one (e.g. satellite_int8.onnx)"
        )
    g = open_grounds(ground, threads)
    for enc in g or []:
        check_pairing(enc.config, sat.config, "build-index")
    work = out.with_name(out.name + ".parts")
    vectors, table = embed_tiles(
        source,
        sat,
        work,
        shard=shard,
        batch_size=batch_size,
        part_size=part_size,
        resume=resume,
        cell_deg=cell_deg,
    )
    geo = {"source": source.describe(), "cell_deg": cell_deg, **(georeference or {})}
    for key in ("tile_size_m", "stride_m"):
        if key in geo["source"]:
            geo.setdefault(key, geo["source"][key])
    centres = reference_centres(source, sat.config)
    if centres is not None:  # rows are (tile, centre): the position step is the centres'
        side = float(np.nanmedian(table.footprint_m))
        geo["centres"] = {
            "per_tile": len(centres),
            "offsets": centres.tolist(),
            "grid_stride": grid_stride(source),
            "spacing_m": side * float(np.ptp(centres[:, 0])) / max(1, np.sqrt(len(centres)) - 1),
        }
    entry = model_entry(sat.path, sat.config, sat.sha256)
    if shard[1] > 1:
        write_shard(out, vectors, table, entry, shard, geo)
    else:
        write_bundle(
            out, vectors, table, entry, ground=g, params=params, georeference=geo, cells=cells
        )
    shutil.rmtree(work, ignore_errors=True)
    logger.info("wrote %s (%d tiles)", out, len(table))
    return out
