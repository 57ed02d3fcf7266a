"""Cast shadows from the height field for one sun direction, over a raster window.

A cell is in shadow when, marching from it towards the sun, the sun ray passes through some
cell's occupied height interval (ground or building up to its top; a tree crown only between
its underside and top, so crown shadows fall away from the trunk). The march shifts the
whole window at once (one array comparison per step); steps grow with distance because
long shadows come from tall, wide buildings.

Usage::

    lit = lit_mask(layers, r0, r1, c0, c1, gap, res_m=0.5, max_rise_m=20.0)
"""

from __future__ import annotations

import numpy as np

from train.world._gap import DomainGap

_MAX_SHADOW_M = 90.0  # caps the march for a very low sun; haze/blur hide the rest


def _steps(length_px: int) -> np.ndarray:
    s, out = 1.0, []
    while s <= length_px:
        out.append(s)
        s += max(1.0, s / 6.0)
    return np.asarray(out)


def lit_mask(
    layers, r0: int, r1: int, c0: int, c1: int, gap: DomainGap, res_m: float, max_rise_m: float
):
    """float32 (r1-r0, c1-c0): 1 where the sun reaches the surface, 0 in shadow.

    ``layers`` (an EpochLayers) gives ``top_height`` and ``underside_height`` of any window.
    """
    tan_el = np.tan(np.radians(gap.sun_elevation_deg))
    length_px = int(min(max_rise_m / tan_el, _MAX_SHADOW_M) / res_m) + 1
    az = np.radians(gap.sun_azimuth_deg)
    # towards the sun in raster (row, col); snapped so that cos(300 deg) = 0.5 exactly and the
    # rounding of half-cell steps stays symmetric under rotations and mirroring of the world
    dr, dc = np.round(-np.cos(az), 9), np.round(np.sin(az), 9)
    steps = _steps(length_px)
    sr, sc = np.round(steps * dr).astype(np.int64), np.round(steps * dc).astype(np.int64)
    pr0, pr1 = min(0, sr.min(initial=0)), max(0, sr.max(initial=0))
    pc0, pc1 = min(0, sc.min(initial=0)), max(0, sc.max(initial=0))
    win = (r0 + pr0, r1 + pr1, c0 + pc0, c1 + pc1)
    ext, low = layers.top_height(*win), layers.underside_height(*win)
    h, w = r1 - r0, c1 - c0
    target = ext[-pr0 : -pr0 + h, -pc0 : -pc0 + w]
    shadow = np.zeros((h, w), dtype=bool)
    drop = steps * res_m * tan_el
    for k in range(len(steps)):
        y, x = sr[k] - pr0, sc[k] - pc0
        ray = target + drop[k]
        shadow |= (ext[y : y + h, x : x + w] > ray) & (low[y : y + h, x : x + w] < ray)
    return (~shadow).astype(np.float32)
