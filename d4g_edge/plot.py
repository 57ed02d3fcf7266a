"""A picture of one localization: the query, the top-k tiles' positions on a local map
(metres east/north of the best), and the truth when known. Needs matplotlib (optional).

Usage::

    from d4g_edge.plot import plot_localization
    plot_localization(rgb, fix, "out.png", truth=(lat, lon))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d4g_edge.errors import D4GEdgeError
from d4g_edge.geo import GeoReference
from d4g_edge.localizer import Localization


def plot_localization(
    query: np.ndarray,
    fix: Localization,
    out: str | Path,
    truth: tuple[float, float] | None = None,
    title: str = "",
) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise D4GEdgeError("--plot needs matplotlib: pip install matplotlib") from None
    ref = GeoReference(fix.lat, fix.lon)
    fig, (ax_img, ax_map) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]}
    )
    ax_img.imshow(query)
    ax_img.set_title(title or "query")
    ax_img.axis("off")
    e, n = ref.latlon_to_metres([c.lat for c in fix.candidates], [c.lon for c in fix.candidates])
    sc = ax_map.scatter(
        e, n, c=[c.score for c in fix.candidates], cmap="viridis", s=60, edgecolors="k", zorder=3
    )
    for rank, (x, y) in enumerate(zip(e, n, strict=True), 1):
        ax_map.annotate(str(rank), (x, y), textcoords="offset points", xytext=(5, 5))
    ax_map.add_patch(plt.Circle((0, 0), fix.uncertainty_m, fill=False, ls="--", color="tab:blue"))
    if truth is not None:
        te, tn = ref.latlon_to_metres(*truth)
        ax_map.scatter([te], [tn], marker="*", s=200, color="tab:red", zorder=4, label="truth")
        ax_map.legend(loc="lower right")
    fig.colorbar(sc, ax=ax_map, label="cosine score")
    ax_map.set_aspect("equal", adjustable="datalim")
    ax_map.set_xlabel("east of best (m)")
    ax_map.set_ylabel("north of best (m)")
    ax_map.set_title(f"top-{len(fix.candidates)}: {fix.lat:.6f}, {fix.lon:.6f}")
    ax_map.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
