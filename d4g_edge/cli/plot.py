"""A picture of one localization: the query, the top-k tiles' positions on a local map
(metres east/north of the best), and the truth when known. Needs matplotlib (optional).

Every failure a user can cause is a :class:`~d4g_edge.errors.D4GEdgeError`: matplotlib
missing (the message gives the pip command), an output folder that does not exist, an
unsupported file type, a file that cannot be written. :func:`check_plot_target` runs the
checks that need no picture, so the CLI refuses a bad ``--plot`` before it localizes anything.

Usage::

    from d4g_edge.cli.plot import plot_localization
    plot_localization(rgb, fix, "out.png", truth=(lat, lon))
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from d4g_edge.errors import D4GEdgeError
from d4g_edge.geo import GeoReference
from d4g_edge.localizer import Localization

_INSTALL = "pip install matplotlib (or pip install 'd4g-edge[viz]')"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _figure_cls():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise D4GEdgeError(
            f"plotting needs matplotlib, which is not installed: {_INSTALL}"
        ) from None
    return Figure


def check_plot_target(out: str | Path) -> tuple[Path, str]:
    """``(path, format)`` of a picture that can be written at ``out``, else a typed error.

    The format is the suffix's (``.png``, ``.pdf``, ``.svg``, ...); no suffix means PNG, written
    to ``out`` exactly (matplotlib would otherwise append ``.png``)."""
    Figure = _figure_cls()
    out = Path(out)
    if str(out) in ("", "."):
        raise D4GEdgeError("the plot path is empty; pass a file name such as result.png")
    if out.is_dir():
        raise D4GEdgeError(f"the plot path {out} is a folder; pass a file name such as {out}/a.png")
    parent = out.parent
    if not parent.is_dir():
        raise D4GEdgeError(
            f"cannot write the plot {out}: the folder {parent} does not exist (or is not a "
            f"folder); create it first (mkdir -p {parent}) or choose another path"
        )
    fmt = out.suffix[1:].lower() or "png"
    supported = Figure().canvas.get_supported_filetypes()
    if fmt not in supported:
        raise D4GEdgeError(
            f"cannot write the plot {out}: matplotlib does not know the file type {fmt!r}; use "
            f"one of {', '.join('.' + k for k in sorted(supported))}"
        )
    return out, fmt


def plot_localization(
    query: np.ndarray,
    fix: Localization,
    out: str | Path,
    truth: tuple[float, float] | None = None,
    title: str = "",
) -> Path:
    out, fmt = check_plot_target(out)
    # A Figure without pyplot: no global backend switch, no state shared with the caller's
    # own matplotlib use, and nothing to close.
    fig = _figure_cls()(figsize=(11, 4.2))
    ax_img, ax_map = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    ax_img.imshow(query)
    ax_img.set_title(title or "query")
    ax_img.axis("off")
    if _finite(fix.lat) and _finite(fix.lon) and fix.candidates:
        _draw_map(fig, ax_map, fix, truth)
    else:  # nothing to put on a map: say so rather than fail
        ax_map.text(0.5, 0.5, "no position", ha="center", va="center", transform=ax_map.transAxes)
        ax_map.axis("off")
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=100, format=fmt)
    except (OSError, RuntimeError, ValueError) as err:
        # OSError: permission denied, disk full; RuntimeError: .pgf without a LaTeX install
        raise D4GEdgeError(f"cannot write the plot {out} ({fmt}): {err}") from None
    return out


def _draw_map(fig, ax_map, fix: Localization, truth: tuple[float, float] | None) -> None:
    from matplotlib.patches import Circle

    ref = GeoReference(fix.lat, fix.lon)
    e, n = ref.latlon_to_metres([c.lat for c in fix.candidates], [c.lon for c in fix.candidates])
    sc = ax_map.scatter(
        e, n, c=[c.score for c in fix.candidates], cmap="viridis", s=60, edgecolors="k", zorder=3
    )
    for rank, (x, y) in enumerate(zip(e, n, strict=True), 1):
        ax_map.annotate(str(rank), (x, y), textcoords="offset points", xytext=(5, 5))
    if _finite(fix.uncertainty_m):  # no fix (not_in_map) has no radius: no circle
        ax_map.add_patch(Circle((0, 0), fix.uncertainty_m, fill=False, ls="--", color="tab:blue"))
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
