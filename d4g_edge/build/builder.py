"""Embed satellite tiles with the exported satellite encoder into a bundle (torch-free).

Tiles come from any tile source (:mod:`d4g_edge.build.tiles`, or ``train.tile_sources`` for
datasets and the procedural world). Work is saved in parts of ``part_size`` tiles under
``<out>.parts/`` (:mod:`d4g_edge.build.parts`), so ``resume=True`` continues an interrupted
build; ``shard=(i, n)`` embeds every n-th tile starting at i and writes a *shard* (embeddings
+ tile rows, no graph) that :func:`merge_shards` joins into one bundle, so a country is
embedded on many machines by any scheduler. A progress bar shows when tqdm is installed; it
starts before the first tile is read and is cleared if the build fails, so an ``error:`` line
is the last thing printed.

Every argument is checked before any tile is embedded: the tile count against ``max_tiles``
(counted, never listed: a raster at a 0.1 mm stride is refused at once, with its count),
``--out`` (a file, or a non-empty folder that is not a bundle, is refused), batch and part
sizes, the shard, the cell size (the flags of :mod:`d4g_edge.cli.build_index` at parse time).
Mostly-nodata tiles (:mod:`d4g_edge.build.tiles.nodata`) are skipped and counted in the log.

Usage::

    from d4g_edge.build.builder import build_index
    from d4g_edge.build.shards import merge_shards
    build_index(source, "satellite_int8.onnx", "bundles/town", ground="ground_int8.onnx")
    build_index(source, sat, "shards/2", shard=(2, 8)); merge_shards(dirs, "bundles/all")
"""

from __future__ import annotations

import contextlib
import itertools
import math
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge.build.parts import PART_FORMAT, load_part, open_work, save_part
from d4g_edge.build.shards import check_out, open_grounds, parse_shard, write_shard
from d4g_edge.build.tiles.base import TileSource
from d4g_edge.build.tiles.nodata import MAX_NODATA_FRACTION, NoDataTile
from d4g_edge.bundle import check_pairing, model_entry, write_bundle
from d4g_edge.errors import BundleError, TileSourceError
from d4g_edge.geo import offset_latlon
from d4g_edge.image import load_rgb
from d4g_edge.index import IndexParams
from d4g_edge.log import logger
from d4g_edge.polar import cell_centres
from d4g_edge.preprocess import preprocess
from d4g_edge.runtime import open_encoder
from d4g_edge.tiletable import DEFAULT_CELL_DEG, TileTable

# A default that stops a mistyped stride or CRS early: 2 M tiles is ~60 km^2 at 5 m stride,
# hours of embedding on a CPU; raise it with --max-tiles for a real country-scale build.
DEFAULT_MAX_TILES = 2_000_000
CELL_DEG_RANGE = (1e-6, 90.0)  # cell keys are (lat + 90) / cell_deg in 32 bits

__all__ = ["DEFAULT_MAX_TILES", "build_index", "check_cell_deg", "embed_tiles", "parse_shard"]


def check_cell_deg(value: float) -> float:
    """``value`` as a float if it is a cell size the cell keys can hold, else BundleError."""
    lo, hi = CELL_DEG_RANGE
    if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
        raise BundleError(f"the cell size must be {lo:g}..{hi:g} degrees, got {value!r}")
    return float(value)


