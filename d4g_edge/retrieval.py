"""The bundle's tiles a query is searched among: a position prior's disc as candidate rows
(:func:`prior_rows`) and the index's top rows, one per tile (:func:`search_tiles`), for
:class:`d4g_edge.localizer.Localizer`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from d4g_edge.errors import SearchError
from d4g_edge.geo import haversine_m
from d4g_edge.index_params import topk

if TYPE_CHECKING:
    from d4g_edge.bundle import Bundle


def prior_rows(bundle: Bundle, prior) -> np.ndarray | None:
    """The bundle's rows within a ``prior`` (lat, lon, radius_m); None without a prior."""
    if prior is None:
        return None
    lat, lon, radius = prior_disc(prior)
    rows = bundle.tiles.within(lat, lon, radius)
    if rows.size == 0:
        t = bundle.tiles
        d = float(haversine_m(lat, lon, t.lat, t.lon).min())
        raise SearchError(
            f"no tile lies within {radius:.0f} m of ({lat:.6f}, {lon:.6f}); "
            f"the nearest is {d:.0f} m away: widen the radius"
        )
    return rows


def search_tiles(bundle: Bundle, z: np.ndarray, k: int, cand) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` index rows per query, one per tile: a bundle of an off-centre encoder has
    a row per (tile, centre), and a tile counts once, at its best centre."""
    c = bundle.centres_per_tile
    if c == 1:
        return bundle.index.search(z, k=k, candidates=cand)
    every = getattr(bundle.index, "all_scores", None)  # a cell-sharded index has none
    scores = every(z) if every is not None and cand is None else None
    if scores is not None:  # a flat scan: each tile's best straight from every score
        return best_of_each(scores, bundle.tiles.groups, k)
    size = len(bundle.tiles) if cand is None else len(cand)
    ids, scores = bundle.index.search(z, k=min(k * c, size), candidates=cand)
    rows = first_of_each(bundle.tiles.tile_id[ids], k)
    return np.take_along_axis(ids, rows, 1), np.take_along_axis(scores, rows, 1)


def best_of_each(
    scores: np.ndarray, groups: tuple[np.ndarray | None, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k') rows and scores of the ``k`` best groups of (Q, N) ``scores`` (every row's),
    best first, each group at its best row; ``groups`` = (order, starts) as
    :attr:`d4g_edge.tiletable.TileTable.groups`. What :func:`first_of_each` of a top-(k x
    group size) search gives, without ranking k x 25 rows (the default's localize(): a
    0.08 ms selection and sort over 11,925 scores, then the dedup) when every row is scored
    anyway: the tiles' maxima (477) are ranked instead."""
    order, starts = groups
    s = scores if order is None else scores[:, order]
    g, best = topk(np.maximum.reduceat(s, starts, axis=1), k, None)
    ends = np.append(starts[1:], s.shape[1])
    cols = starts[g][..., None] + np.arange(int((ends - starts).max()))
    cols = np.minimum(cols, (ends[g] - 1)[..., None])  # a shorter group repeats its last row
    q = np.arange(len(s))[:, None]
    within = s[q[..., None], cols]  # (Q, k', G): each chosen group's scores
    rows = cols[q, np.arange(cols.shape[1]), within.argmax(2)]
    return (rows if order is None else order[rows]), best


def first_of_each(tiles: np.ndarray, k: int) -> np.ndarray:
    """(Q, k') columns of the first ``k`` distinct values of each row of (Q, N) ``tiles``,
    each at its first column, in column order; ``k'`` is ``k`` or fewer when a row has fewer
    distinct values (as a search returns fewer rows when there are fewer tiles).

    The first ``k`` distinct values of a row are those of its shortest prefix that holds
    ``k``: prefixes of 4k, 16k, ... columns are tried before the whole row (the 32nd tile
    of a query's best 800 rows is at about column 75), every row at once (an unknown
    heading's 36 rolls)."""
    n = tiles.shape[1]
    width = min(n, 4 * k)
    while True:
        cols, distinct = _first_columns(tiles[:, :width])
        if distinct >= k or width == n:
            return cols[:, : min(k, distinct)]
        width = min(n, 4 * width)


def _first_columns(tiles: np.ndarray) -> tuple[np.ndarray, int]:
    """Each row's first columns of its distinct values in column order (then padding), and
    the fewest distinct values of a row: a stable sort puts a value's first column first
    among its equals."""
    n = tiles.shape[1]
    order = np.argsort(tiles, axis=1, kind="stable")
    ranked = np.take_along_axis(tiles, order, 1)
    first = np.ones(ranked.shape, bool)
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    cols = np.where(first, order, n)  # n (past the end) marks a repeat
    cols.sort(axis=1)
    return cols, int(first.sum(1).min())


def prior_disc(prior) -> tuple[float, float, float]:
    """A position prior as (lat, lon, radius_m), checked."""
    try:
        lat, lon, radius = (float(v) for v in prior)
    except (TypeError, ValueError):
        raise SearchError(f"prior must be (lat, lon, radius_m), got {prior!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and radius > 0):
        raise SearchError(f"prior {prior!r} is not (lat in -90..90, lon, radius_m > 0)")
    return lat, lon, radius
