"""The one in-memory form every loader returns: :class:`CrossViewSplit` (numpy only).

A split is a list of queries (ground panoramas, or drone frames for University-1652: see
``query_view``) and a list of satellite references with the index of each query's true
reference. CVUSA and CVACT pair every query with its own tile (R == Q); VIGOR has a shared
reference set of overlapping tiles plus three semi-positives per query; University-1652 has
many drone frames per tile and, in its Satellite->Drone protocol, drone frames of distractor
locations that have no tile in the split (``positive_index == -1``, see :attr:`has_reference`).

Usage::

    split = train.datasets.load("vigor", "/data/VIGOR", "test", mode="cross")
    split.query_paths[0], split.reference_paths[split.positive_index[0]]
    xy = split.neighbour_positions()  # (R, 2) metres, for GPS-mined hard negatives
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d4g_edge.geo import EARTH_RADIUS_M

QUERY_VIEWS = ("ground", "drone")  # the views (docs/design.md) that can be queries


@dataclass(frozen=True)
class CrossViewSplit:
    """Queries, satellite references and the ground truth linking them.

    ``query_ids[i] == reference_ids[positive_index[i]]`` holds for every query with a
    reference; ids are the dataset's own (CVUSA: integer basename of the satellite file;
    CVACT: 1-based row of ``ACT_data.mat``; VIGOR: row in the concatenated
    ``satellite_list.txt`` files; University-1652: the location folder name as an integer).
    ``positive_index[i] == -1`` marks a query whose location has no reference in this split
    (University-1652 Satellite->Drone distractors); its id is then not among
    ``reference_ids``. Pair datasets and samplers need :attr:`all_matched` splits.
    """

    dataset: str
    split: str
    root: Path
    query_paths: tuple[Path, ...]
    reference_paths: tuple[Path, ...]
    reference_ids: np.ndarray
    query_ids: np.ndarray
    positive_index: np.ndarray
    semi_positive_ids: np.ndarray | None = None
    query_latlon: np.ndarray | None = None
    reference_latlon: np.ndarray | None = None
    reference_utm: np.ndarray | None = None
    # Extras beyond DATASET_API.md: names as the release spells them (CVACT panoIds, VIGOR
    # file names) for logs and debugging, and VIGOR's raw pixel offsets (Q, 4, 2) of the
    # positive then the semi-positives, [delta_lat, delta_lon] = tile centre minus query.
    query_names: tuple[str, ...] = ()
    reference_names: tuple[str, ...] = ()
    positive_offsets_px: np.ndarray | None = None
    # Distance between neighbouring tile centres in tile sides when the references form a grid
    # a query may fall anywhere in (VIGOR: 0.5); None when every query sits at its tile's
    # centre (CVUSA, CVACT). Off-centre encoders embed each tile around cell_centres(stride).
    tile_stride: float | None = None
    # What the query images show: "ground" panoramas or "drone" frames (University-1652).
    query_view: str = "ground"

    def __post_init__(self) -> None:
        q, r = len(self.query_paths), len(self.reference_paths)
        checks = {
            "reference_ids": (self.reference_ids, (r,)),
            "query_ids": (self.query_ids, (q,)),
            "positive_index": (self.positive_index, (q,)),
            "semi_positive_ids": (self.semi_positive_ids, (q, 3)),
            "query_latlon": (self.query_latlon, (q, 2)),
            "reference_latlon": (self.reference_latlon, (r, 2)),
            "reference_utm": (self.reference_utm, (r, 2)),
            "positive_offsets_px": (self.positive_offsets_px, (q, 4, 2)),
        }
        for name, (value, shape) in checks.items():
            if value is not None and np.shape(value) != shape:
                raise ValueError(
                    f"CrossViewSplit.{name} must have shape {shape}, got {value.shape}"
                )
        if self.query_view not in QUERY_VIEWS:
            raise ValueError(
                f"CrossViewSplit.query_view must be one of {QUERY_VIEWS}, got {self.query_view!r}"
            )
        if not q:
            return
        pos = np.asarray(self.positive_index)
        if not np.issubdtype(pos.dtype, np.integer) or pos.min() < -1 or pos.max() >= r:
            raise ValueError(
                f"CrossViewSplit.positive_index must be integers in [-1, {r}) (-1: no "
                f"reference in this split), got {pos.dtype} in [{pos.min()}, {pos.max()}]"
            )
        has = pos >= 0
        if not np.array_equal(self.reference_ids[pos[has]], self.query_ids[has]):
            raise ValueError("CrossViewSplit: query_ids must equal reference_ids[positive_index]")
        if not has.all() and np.isin(self.query_ids[~has], self.reference_ids).any():
            raise ValueError(
                "CrossViewSplit: a query with positive_index -1 has an id that is among "
                "reference_ids; point it at that reference instead"
            )

    def __len__(self) -> int:
        return len(self.query_paths)

    @property
    def num_references(self) -> int:
        return len(self.reference_paths)

    @property
    def has_reference(self) -> np.ndarray:
        """(Q,) bool: the query's location has a reference in this split."""
        return np.asarray(self.positive_index) >= 0

    @property
    def all_matched(self) -> bool:
        """Every query has its true reference here (what pair training needs)."""
        return bool(self.has_reference.all())

    def tile_side_m(self) -> float:
        """A grid split's tile side in metres: the median distance from a tile to its
        nearest neighbour (the grid stride) over :attr:`tile_stride`."""
        if not self.tile_stride:
            raise ValueError(f"{self.dataset} references are not on a tile grid")
        pos = self.neighbour_positions()
        sample = pos[:: max(1, len(pos) // 256)]
        d = np.hypot(*(sample[:, None, :] - pos[None, :, :]).transpose(2, 0, 1))
        d[d < 1e-6] = np.inf
        return float(np.median(d.min(axis=1)) / self.tile_stride)

    def neighbour_positions(self) -> np.ndarray:
        """(R, 2) planar metres of the references, for GPS-nearest hard negatives.

        CVACT uses its UTM coordinates as they are. Otherwise see :func:`planar_positions`.
        """
        if self.reference_utm is not None:
            return np.asarray(self.reference_utm, dtype=np.float64)
        if self.reference_latlon is None:
            raise ValueError(
                f"{self.dataset} {self.split} at {self.root} has no reference coordinates "
                "(for CVUSA, split_locations/all.csv is missing), so GPS neighbours are "
                "unavailable; disable GPS-based sampling or add the locations file"
            )
        return planar_positions(self.reference_latlon)


_CELL_DEG = 0.5  # clustering cell; far larger than a city block, far smaller than a country
_CLUSTER_GAP_M = 4.0e7  # beyond any distance on Earth: clusters never look like neighbours


def planar_positions(latlon: np.ndarray) -> np.ndarray:
    """(N, 2) east/north metres that keep *local* distances right across far-apart places.

    Points are grouped into clusters (connected 0.5-degree cells, e.g. the four VIGOR
    cities); each cluster gets its own equirectangular frame at its mean position, and
    clusters are placed 40,000 km apart. One shared frame would stretch east-west distances
    by cos(lat0)/cos(lat) (about 10 % in Seattle for a frame centred between the VIGOR
    cities); within a cluster the error is that ratio over the cluster's own extent.
    """
    lat, lon = np.asarray(latlon, dtype=np.float64).T
    cells = np.stack([np.floor(lat / _CELL_DEG), np.floor(lon / _CELL_DEG)], 1).astype(np.int64)
    occupied = {tuple(c) for c in cells.tolist()}
    label: dict[tuple[int, int], int] = {}
    n_clusters = 0
    for start in sorted(occupied):  # flood fill over the 8-neighbourhood of occupied cells
        if start in label:
            continue
        label[start], stack = n_clusters, [start]
        n_clusters += 1
        while stack:
            r, c = stack.pop()
            for nb in ((r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)):
                if nb in occupied and nb not in label:
                    label[nb] = label[start]
                    stack.append(nb)
    cluster = np.array([label[tuple(c)] for c in cells.tolist()], dtype=np.int64)
    out = np.empty((len(lat), 2))
    for k in np.unique(cluster):
        m = cluster == k
        lat0, lon0 = lat[m].mean(), lon[m].mean()
        out[m, 0] = np.radians(lon[m] - lon0) * EARTH_RADIUS_M * np.cos(np.radians(lat0))
        out[m, 0] += k * _CLUSTER_GAP_M
        out[m, 1] = np.radians(lat[m] - lat0) * EARTH_RADIUS_M
    return out