def _check_count(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise BundleError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def count_tiles(source: TileSource, max_tiles: int = DEFAULT_MAX_TILES) -> int:
    """``len(source)``, refused above ``max_tiles`` (a source counts its tiles up front)."""
    n = len(source)
    if n > max_tiles:
        d = source.describe()
        stride = f" at a {d['stride_m']:g} m stride" if d.get("stride_m") else ""
        raise TileSourceError(
            f"{d.get('path', 'the tile source')} makes {n:,} tiles{stride}, more than the limit "
            f"of {max_tiles:,}; increase --stride-m (the count falls with its square) or raise "
            f"the limit with --max-tiles {n} (max_tiles= in the API)"
        )
    return n


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def _progress(total: int, desc: str) -> Iterator:
    """A tqdm bar (or nothing without tqdm) that is always closed: if the build fails it is
    cleared first, so the caller's ``error:`` line is the last thing on the terminal (an
    unclosed bar is redrawn at exit by tqdm's finalizer, after the error)."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield _NoBar()
        return
    bar = tqdm(total=total, desc=desc, unit="tile")
    try:
        yield bar
    except BaseException:
        bar.leave = False  # close() then erases the bar's line instead of keeping it
        raise
    finally:
        bar.close()


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

    Tiles are streamed from the source (never listed whole). A tile whose ``read()`` raises
    :class:`~d4g_edge.build.tiles.nodata.NoDataTile` is skipped and counted. An off-centre
    satellite encoder (``centre_step`` in its config) embeds every tile around
    :func:`reference_centres`: one row per (tile, centre), placed at the centre.
    """
    centres = reference_centres(source, satellite.config)
    state = {
        "source": source.describe(),
        "satellite_sha256": satellite.sha256,
        "shard": list(shard),
        "part_size": part_size,
        "part_format": PART_FORMAT,
        "centres": None if centres is None else centres.tolist(),
    }
    open_work(work, state, resume)
    i, n = shard
    count = len(range(i, len(source), n))
    if not count:
        raise TileSourceError(f"shard {i}/{n} of {state['source']} holds no tiles")
    started, done_before, parts = time.perf_counter(), 0, []
    tiles = itertools.islice(iter(source), i, None, n)
    with _progress(count, "embedding tiles") as bar:
        for p, start in enumerate(range(0, count, part_size)):
            path = work / f"part-{p:06d}.npz"
            chunk = list(itertools.islice(tiles, part_size))
            if path.is_file():  # finished before the build was interrupted: kept as it is
                done_before += len(chunk)
                bar.update(len(chunk))
            else:
                vectors, kept, empty = _embed_chunk(satellite, chunk, centres, batch_size, bar)
                save_part(path, vectors, _table(kept, centres, cell_deg), empty)
                if isinstance(bar, _NoBar):
                    logger.info("embedded %d / %d tiles", start + len(chunk), count)
            parts.append(path)
    loaded = [load_part(p) for p in parts]
    skipped = sum(k for _, _, k in loaded)
    logger.info(
        "embedded %d tiles in %.1f s (%d resumed)",
        count - skipped,
        time.perf_counter() - started,
        done_before,
    )
    _check_skipped(skipped, count, shard, state["source"])
    return np.concatenate([v for v, _, _ in loaded]), TileTable.concat([t for _, t, _ in loaded])


def _embed_chunk(
    satellite: Any, chunk: list, centres: np.ndarray | None, batch_size: int, bar
) -> tuple[np.ndarray, list, int]:
    """(embeddings, tiles kept, nodata tiles skipped) of one part's tiles, read and embedded
    ``batch_size`` at a time; the bar advances by every tile read, kept or not."""
    vecs, kept, empty = [], [], 0
    for b in range(0, len(chunk), batch_size):
        imgs, batch = [], chunk[b : b + batch_size]
        for t in batch:
            try:
                imgs.append(t.read())
                kept.append(t)
            except NoDataTile as why:
                logger.debug("%s", why)
                empty += 1
        if imgs:
            vecs.append(_embed_batch(satellite, imgs, centres, batch_size))
        bar.update(len(batch))
    if not vecs:  # every tile of the part was nodata: an empty part, of the right width
        return np.zeros((0, satellite.config.embed_dim), np.float32), kept, empty
    return np.concatenate(vecs), kept, empty


def _check_skipped(skipped: int, count: int, shard: tuple[int, int], described: dict) -> None:
    """Log the nodata tiles skipped; refuse a build where every tile was nodata."""
    if skipped:
        logger.info(
            "skipped %d of %d tiles: more than %.0f %% nodata (d4g_edge.build.tiles.nodata)",
            skipped,
            count,
            100 * MAX_NODATA_FRACTION,
        )
    if skipped == count:
        i, n = shard
        what = f"all {count} tiles of {described.get('path', 'the source')}"
        if n == 1:
            raise TileSourceError(
                f"{what} are more than {MAX_NODATA_FRACTION:.0%} nodata: nothing to index; "
                "check the raster's nodata value / alpha, or point --tiles at the imagery"
            )
        # one shard of a country can be all sea: an empty shard, which merge accepts
        logger.warning("shard %d/%d: %s are nodata; the shard is empty", i, n, what)


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
    max_tiles: int = DEFAULT_MAX_TILES,
) -> Path:
    """Embed ``source`` and write a bundle (or, with ``shard`` n > 1, a shard) to ``out``.

    Every argument is checked, and the tiles counted against ``max_tiles``, before a model
    is opened or a tile read."""
    shard = _check_shard(shard)
    out = check_out(out, "shard" if shard[1] > 1 else "bundle")
    batch_size = _check_count("batch_size (--batch-size)", batch_size)
    part_size = _check_count("part_size", part_size)
    max_tiles = _check_count("max_tiles (--max-tiles)", max_tiles)
    if threads is not None:
        threads = _check_count("threads (--threads)", threads)
    cell_deg = check_cell_deg(cell_deg)
    count_tiles(source, max_tiles)
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
            out, vectors, table, entry, query=g, params=params, georeference=geo, cells=cells
        )
    shutil.rmtree(work, ignore_errors=True)
    logger.info("wrote %s (%d tiles)", out, len(table))
    return out


def _check_shard(shard) -> tuple[int, int]:
    if isinstance(shard, str):
        return parse_shard(shard)
    try:
        i, n = (int(v) for v in shard)
        ok = all(not isinstance(v, bool) and int(v) == v for v in shard)
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= i < n:
        raise BundleError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
    return i, n
