"""The tile table a bundle stores (``tiles.npz``): per tile its id, centre lat/lon (WGS84
degrees), footprint (edge length in metres) and geographic cell (tiles grouped on a
``cell_deg`` grid, the unit of sharding and of prior filtering).

Runtime core: the bundle, the cell-sharded index and the tracker read it; the build side
(:mod:`d4g_edge.build`) writes it.

Usage::

    from d4g_edge.tiletable import TileTable
    table = TileTable.from_rows(ids, lat, lon, footprint_m)   # or TileTable.load("tiles.npz")
    near = table.within(lat, lon, radius_m)                   # row indices
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from d4g_edge.errors import BundleContentError, BundleError
from d4g_edge.fileio import atomic_write
from d4g_edge.geo import EARTH_RADIUS_M, haversine_m

DEFAULT_CELL_DEG = 0.01  # ~1.1 km of latitude: a few hundred tiles per cell at 50 m stride


def cell_of(lat, lon, cell_deg: float = DEFAULT_CELL_DEG) -> np.ndarray:
    """Integer cell key of a ``cell_deg`` lat/lon grid (row * 2**32 + column)."""
    row = np.floor((np.asarray(lat, np.float64) + 90.0) / cell_deg).astype(np.int64)
    col = np.floor((np.asarray(lon, np.float64) + 180.0) / cell_deg).astype(np.int64)
    return row * (1 << 32) + col


@dataclass(frozen=True)
class TileTable:
    tile_id: np.ndarray  # int64 (N,)
    lat: np.ndarray  # float64 (N,)
    lon: np.ndarray  # float64 (N,)
    footprint_m: np.ndarray  # float32 (N,)
    cell: np.ndarray  # int64 (N,)

    def __post_init__(self) -> None:
        n = len(self.tile_id)
        for name in ("lat", "lon", "footprint_m", "cell"):
            if len(getattr(self, name)) != n:
                raise BundleError(
                    f"tile table: column {name} has {len(getattr(self, name))} rows, "
                    f"tile_id has {n}"
                )

    def __len__(self) -> int:
        return len(self.tile_id)

    @classmethod
    def from_rows(
        cls, ids: Sequence[int], lat, lon, footprint_m, cell_deg: float = DEFAULT_CELL_DEG
    ) -> TileTable:
        lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        return cls(
            np.asarray(ids, np.int64),
            lat,
            lon,
            np.asarray(footprint_m, np.float32),
            cell_of(lat, lon, cell_deg),
        )

    @classmethod
    def concat(cls, tables: Sequence[TileTable]) -> TileTable:
        return cls(*(np.concatenate([getattr(t, f) for t in tables]) for f in _FIELDS))

    def take(self, rows: np.ndarray) -> TileTable:
        return TileTable(*(getattr(self, f)[rows] for f in _FIELDS))

    def within(self, lat: float, lon: float, radius_m: float) -> np.ndarray:
        """Rows whose centre lies within ``radius_m`` of (lat, lon), in ascending order.

        A prior search runs this on every frame: a haversine over every row cost 53 ms at
        1.2 M rows (docs/map_scale.md). The rows are kept sorted by latitude (once per
        table), so only the latitude band a point within the radius can lie in is read, and
        of it only the longitude window; the haversine then decides on those few rows, with
        the same expression as before, so the answer is the same."""
        lat, lon, radius_m = float(lat), float(lon), float(radius_m)
        order, sorted_lat, sorted_lon = self._by_latitude
        # on the sphere of haversine_m a point d metres away differs by at most d / R in
        # latitude; the slack covers the rounding of degrees <-> radians
        dlat = np.degrees(radius_m / EARTH_RADIUS_M) * (1 + 1e-9) + 1e-9
        lo = int(np.searchsorted(sorted_lat, lat - dlat, side="left"))
        hi = int(np.searchsorted(sorted_lat, lat + dlat, side="right"))
        if 4 * (hi - lo) > len(order):  # most rows: the plain scan is cheaper than the sort
            return np.flatnonzero(haversine_m(lat, lon, self.lat, self.lon) <= radius_m)
        pos = np.arange(lo, hi)
        dlon = _lon_window_deg(lat, dlat, radius_m)
        if dlon is not None:
            pos = pos[np.abs((sorted_lon[lo:hi] - lon + 180.0) % 360.0 - 180.0) <= dlon]
        keep = haversine_m(lat, lon, sorted_lat[pos], sorted_lon[pos]) <= radius_m
        return np.sort(order[pos[keep]])

    @cached_property
    def groups(self) -> tuple[np.ndarray | None, np.ndarray]:
        """(order, starts): the rows sorted by ``tile_id`` (None when they already are, as a
        bundle writes a tile's centres as consecutive rows) and where each tile's run of
        rows starts in that order; for one-best-row-per-tile selections
        (:func:`d4g_edge.retrieval.best_of_each`)."""
        t = self.tile_id
        order = None if bool((t[1:] >= t[:-1]).all()) else np.argsort(t, kind="stable")
        ranked = t if order is None else t[order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]]) if len(t) else ranked
        return order, starts.astype(np.int64)

    @cached_property
    def _by_latitude(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(self.lat, kind="stable")
        return order, self.lat[order], self.lon[order]

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **{f: getattr(self, f) for f in _FIELDS})
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        return atomic_write(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> TileTable:
        """Read ``tiles.npz`` and check its contents (:meth:`check`): a bundle's tile table
        decides the answers, so a corrupt one is refused instead of returned as a position."""
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise BundleContentError(f"{path} holds one array, not the tile table (.npz)")
            with data:
                missing = [f for f in _FIELDS if f not in data.files]
                if missing:
                    raise BundleContentError(f"{path} lacks columns {missing}")
                columns = [data[f] for f in _FIELDS]
        # what numpy's npz reader raises for damaged bytes: the zip layer (BadZipFile, a
        # truncated member -> EOFError / zlib.error), the .npy header (ValueError) or the OS
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
            raise BundleContentError(
                f"cannot read the tile table {path}: {type(err).__name__}: {err}; copy the "
                "bundle again or rebuild it"
            ) from None
        for name, col in zip(_FIELDS, columns, strict=True):
            kinds = "iu" if name in ("tile_id", "cell") else "iuf"
            if col.ndim != 1 or col.dtype.kind not in kinds:
                what = "integers" if kinds == "iu" else "numbers"
                raise BundleContentError(
                    f"{path}: column {name} must be a 1-d array of {what}, got {col.dtype} "
                    f"{col.shape}"
                )
        table = cls(
            columns[0].astype(np.int64),
            columns[1].astype(np.float64),
            columns[2].astype(np.float64),
            columns[3].astype(np.float32),
            columns[4].astype(np.int64),
        )
        table.check(str(path))
        return table

    def check(self, where: str = "tile table") -> None:
        """Raise :class:`BundleContentError` unless every centre is a finite WGS84 position,
        every footprint a positive size (or NaN, unknown) and every id a non-negative integer."""

        def bad(name: str, mask: np.ndarray, expected: str) -> None:
            if mask.any():
                rows = np.flatnonzero(mask)
                col = getattr(self, name)
                raise BundleContentError(
                    f"{where}: {name} must be {expected}; {rows.size} row(s) are not, e.g. row "
                    f"{rows[0]} = {col[rows[0]].item()!r}; the tile table is corrupt: rebuild "
                    "the bundle"
                )

        if len(self) == 0:
            raise BundleContentError(f"{where}: the tile table is empty")
        with np.errstate(invalid="ignore"):
            bad("lat", ~(np.abs(self.lat) <= 90.0), "finite degrees in -90..90")
            bad("lon", ~(np.abs(self.lon) <= 180.0), "finite degrees in -180..180")
            # NaN is "unknown": a dataset layout's tiles (CVUSA, CVACT) state no footprint
            fp = self.footprint_m
            bad("footprint_m", (fp <= 0) | np.isinf(fp), "metres > 0 (or NaN: unknown)")
        bad("tile_id", self.tile_id < 0, "a non-negative integer")


_FIELDS = ("tile_id", "lat", "lon", "footprint_m", "cell")


def _lon_window_deg(lat: float, dlat: float, radius_m: float) -> float | None:
    """The largest longitude difference (degrees) of a point within ``radius_m`` of a point
    at ``lat`` whose latitude lies within ``dlat`` of it; None near a pole (no bound).

    From haversine: sin^2(d / 2R) >= cos(lat1) cos(lat2) sin^2(dlon / 2)."""
    far = min(abs(lat) + dlat, 90.0)
    cos_prod = np.cos(np.radians(lat)) * np.cos(np.radians(far))
    if cos_prod <= 1e-6:
        return None
    s = np.sin(radius_m / (2.0 * EARTH_RADIUS_M)) / np.sqrt(cos_prod)
    if s >= 1.0:
        return None
    return float(np.degrees(2.0 * np.arcsin(s))) * (1 + 1e-9) + 1e-9
