"""The one in-memory form every loader returns: :class:`CrossViewSplit` (numpy only).

A split is a list of ground queries and a list of satellite references with the index of
each query's true reference. CVUSA and CVACT pair every query with its own tile (R == Q);
VIGOR has a shared reference set of overlapping tiles plus three semi-positives per query.

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


@dataclass(frozen=True)
class CrossViewSplit:
    """Ground queries, satellite references and the ground truth linking them.

    ``query_ids[i] == reference_ids[positive_index[i]]`` always holds; ids are the dataset's
    own (CVUSA: integer basename of the satellite file; CVACT: 1-based row of
    ``ACT_data.mat``; VIGOR: row in the concatenated ``satellite_list.txt`` files).
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
        if q and not np.array_equal(self.reference_ids[self.positive_index], self.query_ids):
            raise ValueError("CrossViewSplit: query_ids must equal reference_ids[positive_index]")

    def __len__(self) -> int:
        return len(self.query_paths)

    @property
    def num_references(self) -> int:
        return len(self.reference_paths)

    def neighbour_positions(self) -> np.ndarray:
        """(R, 2) planar metres of the references, for GPS-nearest hard negatives.

        CVACT uses its UTM coordinates as they are. Otherwise lat/lon is mapped with a
        sinusoidal projection (east scaled by the cosine of each point's own latitude): it
        keeps neighbours within a city metrically right even when one split spans several
        cities far apart (VIGOR), where one shared equirectangular origin would not.
        """
        if self.reference_utm is not None:
            return np.asarray(self.reference_utm, dtype=np.float64)
        if self.reference_latlon is None:
            raise ValueError(
                f"{self.dataset} {self.split} at {self.root} has no reference coordinates "
                "(for CVUSA, split_locations/all.csv is missing), so GPS neighbours are "
                "unavailable; disable GPS-based sampling or add the locations file"
            )
        lat = np.radians(self.reference_latlon[:, 0])
        lon = np.radians(self.reference_latlon[:, 1])
        north = EARTH_RADIUS_M * (lat - lat.mean())
        east = EARTH_RADIUS_M * (lon - lon.mean()) * np.cos(lat)
        return np.stack([east, north], axis=1)
