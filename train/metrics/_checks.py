"""Input checks shared by the metrics: ids, embeddings, lat/lon and id lookups; each raises
:class:`~train.metrics.records.MetricsInputError` saying what is wrong."""

from __future__ import annotations

import numpy as np

from d4g_edge.log import logger
from train.metrics.records import MetricsInputError

# Tolerance on |norm - 1| before warning that embeddings are not L2-normalised.
_NORM_TOL = 1e-3


def _ids(name: str, ids, length: int | None = None) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise MetricsInputError(
            f"{name} must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}"
        )
    if length is not None and len(arr) != length:
        raise MetricsInputError(f"{name} has {len(arr)} entries but there are {length} vectors")
    return arr.astype(np.int64, copy=False)


def _embeddings(name: str, x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise MetricsInputError(
            f"{name} must be a 2-D float array (N x D), got shape {arr.shape} dtype {arr.dtype}"
        )
    if len(arr) == 0:
        raise MetricsInputError(f"{name} is empty; need at least one vector")
    if not np.isfinite(arr).all():
        raise MetricsInputError(f"{name} contains NaN or inf; check the encoder's outputs")
    # Dot products still rank well-defined without normalisation (Sample4Geo ranks raw dot
    # products too), so this is a warning: it is almost always a forgotten F.normalize.
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64))
    bad = int((np.abs(norms - 1.0) > _NORM_TOL).sum())
    if bad:
        logger.warning(
            "%d of %d %s vectors are not L2-normalised (norms %.4g..%.4g); ranking by raw "
            "dot product",
            bad,
            len(arr),
            name,
            norms.min(),
            norms.max(),
        )
    return arr


def _latlon(name: str, x, length: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (length, 2):
        raise MetricsInputError(f"{name} must have shape ({length}, 2) (lat, lon), got {arr.shape}")
    if not np.isfinite(arr).all() or np.abs(arr[:, 0]).max() > 90 or np.abs(arr[:, 1]).max() > 360:
        raise MetricsInputError(
            f"{name} must hold finite (lat, lon) in degrees (|lat| <= 90); got values out of "
            "range: are the columns swapped to (lon, lat)?"
        )
    return arr


def ids_to_index(ids: np.ndarray, reference_ids: np.ndarray, what: str = "query_ids") -> np.ndarray:
    """Index into ``reference_ids`` of every id in ``ids`` (any shape); clear error if missing."""
    reference_ids = _ids("reference_ids", reference_ids)
    order = np.argsort(reference_ids, kind="stable")
    sorted_ids = reference_ids[order]
    dup = sorted_ids[1:] == sorted_ids[:-1]
    if dup.any():
        raise MetricsInputError(
            f"reference_ids must be unique; {sorted_ids[1:][dup][:5].tolist()} appear twice"
        )
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    missing = sorted_ids[pos] != ids
    if missing.any():
        raise MetricsInputError(
            f"{int(missing.sum())} {what} are not among reference_ids, e.g. "
            f"{ids[missing][:5].tolist()}; every query needs its reference in the gallery"
        )
    return order[pos]
