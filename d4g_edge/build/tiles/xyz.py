"""Web-map tiles in an XYZ folder (``z/x/y.png|jpg``, the slippy-map layout) as a tile source.

Tile bounds come from ``mercantile`` (optional extra ``d4g-edge[tiles]``). Each tile is one
index entry: its centre in WGS84 and its footprint (edge length in ground metres: the Web
Mercator edge scaled by cos(latitude)). ``scheme="tms"`` reads folders whose rows count from
the south (TMS). With several zoom levels present the highest is used unless ``zoom`` is set.

Usage::

    from d4g_edge.build.tiles.xyz import XYZTileSource
    src = XYZTileSource("tiles/")            # tiles/19/131072/87381.png ...
    for tile in src: tile.tile_id, tile.lat, tile.lon, tile.read()
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from d4g_edge.build.tiles.base import Tile
from d4g_edge.errors import TileSourceError
from d4g_edge.image import load_rgb
from d4g_edge.log import logger

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_ZOOM = 28  # xyz_tile_id packs x and y in 28 bits each


def _mercantile():
    try:
        import mercantile
    except ImportError:
        raise TileSourceError(
            "XYZ tile folders need mercantile: pip install 'd4g-edge[tiles]'"
        ) from None
    return mercantile


def xyz_tile_id(z: int, x: int, y: int) -> int:
    """A unique integer per (z, x, y): z in the top bits, then x and y (28 bits each)."""
    return (int(z) << 56) | (int(x) << 28) | int(y)


class XYZTileSource:
    def __init__(self, root: str | Path, zoom: int | None = None, scheme: str = "xyz") -> None:
        self.root = Path(root)
        if scheme not in ("xyz", "tms"):
            raise TileSourceError(f"scheme must be 'xyz' or 'tms', got {scheme!r}")
        if zoom is not None and not (
            isinstance(zoom, int) and not isinstance(zoom, bool) and 0 <= zoom <= MAX_ZOOM
        ):
            raise TileSourceError(f"zoom must be an integer 0..{MAX_ZOOM}, got {zoom!r}")
        self.scheme = scheme
        self._m = _mercantile()
        found = sorted(
            int(p.name) for p in self._list(self.root) if p.is_dir() and p.name.isdigit()
        )
        zooms = [z for z in found if z <= MAX_ZOOM]
        if not zooms:
            raise TileSourceError(
                f"{self.root} has no zoom folders (0..{MAX_ZOOM}); expected an XYZ layout "
                "z/x/y.png|jpg"
            )
        if zoom is None:
            zoom = zooms[-1]
            if len(zooms) > 1:
                logger.info("%s holds zooms %s; indexing zoom %d", self.root, zooms, zoom)
        elif zoom not in zooms:
            raise TileSourceError(f"{self.root} has no zoom {zoom}; it holds {zooms}")
        self.zoom = zoom
        self._files = self._scan()
        if not self._files:
            raise TileSourceError(f"{self.root}/{zoom} holds no {'/'.join(SUFFIXES)} tiles")

    @staticmethod
    def _list(folder: Path) -> list[Path]:
        try:
            return sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError as err:
            raise TileSourceError(f"cannot list the tile folder {folder}: {err}") from None

    def _scan(self) -> list[tuple[int, int, Path]]:
        files, seen, n = [], {}, 1 << self.zoom
        for xdir in self._list(self.root / str(self.zoom)):
            if not (xdir.is_dir() and xdir.name.isdigit()):
                continue
            for f in self._list(xdir):
                if f.suffix.lower() not in SUFFIXES or not f.stem.isdigit() or not f.is_file():
                    continue
                x, y = int(xdir.name), int(f.stem)
                if self.scheme == "tms":
                    y = n - 1 - y
                if not (0 <= x < n and 0 <= y < n):
                    raise TileSourceError(f"{f}: tile ({x}, {y}) is outside zoom {self.zoom}")
                if (x, y) in seen:  # 12.png and 12.jpg, or 12.png and 012.png: one tile
                    logger.warning(
                        "%s: tile (%d, %d) is also %s; keeping that", f, x, y, seen[x, y]
                    )
                    continue
                seen[x, y] = f
                files.append((x, y, f))
        return files

    def __len__(self) -> int:
        return len(self._files)

    def describe(self) -> dict:
        return {"kind": "xyz", "path": str(self.root), "zoom": self.zoom, "scheme": self.scheme}

    def tile(self, x: int, y: int, path: Path) -> Tile:
        m = self._m
        b = m.xy_bounds(x, y, self.zoom)
        lon, lat = m.lnglat((b.left + b.right) / 2, (b.bottom + b.top) / 2)
        footprint = (b.right - b.left) * math.cos(math.radians(lat))
        return Tile(xyz_tile_id(self.zoom, x, y), lat, lon, footprint, lambda: load_rgb(path))

    def __iter__(self) -> Iterator[Tile]:
        for x, y, path in self._files:
            yield self.tile(x, y, path)
