"""Maps too large for memory as float32: modelled maps drawn to disk, and the SDK's
compressed kinds built from them chunk by chunk.

:func:`modelled_map` draws a :class:`~benchmarks._map_data.RowModel` map band by band to a
float16 memory map (``work/rows.npy``, with the rows' norms for the query models), and
reuses it when asked and the stamp (model, size, seed) matches.

The SDK's compressed kinds build from any array, a float16 memory map too, chunk by chunk
(10^7 x 512 rows would be 20 GB as float32): only the codes are held in memory.
``bench_map`` uses these for every kind listed here when the rows as float32 exceed
``--max-ram-gb``; other kinds are then skipped.

Usage::

    v, tile_of_row, make_q, info = modelled_map(model, 10_000_000, Path("runs/m"), False)
    q, true_tile, where = make_q(300, 1, "real-residuals")
    build_streamed(STREAMED["pca-int8 ivf"], rows_memmap, folder)   # -> folder/index.bin
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks._map_data import RowModel
from d4g_edge.index import EmbeddingIndex, IndexParams
from d4g_edge.log import logger

# the same parameters as benchmarks._map_kinds' kinds of these names (a file whose header
# disagrees with the kind's parameters is refused when it is opened, so a drift shows)
STREAMED: dict[str, IndexParams] = {
    "pca-int8 flat": IndexParams(storage="pca-int8", pca_dims=64, lists=1),
    "pca-int8 ivf": IndexParams(storage="pca-int8", pca_dims=64, probe=16),
    "pca-bits ivf": IndexParams(storage="pca-bits", row_bytes=72, lists=0, probe=16),
    "pca-bits ivf p32": IndexParams(storage="pca-bits", row_bytes=72, lists=0, probe=32),
}


def build_streamed(params: IndexParams, rows, folder: Path) -> None:
    """The SDK's build of ``params`` from the float16 memory map ``rows``: both compressed
    kinds read it chunk by chunk themselves."""
    # fewer components than 64 only for tiny test rows, as benchmarks._map_kinds' kinds
    if params.storage == "pca-int8":
        params = replace(params, pca_dims=min(params.pca_dims, rows.shape[1]))
    EmbeddingIndex.build(rows, params).save(Path(folder) / "index.bin")


def load_or_fit(args, rows, queries) -> RowModel:
    if args.model_file is not None and args.model_file.is_file():
        model = RowModel.load(args.model_file)
        if any(q.startswith("real-residuals") for q in args.query_model) and not len(
            model.residuals
        ):
            raise SystemExit(
                f"{args.model_file} was fitted before real-residual queries existed: "
                "give a new --model-file (it is fitted and saved there)"
            )
        return model
    model = RowModel.fit(rows, queries)
    if args.model_file is not None:
        args.model_file.parent.mkdir(parents=True, exist_ok=True)
        model.save(args.model_file)
    return model


def modelled_map(model: RowModel, n: int, work: Path, reuse: bool):
    """(rows: float16 memory map work/rows.npy, tile_of_row, query sampler (m, seed, query
    model), draw info) of the modelled map of about ``n`` rows (seed ``n``), drawn band by
    band, or reused when ``reuse`` and ``work`` holds this model's draw of it."""
    grid = model.grid(n)
    stamp = {"n": n, "seed": n, "model": _fingerprint(model), "rows": grid.count}
    info = work / "draw.json"
    if reuse and info.is_file() and json.loads(info.read_text())["stamp"] == stamp:
        v = np.load(work / "rows.npy", mmap_mode="r")
        norms = np.load(work / "norms.npy")
        draw = json.loads(info.read_text())["draw"] | {"reused": True}
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        t = time.perf_counter()
        v, norms, grid = model._draw(n, n, work / "rows.npy")
        np.save(work / "norms.npy", norms)
        # peak RSS counts the memory map's written pages too (page cache, not the heap)
        draw = {"draw_s": time.perf_counter() - t, "draw_maxrss_mb": _peak_rss_mb()}
        info.write_text(json.dumps({"stamp": stamp, "draw": draw}))
        logger.info("drew %d modelled rows: %s", len(v), draw)
    tile_of_row = np.repeat(np.arange(grid.tiles_side**2), model.per_tile)

    def make_q(m: int, seed: int, query_model: str):
        """``query_model``: gaussian, real-residuals, or real-residuals:S (the residuals
        times S instead of the calibrated scale; 1: as measured on the real map)."""
        name, _, scale = query_model.partition(":")
        if scale and name != "real-residuals":
            raise SystemExit(f"only real-residuals takes a fixed scale, got {query_model}")
        use = replace(model, residual_scale=float(scale)) if scale else model
        return use.queries(v, norms, grid, m, seed, name)

    return v, tile_of_row, make_q, draw


def _fingerprint(model: RowModel) -> str:
    h = hashlib.sha256()
    for a in (model.mean, model.basis, model.std, model.sigmas()):
        h.update(np.ascontiguousarray(a, np.float64).tobytes())
    return h.hexdigest()[:16]


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
