"""Contact sheet of a written dataset: satellite tile and panorama side by side per row.

It reads the dataset back through :func:`train.datasets.load`, so the sheet shows what a
training run will see (and writing it is a last check that the files load).

Usage::

    write_preview("cvusa", Path("data/cvusa"), Path("preview.png"), rows=6)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from d4g_edge.fileio import atomic_write
from train.datasets import load, read_image

_ROW_PX = 96  # height of one row of the sheet
_GAP = 4


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Stack (satellite, panorama) pairs into one image, each row ``_ROW_PX`` high."""
    rows = []
    for sat, pano in pairs:
        s = np.asarray(Image.fromarray(sat).resize((_ROW_PX, _ROW_PX), Image.Resampling.BILINEAR))
        pw = round(pano.shape[1] * _ROW_PX / pano.shape[0])
        p = np.asarray(Image.fromarray(pano).resize((pw, _ROW_PX), Image.Resampling.BILINEAR))
        rows.append(np.concatenate([s, np.full((_ROW_PX, _GAP, 3), 255, np.uint8), p], axis=1))
    width = max(r.shape[1] for r in rows)
    padded = [
        np.pad(r, ((0, _GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows
    ]
    return np.concatenate(padded, axis=0)


def write_preview(layout: str, root: Path, path: Path, rows: int = 6) -> Path:
    """Sheet of the first ``rows // 2`` train and test pairs (positives for VIGOR)."""
    pairs = []
    for split, n in (("train", (rows + 1) // 2), ("test", rows // 2)):
        data = load(layout, root, split)
        for i in range(min(n, len(data))):
            sat = read_image(data.reference_paths[int(data.positive_index[i])])
            pairs.append((sat, read_image(data.query_paths[i])))
    buffer = io.BytesIO()
    Image.fromarray(contact_sheet(pairs)).save(buffer, format="PNG")
    return atomic_write(path, buffer.getvalue())
