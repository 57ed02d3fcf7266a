"""PCA or a learned projection for the int8 index? (issue 22, item 1; not a test)

The bundled default stores each row as the int8 codes of its leading PCA components of the
bundle's own rows (``pca-int8``). The alternative measured here: a linear projection ``P``
(512 -> d, no bias) trained on ground/satellite pairs of the *training* cities with a
symmetric InfoNCE loss (:mod:`benchmarks._projection_fit`), then stored the same way.

* Fitting data (cached in ``--work``): the training cities' satellite rows as a bundle makes
  them (every tile around its 25 polar centres, the satellite int8 ONNX student, on the CPU,
  :func:`d4g_edge.build.builder.embed_tiles`) and their panoramas north-up through the
  bundle's ground model (:meth:`d4g_edge.Localizer.embed`, heading 0). A panorama's true row
  is the centre of its positive tile nearest its camera (checked against VIGOR's pixel
  offsets). 10 % of the panoramas are held out to choose the temperature and the step.
* Evaluation: the bundle's test rows (``--bundle``, a float16 index) and the world's 1,200
  VIGOR test panoramas (``--queries``, checked against the bundle's ground model on a few
  images). Per d: PCA as the SDK fits it (:meth:`CompressedIndex.build` on the test rows);
  the learned ``P`` stored in the same file format (a :class:`Codec` with ``mean = 0``,
  ``basis = P`` and int8 codes of ``unit(row @ P)``, per-component scales as Codec's, built
  by :meth:`CompressedIndex.from_codes`, saved and loaded back), and ``P`` without int8;
  as controls for what the training adds, the SDK's PCA basis and the training rows' (where
  the PCA-initialised fit starts) stored the learned way (unit projected rows, mean 0).
  Scores are the index's own ``all_scores``; one best row per tile as ``Localizer`` ranks
  them (:func:`d4g_edge.retrieval.best_of_each`). R@1 / R@10: the true tile is the best /
  among the best 10 tiles; median error: metres from the camera to the best row's centre;
  recall@1: the best row scores (exact float32 cosine) as high as the exact search's best.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.projection --data data/vigor \\
        --bundle runs/h5/default_f16 --queries runs/h5/vigor_test_queries.npz \\
        --work runs/s11/proj --json runs/s11/proj/projection.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks._projection_fit import INITS, fit_projection, initial_basis
from d4g_edge.bundle import Bundle
from d4g_edge.compressed import Codec, CompressedIndex
from d4g_edge.geo import haversine_m
from d4g_edge.index import IndexParams
from d4g_edge.log import logger, setup_logging
from d4g_edge.retrieval import best_of_each
from d4g_edge.vq import unit

SATELLITE = Path("artifacts/default/satellite_int8.onnx")
TOP_TILES = 10


def _row_centres(data, table, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Each panorama's true row: of its positive tile's rows, the nearest to its camera;
    and that row's index among the tile's centres by VIGOR's pixel offsets (a check)."""
    from d4g_edge.image import load_rgb
    from d4g_edge.polar import cell_centres

    tiles = table.tile_id
    pos = np.empty(len(data), np.int64)
    for i, (t, (lat, lon)) in enumerate(zip(data.query_ids, data.query_latlon, strict=True)):
        cand = np.flatnonzero(tiles == t)
        pos[i] = cand[np.argmin(haversine_m(lat, lon, table.lat[cand], table.lon[cand]))]
    px = load_rgb(data.reference_paths[0]).shape[1]
    # offsets are (north, east) pixels of the tile centre from the camera
    cam = -data.positive_offsets_px[:, 0, ::-1] / px  # (east, north) in tile sides
    centres = cell_centres(data.tile_stride, step)  # the encoder's centre step
    by_offset = np.argmin(((cam[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    return pos, by_offset


def training_pairs(data_dir: Path, bundle: Path, satellite: Path, work: Path) -> dict:
    """The training cities' rows and panoramas, embedded once and cached (see module doc)."""
    cache = work / "train_pairs.npz"
    if cache.is_file():
        with np.load(cache) as f:
            return dict(f)
    from d4g_edge.build.builder import embed_tiles
    from d4g_edge.localizer import Localizer
    from d4g_edge.runtime import open_encoder
    from train.tile_sources import DatasetTileSource

    src = DatasetTileSource("vigor", data_dir, "train", vigor_mode="cross")
    t0 = time.perf_counter()
    sat = open_encoder(satellite, threads=1)
    rows, table = embed_tiles(src, sat, work / "train_rows.parts", resume=True)
    rows_s = time.perf_counter() - t0
    loc = Localizer(bundle, threads=1)
    if loc.bundle.manifest["models"]["satellite"]["sha256"] != sat.sha256:
        raise SystemExit(f"{satellite} is not the satellite model {bundle} was built with")
    data = src.data
    query = np.concatenate([loc.embed(p, heading=0.0) for p in data.query_paths])
    pos, by_offset = _row_centres(data, table, sat.config.input().centre_step)
    first = np.searchsorted(table.tile_id, data.query_ids)  # a tile's centres are consecutive
    out = {
        "rows": rows.astype(np.float32),
        "row_tile": table.tile_id,
        "query": query.astype(np.float32),
        "pos": pos,
        "offset_agrees": (pos - first) == by_offset,
        "camera_to_row_m": haversine_m(*data.query_latlon.T, table.lat[pos], table.lon[pos]),
        "embed_s": np.float64(time.perf_counter() - t0),
        "rows_s": np.float64(rows_s),
    }
    np.savez(cache, **out)
    return out


def test_set(bundle: Path, queries: Path, data_dir: Path, check: int) -> dict:
    """The bundle's float rows and tiles, and the cached test queries, checked: the same
    panoramas as the dataset's test split, and ``check`` of them re-embedded to match."""
    from d4g_edge.localizer import Localizer
    from train.datasets import load

    b = Bundle.load(bundle)
    if b.index.params.storage != "float16":
        raise SystemExit(f"{bundle} must keep its rows (a float16 index)")
    with np.load(queries) as f:
        q = {k: f[k] for k in f.files}
    split = load("vigor", data_dir, "test", mode="cross")
    if not np.array_equal(q["query_ids"], split.query_ids):
        raise SystemExit(f"{queries} are not the test panoramas of {data_dir} in order")
    loc = Localizer(bundle, threads=1)
    for i in np.linspace(0, len(split) - 1, check).round().astype(int):
        z = loc.embed(split.query_paths[i], heading=0.0)[0]
        if float(z @ q["query"][i]) < 0.9999:
            raise SystemExit(f"query {i} of {queries} differs from Localizer.embed")
    return {
        "rows": unit(np.asarray(b.index.vectors, np.float32)),
        "tiles": b.tiles,
        "query": q["query"],
        "truth": q["query_ids"],
        "latlon": q["query_latlon"],
        "checked": int(check),
    }


def measure(scores: np.ndarray, test: dict, exact_best: np.ndarray) -> dict:
    """SDK-style R@1, R@10, median metres and recall@1 vs exact float32 of (Q, rows) scores."""
    tiles = test["tiles"]
    rows, _ = best_of_each(scores, tiles.groups, TOP_TILES)
    tile = tiles.tile_id[rows]
    lat, lon = tiles.lat[rows[:, 0]], tiles.lon[rows[:, 0]]
    err = haversine_m(test["latlon"][:, 0], test["latlon"][:, 1], lat, lon)
    got = np.einsum("qd,qd->q", test["query"], test["rows"][rows[:, 0]])
    hit = tile[:, 0] == test["truth"]
    return {
        "hit": hit,
        "r1": float(100 * np.mean(hit)),
        "r10": float(100 * np.mean((tile == test["truth"][:, None]).any(1))),
        "median_m": float(np.median(err)),
        "recall_at_1": float(np.mean(got >= exact_best - 1e-6)),
        "top1_score_median": float(np.median(scores.max(1))),
    }


def learned_index(basis: np.ndarray, rows: np.ndarray, path: Path) -> CompressedIndex:
    """``P`` in today's pca-int8 file: mean 0, basis P, codes of unit(row @ P); written and
    read back, so what is measured is what a bundle would load."""
    d = basis.shape[1]
    y = unit(rows @ basis)
    scale = (np.maximum(np.abs(y).max(0), 1e-12) / 127.0).astype(np.float32)
    codec = Codec(np.zeros(rows.shape[1], np.float32), basis.astype(np.float32), scale)
    codes = np.clip(np.rint(y / scale), -127, 127).astype(np.int8)
    params = IndexParams(storage="pca-int8", pca_dims=d, lists=1)
    CompressedIndex.from_codes(params, codec, codes).save(path)
    return CompressedIndex.load(path, rows.shape[1], len(rows), params)


def fitted(train: dict, d: int, init: str, args) -> dict:
    """The basis fitted for ``d`` from ``init`` (cached in ``--work`` unless ``--refit``)."""
    path = args.work / f"fit_{init}_{d}.npz"
    if path.is_file() and not args.refit:
        with np.load(path) as f:
            return {"basis": f["basis"], **json.loads(str(f["summary"]))}
    logger.info("fitting d=%d from %s", d, init)
    fit = fit_projection(
        train["query"],
        train["rows"],
        train["pos"],
        d,
        group=train["row_tile"],
        init=init,
        taus=tuple(args.taus),
        steps=args.steps,
        seed=args.seed,
    )
    summary = fit.summary() | {"history": {str(k): v for k, v in fit.history.items()}}
    np.savez(path, basis=fit.basis, summary=json.dumps(summary))
    return {"basis": fit.basis, **summary}


def _row(d: int, kind: str, row_bytes: int, scores: np.ndarray, test: dict, best) -> dict:
    return {"d": d, "kind": kind, "bytes_per_row": row_bytes, **measure(scores, test, best)}


def _one_d(d: int, train: dict, test: dict, exact_best: np.ndarray, args) -> list[dict]:
    """PCA as the SDK builds it; the same basis in the learned projection's storage (codes of
    the unit projected rows: the control for what the learning adds); the learned bases.
    An int8 kind's ``file_bytes`` is its saved index.bin (codes, basis, mean, scales)."""
    q, rows, w = test["query"], test["rows"], args.work
    out = []
    for unit_rows in (False, True):  # the plain kind, then the SDK's unit rows
        params = IndexParams(storage="pca-int8", pca_dims=d, lists=1, unit_rows=unit_rows)
        sdk = CompressedIndex.build(rows, params)
        path = w / f"index_sdk_{d}{'_unit' if unit_rows else ''}.bin"
        sdk.save(path)
        kind = "pca int8 (SDK, unit rows)" if unit_rows else "pca int8 (SDK)"
        out.append(_row(d, kind, d, sdk.all_scores(q), test, exact_best))
        out[-1]["file_bytes"] = path.stat().st_size
    # the same basis at mean 0 (codes of unit(row @ P), the learned kinds' storage)
    bases = [("pca int8, unit rows", "pca_unit", sdk.codec.basis, {})]
    if "pca" in args.inits:  # where the PCA-initialised fit starts: the training rows' PCA
        start = initial_basis(train["rows"], d, "pca")
        bases.append(("train-city pca, unit rows", "pca_train", start, {}))
    for init in args.inits:
        fit = fitted(train, d, init, args)
        info = {k: fit[k] for k in ("tau", "step", "val_r1", "init_val_r1", "fit_s")}
        bases.append((f"learned int8 ({init} init)", init, fit["basis"], info))
    for kind, name, basis, info in bases:
        path = w / f"index_{name}_{d}.bin"
        index = learned_index(basis, rows, path)
        out.append(_row(d, kind, d, index.all_scores(q), test, exact_best) | info)
        out[-1]["file_bytes"] = path.stat().st_size
        if info:  # the learned projection without int8
            zq, zr = q @ basis, unit(rows @ basis)
            out.append(_row(d, kind.replace("int8", "f32"), 4 * d, zq @ zr.T, test, exact_best))
    for r in out[1:]:  # paired: queries only this kind finds / only the reference finds
        for ref, key in ((out[0], "vs_pca_sdk"), (out[2], "vs_pca_unit")):
            if r is not ref:
                r[key] = [int((r["hit"] & ~ref["hit"]).sum()), int((ref["hit"] & ~r["hit"]).sum())]
    return out


def evaluate(train: dict, test: dict, args) -> list[dict]:
    """One result per (d, kind), after the exact float32 reference."""
    exact = test["query"] @ test["rows"].T
    exact_best = exact.max(1)
    out = [_row(512, "exact f32", 2048, exact, test, exact_best)]
    for d in args.dims:
        out += _one_d(d, train, test, exact_best, args)
    for r in out:
        del r["hit"]
    return out


def format_table(results: list[dict]) -> str:
    head = (
        f"{'d':>4} {'kind':26s} {'B/row':>5} {'R@1 %':>6} {'R@10 %':>6} {'med m':>6} "
        f"{'rec@1':>6} {'score':>6} {'+/- SDK':>8} {'+/- unit':>8} {'tau':>5} {'val R@1':>7} "
        f"{'fit s':>5}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        pair = "".join(
            f" {'+{}/-{}'.format(*r[k]):>8}" if k in r else f" {'':8}"
            for k in ("vs_pca_sdk", "vs_pca_unit")
        )
        extra = f" {r['tau']:5.2f} {r['val_r1']:7.1f} {r['fit_s']:5.0f}" if "tau" in r else ""
        lines.append(
            f"{r['d']:4d} {r['kind']:26s} {r['bytes_per_row']:5d} {r['r1']:6.1f} {r['r10']:6.1f} "
            f"{r['median_m']:6.1f} {r['recall_at_1']:6.3f} {r['top1_score_median']:6.3f}{pair}"
            f"{extra}"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.projection", description=__doc__.split("Usage")[0]
    )
    p.add_argument("--data", type=Path, required=True, help="the world's VIGOR layout")
    p.add_argument("--bundle", type=Path, required=True, help="the default with a float16 index")
    p.add_argument("--queries", type=Path, required=True, help="test query embeddings (npz)")
    p.add_argument("--satellite", type=Path, default=SATELLITE)
    p.add_argument("--work", type=Path, default=Path("runs/s11/proj"))
    p.add_argument("--dims", type=int, nargs="+", default=[16, 32, 48, 64])
    p.add_argument("--inits", nargs="+", choices=INITS, default=list(INITS))
    p.add_argument("--taus", type=float, nargs="+", default=[0.03, 0.07])
    p.add_argument("--steps", type=int, default=1500, help="most steps per temperature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", type=int, default=2, help="test queries re-embedded as a check")
    p.add_argument("--refit", action="store_true", help="refit instead of the cached fits")
    p.add_argument("--json", type=Path, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging()
    args.work.mkdir(parents=True, exist_ok=True)
    train = training_pairs(args.data, args.bundle, args.satellite, args.work)
    test = test_set(args.bundle, args.queries, args.data, args.check)
    results = evaluate(train, test, args)
    pairs = {
        "rows": len(train["rows"]),
        "panoramas": len(train["query"]),
        "offset_agrees": float(np.mean(train["offset_agrees"])),
        "camera_to_row_m_max": float(np.max(train["camera_to_row_m"])),
        "embed_s": float(train["embed_s"]),
    }
    print(
        f"training cities: {pairs['rows']} rows, {pairs['panoramas']} panoramas "
        f"(true row agrees with VIGOR's offsets for {100 * pairs['offset_agrees']:.1f} %, "
        f"camera within {pairs['camera_to_row_m_max']:.1f} m of it); "
        f"test: {len(test['rows'])} rows, {len(test['query'])} queries ({test['checked']} "
        "re-embedded by the bundle's Localizer: the same)"
    )
    print(format_table(results))
    if args.json:
        report = {
            "train": pairs,
            "test_checked": test["checked"],
            "results": results,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        }
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
