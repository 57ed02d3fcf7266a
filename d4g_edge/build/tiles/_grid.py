"""The grid of square ground tiles over a north-up raster, in ground metres.

Tile rows are ``stride_m`` ground metres apart down the raster's centre column; within a
row, tiles are ``stride_m`` apart at that row's ground scale, so in a Web Mercator raster a
tile near the top (north) spans more pixels than one near the bottom, and every tile covers
``tile_size_m`` x ``tile_size_m`` of ground. The count is known before any tile exists (a
grid of 10^12 tiles is counted, or refused from its rows alone, without listing them). A
tile may overhang the raster by at most half a pixel or 1 % of a stride (float noise at an
exact fit), and is shifted back inside it.

Usage::

    grid = TileGrid(width, height, affine, crs, tile_size_m=90, stride_m=45, name="a.tif")
    len(grid); grid.rows(); grid.boxes(r)   # pixel boxes (x0, y0, x1, y1) of row r
"""

from __future__ import annotations

import math

import numpy as np

from d4g_edge.build.tiles._crs import MAX_CONVERGENCE_DEG, RasterCRS
from d4g_edge.errors import TileSourceError

MIN_TILE_PX = 8  # a tile of fewer pixels holds nothing to match: the raster is too coarse
MAX_GRID_ROWS = 1 << 21  # ~2 M rows: row arrays stay ~100 MB; more rows is more tiles anyway
MAX_SAMPLES = 1024  # ground-scale samples down the centre column (interpolated between)
# A tile may overhang the raster by this much (an exact fit computed at the centre's scale,
# off by float noise and the scale's change across the raster), but by at most FIT_STRIDE of
# a stride: the overhanging tiles are shifted back inside, and must not pile up there.
FIT_PX, FIT_STRIDE = 0.5, 0.01


