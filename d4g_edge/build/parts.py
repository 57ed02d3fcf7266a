"""The work folder of a resumable build (``<out>.parts/``): its state and its part files.

``state.json`` records what the build embeds (source, encoder, shard, part size, centres);
a build resumes only from a folder whose state is the same, so finished parts are never mixed
with parts of another build. Each part is one ``.npz`` of ``part_size`` tiles: embeddings, the
tile columns and the count of nodata tiles skipped, written atomically so a killed build
leaves whole parts only.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np

from d4g_edge.errors import BundleError
from d4g_edge.fileio import atomic_write, atomic_write_json
from d4g_edge.tiletable import TileTable

PART_FORMAT = 2  # parts hold the tile columns and the count of nodata tiles skipped
_TABLE_FIELDS = ("tile_id", "lat", "lon", "footprint_m", "cell")


def open_work(work: Path, state: dict, resume: bool) -> None:
    """Make ``work`` ready for the build described by ``state``: with ``resume`` keep its
    parts if it was started with the same state (else BundleError), without it start over."""
    state_file = work / "state.json"
    if work.exists() and resume:
        try:
            old = json.loads(state_file.read_text()) if state_file.is_file() else None
        except (OSError, ValueError):
            old = None
        if old != state:
            raise BundleError(
                f"cannot resume from {work}: it was started with {old}, this build "
                f"is {state}; drop --resume to start over"
            )
    elif work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(state_file, state)


def save_part(path: Path, vectors: np.ndarray, table: TileTable, skipped: int) -> None:
    buf = io.BytesIO()
    columns = {f"tile_{f}": getattr(table, f) for f in _TABLE_FIELDS}
    np.savez(buf, vectors=vectors, skipped=np.int64(skipped), **columns)
    atomic_write(path, buf.getvalue())


def load_part(path: Path) -> tuple[np.ndarray, TileTable, int]:
    """(embeddings, tile rows, nodata tiles skipped) of a finished part."""
    try:
        with np.load(path, allow_pickle=False) as data:
            table = TileTable(*(data[f"tile_{f}"] for f in _TABLE_FIELDS))
            return data["vectors"], table, int(data["skipped"])
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise BundleError(
            f"{path} (a finished part of this build) cannot be read ({err}); drop --resume to "
            "start over"
        ) from None
