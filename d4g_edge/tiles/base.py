"""What every tile source yields, and the tile table a bundle stores (``tiles.npz``).

A source is any object with ``__len__``, ``describe()`` and ``__iter__`` yielding
:class:`Tile` records in a stable order (so a build can be resumed and sharded by position);
``tile.read()`` returns the north-up uint8 RGB tile. The table keeps, per tile: id, centre
lat/lon (WGS84 degrees), footprint (edge length in metres) and a geographic cell (tiles
grouped on a ``cell_deg`` grid, the unit of sharding and of prior filtering).

Usage::

    from d4g_edge.tiles.base import TileTable
    table = TileTable.from_tiles(tiles)           # or TileTable.load("tiles.npz")
    near = table.within(lat, lon, radius_m)      # row indices
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from d4g_edge._io import atomic_write_bytes
from d4g_edge.errors import BundleError
from d4g_edge.geo import haversine_m

DEFAULT_CELL_DEG = 0.01  # ~1.1 km of latitude: a few hundred tiles per cell at 50 m stride


@dataclass(frozen=True)
class Tile:
    tile_id: int
    lat: float
    lon: float
    footprint_m: float
    read: Callable[[], np.ndarray]  # -> uint8 (S, S, 3) north-up RGB


class TileSource(Protocol):
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Tile]: ...
    def describe(self) -> dict: ...


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
        """Rows whose centre lies within ``radius_m`` of (lat, lon)."""
        return np.flatnonzero(haversine_m(lat, lon, self.lat, self.lon) <= radius_m)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **{f: getattr(self, f) for f in _FIELDS})
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        return atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> TileTable:
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [f for f in _FIELDS if f not in data]
                if missing:
                    raise BundleError(f"{path} lacks columns {missing}")
                return cls(*(data[f] for f in _FIELDS))
        except (OSError, ValueError) as err:
            raise BundleError(f"cannot read the tile table {path}: {err}") from None


_FIELDS = ("tile_id", "lat", "lon", "footprint_m", "cell")