class TileGrid:
    def __init__(self, width, height, affine, crs: RasterCRS, tile_size_m, stride_m, name):
        self.width, self.height, self.name = int(width), int(height), str(name)
        self.affine, self.crs = affine, crs
        self.tile_m, self.stride_m = float(tile_size_m), float(stride_m)
        self._check_extent()
        ys = np.linspace(0.0, self.height, min(self.height, MAX_SAMPLES) + 1)
        xs = np.full_like(ys, self.width / 2)
        gx, gy = crs.ground_m_per_unit(*affine(xs, ys))
        mx, my = affine.a * gx, -affine.e * gy  # ground metres per pixel along x, y
        if not (np.isfinite(mx).all() and np.isfinite(my).all() and (mx > 0).all()):
            raise TileSourceError(
                f"{name}: {crs.name} gives no ground scale over the raster (coordinates "
                f"{self._extent_text()} are outside the area where it is defined); check the "
                "CRS (--crs) and the georeference"
            )
        if not crs.geographic:
            conv = float(np.nanmax(np.abs(crs.convergence_deg(*affine(xs, ys)))))
            if conv > MAX_CONVERGENCE_DEG:
                raise TileSourceError(
                    f"{name}: grid north of {crs.name} is {conv:.1f} degrees from true north "
                    f"here (more than {MAX_CONVERGENCE_DEG:g}), so north-up tiles cut along "
                    "the grid would be rotated; warp the raster to its UTM zone or EPSG:4326 "
                    "(gdalwarp -t_srs EPSG:326NN in.tif out.tif)"
                )
        self._ys, self._mx = ys, mx
        # ground metres from the top edge down the centre column, at each sample
        self._down = np.concatenate([[0.0], np.cumsum((my[1:] + my[:-1]) / 2 * np.diff(ys))])
        self.px_m = (float(np.interp(height / 2, ys, mx)), float(np.interp(height / 2, ys, my)))
        self._rows()

    def _extent_text(self) -> str:
        x, y = self.affine(np.array([0, self.width]), np.array([0, self.height]))
        return f"x {x[0]:.6g}..{x[1]:.6g}, y {y[1]:.6g}..{y[0]:.6g}"

    def _check_extent(self) -> None:
        x, y = self.affine(
            np.array([0, self.width, 0, self.width]), np.array([0, 0, self.height, self.height])
        )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise TileSourceError(f"{self.name}: its georeference gives non-finite coordinates")
        # longitudes up to 360: a raster across the antimeridian (wrapped to -180..180)
        if self.crs.geographic and not (
            (x >= -180 - 1e-9).all() and (x <= 360 + 1e-9).all() and (np.abs(y) <= 90 + 1e-9).all()
        ):
            raise TileSourceError(
                f"{self.name}: coordinates {self._extent_text()} are not degrees (longitude "
                f"-180..360, latitude -90..90), but the raster is read as {self.crs.name}"
                + (
                    " as its CRS says: the CRS is wrong"
                    if self.crs.stated
                    else ": it looks projected (e.g. UTM metres) with no CRS stated"
                )
                + "; pass its CRS, e.g. --crs EPSG:32616 (crs= in the API), or add a .prj "
                "next to it"
            )
        lat, lon = self.crs.to_latlon(x, y)
        if not (
            np.isfinite(lat).all()
            and np.isfinite(lon).all()
            and (np.abs(lat) <= 90 + 1e-9).all()
            and (np.abs(lon) <= 360).all()
        ):
            raise TileSourceError(
                f"{self.name}: coordinates {self._extent_text()} in {self.crs.name} fall "
                "outside the Earth (or the CRS's area); check the CRS (--crs) and the world "
                "file / geotransform"
            )
        clat, clon = (float(v) for v in self.crs.to_latlon(x.mean(), y.mean()))
        if self.crs.outside_area(clat, clon):
            w, s, e, n = self.crs.area
            raise TileSourceError(
                f"{self.name}: read in {self.crs.name}, its centre is at lat {clat:.4f}, lon "
                f"{clon:.4f}, outside the area where that CRS is used (lon {w:g}..{e:g}, lat "
                f"{s:g}..{n:g}): the CRS is probably wrong; check --crs / the .prj"
            )

    def _rows(self) -> None:
        tile, stride, total = self.tile_m, self.stride_m, float(self._down[-1])
        my = float(np.min(np.diff(self._down) / np.diff(self._ys)))
        slack = min(FIT_PX * my, FIT_STRIDE * stride)
        if total + slack < tile:
            self._no_tiles(f"{total:.3g} m tall")
        n_rows = math.floor((total + slack - tile) / stride) + 1
        if n_rows > MAX_GRID_ROWS:
            cols = max(1.0, (self.width * self.px_m[0] - tile) / stride + 1)
            raise TileSourceError(
                f"{self.name}: a {stride:g} m stride makes {n_rows:,} rows of tiles "
                f"(~{n_rows * cols:.3g} tiles), more than can be indexed; increase --stride-m "
                f"(the count falls with its square) or cut the raster"
            )
        top_m = np.arange(n_rows, dtype=np.float64) * stride
        y0 = np.interp(top_m, self._down, self._ys)
        y1 = np.interp(np.minimum(top_m + tile, total), self._down, self._ys)
        y1 = np.maximum(y1, y0 + 1e-9)
        mx = np.interp((y0 + y1) / 2, self._ys, self._mx)
        self.y0, self.ty, self.tx, self.sx = y0, y1 - y0, tile / mx, stride / mx
        slack_px = np.minimum(FIT_PX, FIT_STRIDE * self.sx)
        fits = self.width + slack_px >= self.tx
        cols = np.floor((self.width + slack_px - self.tx) / self.sx) + 1
        self.ncols = np.where(fits, cols, 0).astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.ncols)])
        self.count = int(self.starts[-1])
        if self.count == 0:
            self._no_tiles(f"{self.width * self.px_m[0]:.3g} m wide")
        used = self.ncols > 0
        small = float(min(self.tx[used].min(), self.ty[used].min()))
        if small < MIN_TILE_PX:
            raise TileSourceError(
                f"{self.name}: a {tile:g} m tile is only {small:.3g} pixels of this raster "
                f"({self.px_m[0]:.3g} x {self.px_m[1]:.3g} m per pixel; at least "
                f"{MIN_TILE_PX} needed): raise --tile-size-m, or use a finer raster"
            )

    def _no_tiles(self, size: str) -> None:
        w, h = self.width * self.px_m[0], self.height * self.px_m[1]
        raise TileSourceError(
            f"{self.name} is {w:.3g} x {h:.3g} m of ground ({size} where tiles would go), "
            f"smaller than one {self.tile_m:g} m tile; lower --tile-size-m"
        )

    def __len__(self) -> int:
        return self.count

    def row_of(self, tile_id: int) -> int:
        return int(np.searchsorted(self.starts, tile_id, side="right") - 1)

    def boxes(self, r: int) -> np.ndarray:
        """``(ncols[r], 4)`` float pixel boxes (x0, y0, x1, y1) of row ``r``, inside the
        raster (a tile overhanging it by float noise is shifted back)."""
        c = np.arange(self.ncols[r], dtype=np.float64)
        tx, ty = self.tx[r], self.ty[r]
        x0 = np.clip(c * self.sx[r], 0.0, max(0.0, self.width - tx))
        y0 = np.full_like(x0, min(self.y0[r], max(0.0, self.height - ty)))
        return np.stack([x0, y0, x0 + tx, y0 + ty], axis=1)

    def scale_range(self) -> list[float]:
        """CRS units per ground metre along x, at the top and the bottom row (1/cos(lat) in
        Web Mercator; ~1 in UTM; in degrees for a geographic CRS)."""
        used = np.flatnonzero(self.ncols)
        k = self.affine.a / np.interp(self.y0[used[[0, -1]]], self._ys, self._mx)
        return [float(v) for v in k]
