"""What every tile source yields. (The tile table a bundle stores from them is
:class:`d4g_edge.tiletable.TileTable`, in the runtime core: bundles read it on the device.)

A source is any object with ``__len__``, ``describe()`` and ``__iter__`` yielding
:class:`Tile` records in a stable order (so a build can be resumed and sharded by position);
``tile.read()`` returns the north-up uint8 RGB tile.

Usage::

    from d4g_edge.build.tiles.base import Tile, TileSource
    from d4g_edge.tiletable import TileTable
    table = TileTable.from_rows([t.tile_id for t in tiles], lat, lon, footprint_m)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["Tile", "TileSource"]


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
