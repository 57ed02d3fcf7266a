"""Rows and queries for ``benchmarks.bench_map``: a real map's embeddings, panoramas rendered
in its world, and larger maps modelled on them.

* :func:`bundle_rows`: the unit rows of a bundle whose index keeps them (float16 or hnswlib),
  with each row's tile and position and the map's area;
* :func:`world_queries`: panoramas rendered at random street points of the procedural world a
  ``tools.build_index --world`` bundle indexes, embedded with the bundle's ground model
  (heading known), with their true positions;
* :class:`RowModel`: a generative model of a map fitted on real rows on the fine grid of
  polar centres (every ``spacing`` metres): per principal component, its variance and a
  spatial correlation (a Gaussian random field with the component's measured neighbour
  correlation), and two models of a query around its true row: ``gaussian`` (independent
  noise per component with the real residuals' spread) and ``real-residuals`` (the real
  queries' residual vectors, resampled), each scaled so that exact search finds the
  modelled queries' tiles as often as the real ones' (:meth:`RowModel.calibrated`). It
  draws maps of any size with 25 consecutive rows per tile (5 x 5 blocks of the grid), band
  by band (``benchmarks._row_fields``; a 10^7-row map goes to a float16 memory map on
  disk), and queries at random positions, so recall and R@1 can be measured at 10^6 and
  10^7 rows.

Usage::

    rows = bundle_rows("runs/world10")
    q = world_queries("runs/world10", 300)
    model = RowModel.fit(rows, q)
    v, tile_of_row, side, make_q = model.draw(1_000_000, seed=0, out="runs/rows.npy")
    q, true_tile, where = make_q(300, 1)
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from benchmarks._row_fields import Grid, draw_rows, exact_scan, neighbour_rho, sigma_for
from d4g_edge.bundle import Bundle
from d4g_edge.geo import haversine_m
from d4g_edge.log import logger


@dataclass
class Rows:
    vectors: np.ndarray  # (N, D) float32 unit rows
    tile_of_row: np.ndarray  # (N,) int64 tile index 0..T-1
    latlon: np.ndarray  # (N, 2) float64 position of each row (its polar centre)
    tile_latlon: np.ndarray  # (T, 2) tile centres
    area_km2: float
    per_tile: int
    spacing_m: float  # distance between neighbouring rows' positions
    source: str


def bundle_rows(path: str | Path) -> Rows:
    b = Bundle.load(path)
    if b.index.params.storage == "float16":
        v = np.asarray(b.index.vectors, np.float32)
    elif b.index.params.storage == "hnswlib":
        v = b.index.get_vectors(np.arange(b.index.count))
    else:
        raise ValueError(f"{path}: a {b.index.params.storage} index does not keep its rows")
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    t = b.tiles
    uniq, tile_of_row = np.unique(t.tile_id, return_inverse=True)
    lat = np.bincount(tile_of_row, t.lat) / np.bincount(tile_of_row)
    lon = np.bincount(tile_of_row, t.lon) / np.bincount(tile_of_row)
    stride = b.stride_m or float(np.nanmedian(t.footprint_m)) / 2
    return Rows(
        v.astype(np.float32),
        tile_of_row.astype(np.int64),
        np.stack([t.lat, t.lon], 1),
        np.stack([lat, lon], 1),
        len(uniq) * stride**2 / 1e6,
        b.centres_per_tile,
        float(b.position_step_m or stride),
        str(path),
    )


def map_rows(paths) -> Rows:
    """The rows of one bundle, or of several as one map: towns built side by side (``python
    -m tools.build_index --world SEED --origin LAT LON``), their tiles numbered on. Towns
    that overlap are refused (a query's true tile would be ambiguous)."""
    parts = [bundle_rows(p) for p in paths]
    if len(parts) == 1:
        return parts[0]
    for i, a in enumerate(parts):
        if (a.per_tile, a.spacing_m) != (parts[0].per_tile, parts[0].spacing_m):
            raise ValueError(f"{a.source}: another grid of centres than {parts[0].source}")
        for b in parts[:i]:
            lo = np.maximum(a.latlon.min(0), b.latlon.min(0))
            if (lo < np.minimum(a.latlon.max(0), b.latlon.max(0))).all():
                raise ValueError(f"{a.source} overlaps {b.source}: build it with another --origin")
    first = np.cumsum([0] + [len(a.tile_latlon) for a in parts[:-1]])
    return Rows(
        np.concatenate([a.vectors for a in parts]),
        np.concatenate([a.tile_of_row + f for a, f in zip(parts, first, strict=True)]),
        np.concatenate([a.latlon for a in parts]),
        np.concatenate([a.tile_latlon for a in parts]),
        sum(a.area_km2 for a in parts),
        parts[0].per_tile,
        parts[0].spacing_m,
        " + ".join(a.source for a in parts),
    )


def towns_queries(paths, n: int, seed: int = 1) -> dict:
    """``n`` world panoramas spread evenly over the towns of bundles ``paths``."""
    counts = [n // len(paths) + (i < n % len(paths)) for i in range(len(paths))]
    parts = [world_queries(p, c, seed) for p, c in zip(paths, counts, strict=True) if c]
    return {k: np.concatenate([q[k] for q in parts]) for k in ("query", "query_latlon")}


def world_queries(path: str | Path, n: int, seed: int = 1) -> dict:
    """``n`` panoramas in the world of bundle ``path``, embedded (see the module doc)."""
    from PIL import Image

    from d4g_edge.localizer import Localizer
    from train.world import DomainGap, World

    loc = Localizer(path, threads=1)
    src = (loc.bundle.manifest.get("georeference") or {}).get("source") or {}
    if src.get("kind") != "world":
        raise ValueError(f"{path} was not built from the procedural world (--world SEED)")
    world = World.generate(
        src["seed"],
        src["style"],
        size_m=src["size_m"],
        origin_lat=src["origin"][0],
        origin_lon=src["origin"][1],
    )
    rng = np.random.default_rng(seed)
    pts = world.sample_street_points(n, rng, margin_m=src["tile_size_m"])
    z, latlon = [], []
    for k, (e, nn) in enumerate(pts):
        pano = world.render_panorama((e, nn), 128, 512, gap=DomainGap.sample(rng, 1.0), rng=rng)
        buf = io.BytesIO()  # as the VIGOR layout stores them: JPEG, quality 92
        Image.fromarray(pano).save(buf, format="JPEG", quality=92)
        z.append(loc.embed(buf.getvalue(), heading=0.0)[0])
        latlon.append([float(v) for v in world.georef.metres_to_latlon(e, nn)])
        if (k + 1) % 50 == 0:
            logger.info("rendered and embedded %d / %d world queries", k + 1, n)
    return {"query": np.stack(z).astype(np.float32), "query_latlon": np.asarray(latlon)}


def vigor_queries(path: str | Path, data: str | Path) -> dict:
    """The test panoramas of a VIGOR-layout dataset (cross-area, the bundled default's
    split), embedded with bundle ``path``'s ground model, heading known (as train.evaluate)."""
    from d4g_edge.localizer import Localizer
    from train.datasets import load

    split = load("vigor", data, "test", mode="cross")
    loc = Localizer(path, threads=1)
    z = np.concatenate([loc.embed(p, heading=0.0) for p in split.query_paths])
    return {"query": z.astype(np.float32), "query_latlon": np.asarray(split.query_latlon)}


def truth_tiles(rows: Rows, query_latlon: np.ndarray) -> np.ndarray:
    """Each query's tile: the one whose centre is nearest (VIGOR's positive on its grid)."""
    out = np.empty(len(query_latlon), np.int64)
    for i, (lat, lon) in enumerate(query_latlon):
        out[i] = int(
            np.argmin(haversine_m(lat, lon, rows.tile_latlon[:, 0], rows.tile_latlon[:, 1]))
        )
    return out


def grid_of(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of each row on the fine grid of positions ``spacing_m`` apart."""
    lat0 = float(rows.latlon[:, 0].mean())
    north = (rows.latlon[:, 0] - rows.latlon[:, 0].min()) * 111_320.0
    east = (rows.latlon[:, 1] - rows.latlon[:, 1].min()) * 111_320.0 * np.cos(np.radians(lat0))
    return (
        np.rint(north.max() / rows.spacing_m - north / rows.spacing_m).astype(np.int64),
        np.rint(east / rows.spacing_m).astype(np.int64),
    )


@dataclass
class RowModel:
    mean: np.ndarray  # (D,)
    basis: np.ndarray  # (D, D) principal directions, columns
    std: np.ndarray  # (D,) per component
    smooth: np.ndarray  # (D,) sigma by the continuous formula (0: white); see sigmas()
    query_mean: np.ndarray  # (D,) mean of (query - its row) in the basis
    query_std: np.ndarray  # (D,) (calibrated) spread of gaussian queries
    per_tile: int = 25
    km2_per_row: float = 0.0  # the real map's area per row
    rho: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (D,) measured
    residuals: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (Q, D) basis
    residual_scale: float = 1.0  # calibrated scale of the real residuals
    sigma_rule: str = "continuous"  # how rho becomes a Gaussian sigma (files before: this)

    @classmethod
    def fit(cls, rows: Rows, queries: dict, calibrate_m: int = 1000) -> RowModel:
        x = rows.vectors.astype(np.float64)
        mean = x.mean(0)
        _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
        basis = vt.T
        c = (x - mean) @ basis
        r, col = grid_of(rows)
        grid = np.full((r.max() + 1, col.max() + 1, c.shape[1]), np.nan, np.float32)
        grid[r, col] = c
        rho = np.clip(neighbour_rho(grid), 1e-6, 0.999)
        del grid
        # the continuous formula, kept for files fitted before; sigmas() uses the exact one
        smooth = np.where(rho > 0.05, np.sqrt(-1.0 / (4.0 * np.log(rho))), 0.0)
        # queries: each one's residual from the row at its nearest grid position
        q = queries["query"].astype(np.float64)
        d = haversine_m(
            queries["query_latlon"][:, None, 0],
            queries["query_latlon"][:, None, 1],
            rows.latlon[None, :, 0],
            rows.latlon[None, :, 1],
        )
        res = (q - x[np.argmin(d, 1)]) @ basis
        logger.info(
            "row model: %d components, neighbour correlation of the first 5 %s",
            len(sv),
            np.round(rho[:5], 3),
        )
        std, per_row = sv / np.sqrt(len(x)), rows.area_km2 / len(x)
        model = cls(
            mean, basis, std, smooth, res.mean(0), res.std(0), rows.per_tile, per_row,
            rho, res.astype(np.float32), 1.0, "discrete",
        )  # fmt: skip
        best = np.argmax(q.astype(np.float32) @ rows.vectors.T, axis=1)
        truth = truth_tiles(rows, queries["query_latlon"])
        target = float(np.mean(rows.tile_of_row[best] == truth))
        model = model.calibrated(target, len(x), calibrate_m, "gaussian")
        return model.calibrated(target, len(x), calibrate_m, "real-residuals")

    def sigmas(self) -> np.ndarray:
        """Each component's Gaussian sigma in grid steps (0: white). "discrete": the sigma
        whose kernel on the grid has the measured neighbour correlation; "continuous": the
        formula rho = exp(-1 / (4 sigma^2)) of the first fits, which undershoots the weakly
        correlated components (their calibration was made with it)."""
        if self.sigma_rule == "continuous":
            return np.asarray(self.smooth, np.float64)
        return np.array([sigma_for(float(r)) if r > 0.05 else 0.0 for r in self.rho])

    def calibrated(self, target: float, n: int, m: int, query_model: str) -> RowModel:
        """This model with the queries' residuals of ``query_model`` scaled so that, at the
        real map's size, exact search finds a query's true tile as often as on the real map
        (``target``).

        Real rows are more alike than modelled ones (a town repeats itself: a real row's
        best match beyond 45 m has median cosine 0.96, a modelled row's 0.83): with the
        real residuals as measured a modelled query finds its tile 9 times in 10, a real
        one on the world map 1 time in 6. Scaling the residuals (x 2.0-2.3) matches R@1 but
        pushes the queries off the rows' manifold (cosine to their row 0.51-0.59 against
        0.77 for real ones), which costs inverted lists recall the real queries keep. The
        scale is found by bisection (R@1 falls as the residuals grow), on one drawn map."""
        rows, norms, grid = self._draw(n, 11)
        lo, hi = 0.25, 4.0
        for _ in range(8):
            mid = (lo + hi) / 2
            q, tile, _ = self._scaled(query_model, mid).queries(
                rows, norms, grid, m, 12, query_model
            )
            got = float(np.mean(grid_tile_of_row(grid, exact_scan(rows, q)[1]) == tile))
            logger.info("row model: %s queries x %.3f: exact R@1 %.3f", query_model, mid, got)
            lo, hi = (mid, hi) if got > target else (lo, mid)
        scale = (lo + hi) / 2
        logger.info("row model: %s x %.3f (real exact R@1 %.3f)", query_model, scale, target)
        return self._scaled(query_model, scale)

    def _scaled(self, query_model: str, scale: float) -> RowModel:
        if query_model == "gaussian":
            return replace(self, query_std=self.query_std * scale)
        return replace(self, residual_scale=self.residual_scale * scale)

    def save(self, path: str | Path) -> None:
        np.savez(path, **{k: np.asarray(v) for k, v in self.__dict__.items()})

    @classmethod
    def load(cls, path: str | Path) -> RowModel:
        with np.load(path) as f:
            d = {k: f[k] for k in f.files}
        d["per_tile"], d["km2_per_row"] = int(d["per_tile"]), float(d["km2_per_row"])
        if "rho" not in d:  # a file fitted before: its rho is its smoothing's, by its formula
            s = d["smooth"]
            d["rho"] = np.where(s > 0, np.exp(-1.0 / (4.0 * np.maximum(s, 1e-9) ** 2)), 0.0)
        for k, cast in (("residual_scale", float), ("sigma_rule", str)):
            if k in d:
                d[k] = cast(d[k])
        return cls(**d)

    def grid(self, n: int) -> Grid:
        return Grid.for_rows(n, self.per_tile)

    def _draw(self, n: int, seed: int, out: str | Path | None = None, band_rows=None):
        grid = self.grid(n)
        dim = len(self.mean)
        if out is None:
            rows = np.empty((grid.count, dim), np.float32)
        else:  # float16 on disk, as a float16 bundle keeps them
            rows = np.lib.format.open_memmap(out, "w+", np.float16, (grid.count, dim))
        norms = np.empty(grid.count, np.float32)
        draw_rows(
            self.mean, self.basis, self.std, self.sigmas(), grid, seed, rows, norms, band_rows
        )
        if out is not None:
            rows.flush()
        return rows, norms, grid

    def draw(self, n: int, seed: int = 0, out=None, query_model="gaussian", band_rows=None):
        """(rows (n', D) unit float32, or float16 memory-mapped at ``out``, tile_of_row,
        grid side, a query sampler (m, seed) -> (queries, true tile, grid position)) for
        about ``n`` rows: a square grid of 5 x 5 blocks, rows ordered tile by tile, drawn
        band by band (:func:`benchmarks._row_fields.draw_rows`)."""
        rows, norms, grid = self._draw(n, seed, out, band_rows)
        tile_of_row = np.repeat(np.arange(grid.tiles_side**2), self.per_tile)

        def sampler(m: int, qseed: int):
            return self.queries(rows, norms, grid, m, qseed, query_model)

        return rows, tile_of_row, grid.side, sampler

    def queries(self, rows, norms, grid: Grid, m: int, seed: int, query_model: str):
        """(queries, true tile, grid position) at ``m`` random grid positions of a drawn map.

        * ``gaussian``: the row's coefficients plus, per component, independent Gaussian
          noise with the real residuals' mean and (calibrated) spread;
        * ``real-residuals``: the unit row plus one of the real queries' residual vectors
          (query - its true row, drawn with replacement), times the calibrated scale: the
          residual keeps the real one's direction, across components."""
        r = np.random.default_rng(seed)
        gi, gj = r.integers(0, grid.side, m), r.integers(0, grid.side, m)
        at = grid.row_of(gi, gj)
        x = np.asarray(rows[at], np.float64)
        if query_model == "gaussian":
            c = (x * norms[at, None] - self.mean) @ self.basis
            c += self.query_mean + r.standard_normal((m, len(self.mean))) * self.query_std
            q = self.mean + c @ self.basis.T
        elif query_model == "real-residuals":
            if not len(self.residuals):
                raise ValueError("this row model has no real residuals: fit it again")
            pick = r.integers(0, len(self.residuals), m)
            q = x + self.residual_scale * (self.residuals[pick].astype(np.float64) @ self.basis.T)
        else:
            raise ValueError(f"query model must be gaussian or real-residuals, got {query_model}")
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        return q.astype(np.float32), grid.tile_of(gi, gj), np.stack([gi, gj], 1)


def grid_tile_of_row(grid: Grid, row: np.ndarray) -> np.ndarray:
    return np.asarray(row) // (grid.block**2)
