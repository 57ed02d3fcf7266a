"""Tile sources that need the training tooling: datasets in CVUSA/CVACT/VIGOR layout and the
procedural world. They yield :class:`d4g_edge.build.tiles.base.Tile` records, so the torch-free
:func:`d4g_edge.build.build_index` embeds them like any map tiles.

* :class:`DatasetTileSource` indexes a split's satellite references at their centres
  (``reference_latlon``; CVUSA needs ``split_locations/all.csv``).
* :class:`WorldTileSource` renders a regular grid of north-up tiles over a generated town
  (``tile_size_m`` on a side every ``stride_m``) with one satellite capture (domain gap) per
  town, as a real orthophoto would be: a device's picture is taken anywhere, not at a tile
  centre.

Usage::

    from train.tile_sources import DatasetTileSource, WorldTileSource
    src = DatasetTileSource("vigor", "/data/VIGOR", "test")
    src = WorldTileSource(seed=90210, style="suburb", size_m=600, tile_size_m=90, stride_m=15)
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np

from d4g_edge.build.tiles.base import Tile
from d4g_edge.errors import TileSourceError
from d4g_edge.image import load_rgb


class DatasetTileSource:
    def __init__(
        self,
        name: str,
        root: str | Path,
        split: str = "test",
        footprint_m: float = float("nan"),
        vigor_mode: str = "cross",
    ) -> None:
        from train.datasets import load

        self.name, self.root, self.split = name, Path(root), split
        # VIGOR: the area protocol train.evaluate scores by default (cross: the test cities)
        self.vigor_mode = vigor_mode if name == "vigor" else None
        self.data = load(name, root, split, **({"mode": vigor_mode} if self.vigor_mode else {}))
        if self.data.reference_latlon is None:
            raise TileSourceError(
                f"{name} {split} at {root} has no reference coordinates (for CVUSA add "
                "split_locations/all.csv); an index needs each tile's position"
            )
        self.footprint_m = float(footprint_m)
        if not np.isfinite(self.footprint_m) and self.data.tile_stride:
            self.footprint_m = self.data.tile_side_m()  # a grid (VIGOR): its own spacing

    @property
    def grid_stride(self) -> float | None:
        """VIGOR's half-overlap grid (0.5); None for CVUSA/CVACT, queries at tile centres."""
        return self.data.tile_stride

    def __len__(self) -> int:
        return self.data.num_references

    def describe(self) -> dict:
        return {
            "kind": "dataset",
            "dataset": self.name,
            "path": str(self.root),
            "split": self.split,
            **({"vigor_mode": self.vigor_mode} if self.vigor_mode else {}),
        }

    def __iter__(self) -> Iterator[Tile]:
        d = self.data
        for path, rid, (lat, lon) in zip(
            d.reference_paths, d.reference_ids, d.reference_latlon, strict=True
        ):
            yield Tile(
                int(rid), float(lat), float(lon), self.footprint_m, lambda p=path: load_rgb(p)
            )


class WorldTileSource:
    def __init__(
        self,
        seed: int,
        style: str = "suburb",
        size_m: float = 600.0,
        tile_size_m: float = 90.0,
        stride_m: float = 15.0,
        tile_px: int = 256,
        gap_strength: float = 1.0,
        origin: tuple[float, float] = (40.0, -88.0),
    ) -> None:
        if tile_size_m >= size_m or stride_m <= 0 or tile_px < 8:
            raise TileSourceError(
                f"need tile_size_m < size_m, stride_m > 0, tile_px >= 8; got {tile_size_m}, "
                f"{size_m}, {stride_m}, {tile_px}"
            )
        self.seed, self.style, self.size_m = int(seed), style, float(size_m)
        self.tile_size_m, self.stride_m, self.tile_px = float(tile_size_m), float(stride_m), tile_px
        self.gap_strength, self.origin = float(gap_strength), tuple(origin)
        start = tile_size_m / 2
        self.east = np.arange(start, size_m - start + 1e-6, stride_m)
        self.north = -np.arange(start, size_m - start + 1e-6, stride_m)

    @cached_property
    def world(self):
        from train.world import World

        return World.generate(
            self.seed,
            self.style,
            size_m=self.size_m,
            origin_lat=self.origin[0],
            origin_lon=self.origin[1],
        )

    @cached_property
    def gap(self):
        from train.world import DomainGap

        # one capture for the whole town, drawn from the seed (never the training draws)
        return DomainGap.sample(np.random.default_rng([self.seed, 7]), self.gap_strength)

    def __len__(self) -> int:
        return len(self.east) * len(self.north)

    def describe(self) -> dict:
        return {
            "kind": "world",
            "seed": self.seed,
            "style": self.style,
            "size_m": self.size_m,
            "tile_size_m": self.tile_size_m,
            "stride_m": self.stride_m,
            "tile_px": self.tile_px,
            "gap_strength": self.gap_strength,
            "origin": list(self.origin),
        }

    def centre_en(self, tile_id: int) -> tuple[float, float]:
        r, c = divmod(int(tile_id), len(self.east))
        return float(self.east[c]), float(self.north[r])

    def __iter__(self) -> Iterator[Tile]:
        georef = self.world.georef
        for tid in range(len(self)):
            e, n = self.centre_en(tid)
            lat, lon = georef.metres_to_latlon(e, n)
            yield Tile(
                tid, float(lat), float(lon), self.tile_size_m, lambda en=(e, n): self._render(en)
            )

    def _render(self, en) -> np.ndarray:
        return self.world.render_satellite(
            en, size_px=self.tile_px, gsd_m=self.tile_size_m / self.tile_px, gap=self.gap
        )
