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
  correlation), and per component the variance of a real query around its true row, scaled
  so that exact search finds the modelled queries' tiles as often as the real ones'
  (:meth:`RowModel.calibrated`). It draws maps of any size with 25 consecutive rows per tile
  (5 x 5 blocks of the grid), and queries at random positions, so recall and R@1 can be
  measured at 10^6 and 10^7 rows.

Usage::

    rows = bundle_rows("runs/world10")
    q = world_queries("runs/world10", 300)
    model = RowModel.fit(rows, q); big = model.draw(1_000_000, seed=0)
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

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
    smooth: np.ndarray  # (D,) Gaussian-filter sigma in grid steps (0: white)
    query_mean: np.ndarray  # (D,) mean of (query - its row) in the basis
    query_std: np.ndarray  # (D,)
    per_tile: int = 25
    km2_per_row: float = 0.0  # the real map's area per row

    @classmethod
    def fit(cls, rows: Rows, queries: dict) -> RowModel:
        x = rows.vectors.astype(np.float64)
        mean = x.mean(0)
        _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
        basis = vt.T
        c = (x - mean) @ basis
        r, col = grid_of(rows)
        grid = np.full((r.max() + 1, col.max() + 1, c.shape[1]), np.nan)
        grid[r, col] = c
        rho = []
        for a, b in ((grid[1:], grid[:-1]), (grid[:, 1:], grid[:, :-1])):
            ok = np.isfinite(a[..., 0]) & np.isfinite(b[..., 0])
            rho.append(
                (a[ok] * b[ok]).mean(0) / np.sqrt((a[ok] ** 2).mean(0) * (b[ok] ** 2).mean(0))
            )
        rho = np.clip(np.mean(rho, 0), 1e-6, 0.999)
        # a white field smoothed by a Gaussian of sigma s has neighbour correlation
        # exp(-1 / (4 s^2)): invert it; below 0.05 the component is white
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
        model = cls(mean, basis, std, smooth, res.mean(0), res.std(0), rows.per_tile, per_row)
        best = np.argmax(q.astype(np.float32) @ rows.vectors.T, axis=1)
        truth = truth_tiles(rows, queries["query_latlon"])
        return model.calibrated(float(np.mean(rows.tile_of_row[best] == truth)), len(x), len(q))

    def calibrated(self, target: float, n: int, m: int) -> RowModel:
        """This model with its query residuals scaled so that, at the real map's size, exact
        search finds a query's true tile as often as on the real map (``target``).

        Real rows are more alike than independent residuals make them (a town repeats
        itself): with the measured residuals a modelled query finds its tile 9 times in 10,
        a real one on the world map 1 time in 6, and how close the rows that compete for the
        first place are is what decides whether a compressed index still finds the best. The
        scale is found by bisection (R@1 falls as the residuals grow)."""
        lo, hi = 0.5, 4.0
        for _ in range(7):
            mid = (lo + hi) / 2
            trial = replace(self, query_std=self.query_std * mid)
            v, tile_of_row, _, make_q = trial.draw(n, seed=11)
            q, tile, _ = make_q(m, 12)
            got = float(np.mean(tile_of_row[np.argmax(q @ v.T, axis=1)] == tile))
            lo, hi = (mid, hi) if got > target else (lo, mid)
        scale = (lo + hi) / 2
        logger.info("row model: query residuals x %.2f (real exact R@1 %.3f)", scale, target)
        return replace(self, query_std=self.query_std * scale)

    def save(self, path: str | Path) -> None:
        np.savez(path, **{k: np.asarray(v) for k, v in self.__dict__.items()})

    @classmethod
    def load(cls, path: str | Path) -> RowModel:
        with np.load(path) as f:
            d = {k: f[k] for k in f.files}
        d["per_tile"], d["km2_per_row"] = int(d["per_tile"]), float(d["km2_per_row"])
        return cls(**d)

    def draw(self, n: int, seed: int = 0):
        """(rows (n', D) float32, tile_of_row, grid (side, side), a query sampler) for about
        ``n`` rows: a square grid of 5 x 5 blocks, rows ordered tile by tile."""
        from scipy import ndimage

        b = round(float(np.sqrt(self.per_tile)))
        tiles_side = max(1, round(float(np.sqrt(n / self.per_tile))))
        side = tiles_side * b
        rng = np.random.default_rng(seed)
        dim = len(self.mean)
        # component-major fields: each is written (and filtered) contiguously
        coef = np.empty((dim, side, side), np.float32)
        for j in range(dim):  # the white components (most of them) need no filter
            f = rng.standard_normal((side, side), dtype=np.float32)
            if self.smooth[j] > 0:
                f = ndimage.gaussian_filter(f, float(self.smooth[j]), mode="wrap")
                f /= max(float(f.std()), 1e-12)
            f *= self.std[j]
            coef[j] = f
        # tile-major rows, one band of tiles at a time: tile (ti, tj) holds its b x b block
        rows = np.empty((side * side, dim), np.float32)
        mean, basis_t = self.mean.astype(np.float32), self.basis.T.astype(np.float32)
        band = tiles_side * b * b
        for ti in range(tiles_side):
            c = coef[:, ti * b : (ti + 1) * b, :].reshape(dim, b, tiles_side, b)
            c = c.transpose(2, 1, 3, 0).reshape(band, dim)
            x = mean + c @ basis_t
            rows[ti * band : (ti + 1) * band] = x / np.linalg.norm(x, axis=1, keepdims=True)
        tile_of_row = np.repeat(np.arange(tiles_side**2), self.per_tile)

        def queries(m: int, qseed: int):
            """(queries, true tile, true grid position) at random grid positions."""
            r = np.random.default_rng(qseed)
            gi, gj = r.integers(0, side, m), r.integers(0, side, m)
            c = coef[:, gi, gj].T.astype(np.float64)
            c += self.query_mean + r.standard_normal((m, dim)) * self.query_std
            q = self.mean + c @ self.basis.T
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            tile = (gi // b) * tiles_side + gj // b
            return q.astype(np.float32), tile, np.stack([gi, gj], 1)

        return rows, tile_of_row, side, queries
