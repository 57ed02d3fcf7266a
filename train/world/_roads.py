"""Road network: generation (jittered, thinned, meandering grid + arterials) and rasters.

Roads are polylines with a width; rasterisation samples the centrelines densely and uses a
Euclidean distance transform per road class, so each cell knows its distance to the nearest
centreline, that road's width and the arc length there (for dashed lane markings).

Usage::

    net = generate_roads(rng, style, size_m=1200.0, land=land_mask, res_m=0.5)
    rr = rasterize_roads(net, n=2400, res_m=0.5)
    rr.surface, rr.sidewalk, rr.white, rr.yellow  # (N, N) bool
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from train.world._styles import TownStyle

_SAMPLE_M = 0.25  # centreline sampling step: half a cell, so no cell along a road is missed


@dataclass(frozen=True)
class RoadNet:
    polylines: tuple[np.ndarray, ...]  # each (P, 2) east, north metres
    widths: np.ndarray  # (R,) float
    arterial: np.ndarray  # (R,) bool


@dataclass(frozen=True)
class RoadRaster:
    surface: np.ndarray  # bool: asphalt
    sidewalk: np.ndarray  # bool
    white: np.ndarray  # bool: white paint
    yellow: np.ndarray  # bool: yellow paint
    edge_dist: np.ndarray  # float32 metres from the asphalt edge (negative inside)
    junction: np.ndarray  # bool: cells near a junction (no parking, no markings)
    pts: np.ndarray  # (P, 2) centreline samples east, north
    dirs: np.ndarray  # (P,) direction radians
    width: np.ndarray  # (P,) width of the road at each sample
    road_id: np.ndarray  # (P,) road index of each sample


def stamp_discs(
    shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray, radius_px: float, dedup_px: int = 1
) -> np.ndarray:
    """Boolean mask of discs around cells (cheaper than a dilation for few, sparse seeds)."""
    out = np.zeros(shape, dtype=bool)
    if len(rows) == 0:
        return out
    key = np.unique((rows // dedup_px) * shape[1] + cols // dedup_px)
    r0, c0 = (key // shape[1]) * dedup_px, (key % shape[1]) * dedup_px
    rad = int(np.ceil(radius_px))
    for dy in range(-rad, rad + 1):
        dx = int(np.sqrt(max(radius_px**2 - dy * dy, 0.0)))
        rr = np.clip(r0 + dy, 0, shape[0] - 1)
        for x in range(-dx, dx + 1):
            out[rr, np.clip(c0 + x, 0, shape[1] - 1)] = True
    return out


def _meander(rng: np.random.Generator, t: np.ndarray, amp: float) -> np.ndarray:
    out = np.zeros_like(t)
    for _ in range(2):
        lam = rng.uniform(150.0, 500.0)
        out += amp / 2.0 * np.sin(2.0 * np.pi * t / lam + rng.uniform(0, 2 * np.pi))
    return out


def _grid_family(rng, style: TownStyle, centre, u, v, reach, cross_offsets, offsets):
    """Roads parallel to ``u`` at ``offsets`` along ``v``, cut into runs between crossings."""
    lines = []
    ext = style.road_wiggle_m + style.local_width_m[1]
    for off in offsets:
        t = np.arange(-reach, reach, 2.0)
        wig = _meander(rng, t, style.road_wiggle_m)
        pts = centre + np.outer(t, u) + np.outer(off + wig, v)
        keep = rng.uniform(size=len(cross_offsets) + 1) >= style.road_drop_prob
        bounds = np.concatenate([[-reach], cross_offsets, [reach]])
        start = None
        for i, k in enumerate(keep):  # merge consecutive kept segments into one polyline
            if k and start is None:
                start = bounds[i]
            if (not k or i == len(keep) - 1) and start is not None:
                end = bounds[i + 1] if k else bounds[i]
                sel = (t >= start - ext) & (t <= end + ext)
                if sel.sum() > 5:
                    lines.append(pts[sel])
                start = None
    return lines


def _offsets(rng, block: tuple[float, float], reach: float) -> np.ndarray:
    offs, x = [], -reach + rng.uniform(0, block[1])
    while x < reach:
        offs.append(x)
        x += rng.uniform(*block)
    return np.asarray(offs)


def _split_on_land(line: np.ndarray, land: np.ndarray, res_m: float) -> list[np.ndarray]:
    n = land.shape[0]
    c = np.clip((line[:, 0] / res_m).astype(np.int64), 0, n - 1)
    r = np.clip((-line[:, 1] / res_m).astype(np.int64), 0, n - 1)
    ok = land[r, c]
    runs, start = [], None
    for i, k in enumerate(np.append(ok, False)):
        if k and start is None:
            start = i
        elif not k and start is not None:
            if i - start > 10:  # at least ~20 m of road
                runs.append(line[start:i])
            start = None
    return runs


def generate_roads(rng, style: TownStyle, size_m: float, land: np.ndarray, res_m: float) -> RoadNet:
    """A thinned grid at a random angle plus arterials, cut where it meets water."""
    centre = np.array([size_m / 2.0, -size_m / 2.0])
    reach = size_m * 0.75
    phi = rng.uniform(0, np.pi / 2)
    u, v = np.array([np.cos(phi), np.sin(phi)]), np.array([-np.sin(phi), np.cos(phi)])
    off_a, off_b = _offsets(rng, style.block_m, reach), _offsets(rng, style.block_m, reach)
    lines = _grid_family(rng, style, centre, u, v, reach, off_b, off_a)
    lines += _grid_family(rng, style, centre, v, -u, reach, -off_a[::-1], off_b)
    arterial = [False] * len(lines)
    for _ in range(rng.integers(style.n_arterials[0], style.n_arterials[1] + 1)):
        a = rng.uniform(0, np.pi)
        d = np.array([np.cos(a), np.sin(a)])
        p0 = centre + rng.uniform(-0.3, 0.3, size=2) * size_m
        t = np.arange(-reach * 1.2, reach * 1.2, 2.0)
        wig = _meander(rng, t, 2.0 * style.road_wiggle_m + 10.0)
        lines.append(p0 + np.outer(t, d) + np.outer(wig, [-d[1], d[0]]))
        arterial.append(True)
    polys, widths, art = [], [], []
    for line, is_art in zip(lines, arterial, strict=True):
        w = rng.uniform(*(style.arterial_width_m if is_art else style.local_width_m))
        for run in _split_on_land(line, land, res_m):
            polys.append(run)
            widths.append(w)
            art.append(is_art)
    return RoadNet(tuple(polys), np.asarray(widths, dtype=np.float64), np.asarray(art, dtype=bool))


def _densify(line: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seg = np.diff(line, axis=0)
    seglen = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seglen)])
    s = np.arange(0.0, cum[-1], _SAMPLE_M)
    x, y = np.interp(s, cum, line[:, 0]), np.interp(s, cum, line[:, 1])
    idx = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    return np.stack([x, y], axis=1), s, np.arctan2(seg[idx, 1], seg[idx, 0])


def rasterize_roads(net: RoadNet, n: int, res_m: float, sidewalk_m: float) -> RoadRaster:
    """Asphalt, sidewalks, lane markings and junction cells of ``net`` on an N x N grid."""
    size_m = n * res_m
    samples = [_densify(p) for p in net.polylines]
    pts = np.concatenate([s[0] for s in samples]) if samples else np.zeros((0, 2))
    arc = np.concatenate([s[1] for s in samples]) if samples else np.zeros(0)
    dirs = np.concatenate([s[2] for s in samples]) if samples else np.zeros(0)
    rid = np.concatenate([np.full(len(s[1]), i) for i, s in enumerate(samples)]).astype(np.int64)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < size_m) & (pts[:, 1] <= 0) & (pts[:, 1] > -size_m)
    pts, arc, dirs, rid = pts[inside], arc[inside], dirs[inside], rid[inside]
    cols, rows = (pts[:, 0] / res_m).astype(np.int64), (-pts[:, 1] / res_m).astype(np.int64)

    # junctions: a cell claimed by two different roads
    owner = np.full((n, n), -1, dtype=np.int64)
    junction_seed = np.zeros((n, n), dtype=bool)
    owner[rows, cols] = rid
    junction_seed[rows, cols] = owner[rows, cols] != rid

    surface = np.zeros((n, n), dtype=bool)
    sidewalk = np.zeros((n, n), dtype=bool)
    white = np.zeros((n, n), dtype=bool)
    yellow = np.zeros((n, n), dtype=bool)
    edge_dist = np.full((n, n), np.inf, dtype=np.float32)
    for is_art in (False, True):
        sel = net.arterial[rid] == is_art
        if not sel.any():
            continue
        cell_sample = np.full((n, n), -1, dtype=np.int64)
        cell_sample[rows[sel], cols[sel]] = np.flatnonzero(sel)
        dist, (ir, ic) = ndimage.distance_transform_edt(cell_sample < 0, return_indices=True)
        dist = (dist * res_m).astype(np.float32)
        near = cell_sample[ir, ic]
        w = net.widths[rid[near]].astype(np.float32)
        s = arc[near]
        on = dist <= w / 2.0
        surface |= on
        sidewalk |= (dist > w / 2.0) & (dist <= w / 2.0 + sidewalk_m)
        edge_dist = np.minimum(edge_dist, dist - w / 2.0)
        dash = np.mod(s, 9.0) < 3.0
        if is_art:
            yellow |= on & (dist < 0.3)
            white |= on & (np.abs(dist - w / 4.0) < 0.3) & dash
            white |= on & (np.abs(dist - (w / 2.0 - 0.6)) < 0.3)
        else:
            white |= on & (dist < 0.3) & dash & (w >= 7.5)
    sidewalk &= ~surface
    junction = stamp_discs((n, n), *np.nonzero(junction_seed), radius_px=14.0 / res_m, dedup_px=8)
    white &= ~junction
    yellow &= ~junction
    return RoadRaster(
        surface=surface,
        sidewalk=sidewalk,
        white=white,
        yellow=yellow,
        edge_dist=edge_dist,
        junction=junction,
        pts=pts,
        dirs=dirs,
        width=net.widths[rid].astype(np.float32),
        road_id=rid,
    )
