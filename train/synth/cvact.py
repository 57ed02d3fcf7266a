"""Write a synthetic dataset in the official CVACT layout.

Files::

    ANU_data_small/streetview/{id}_grdView.jpg             train pairs and the valSet pairs
    ANU_data_small/satview_polish/{id}_satView_polish.jpg
    ANU_data_test/streetview/..., ANU_data_test/satview_polish/...   the valSetAll pairs
    ACT_data.mat   written last

``ACT_data.mat`` holds ``panoIds`` (a char matrix of 22-character ids like Google pano
ids), ``utm`` (N x 2 easting/northing in zone 55S: the towns are placed in Canberra like
the release) and the 1x1 structs ``trainSet``/``valSet``/``valSetAll`` whose second field
(``trainInd``/``valInd``) holds sorted 1-based rows. Their first field is a count
(``trainNum``/``valNum``); its name in the release could not be verified, and loaders read
the index field by name. Rows are a random permutation, so split membership is only known
through the index fields, as in the release. ``valSet`` is every second test pair.

Usage::

    write_cvact(cfg, run_jobs)
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
import scipy.io

from d4g_edge.fileio import atomic_write
from train.datasets.cvact import CVACT_ZONE, ground_relpath, satellite_relpath
from train.datasets.utm import latlon_to_utm

from ._config import SynthConfig
from ._pairs import STREAM_IDS, STREAM_VIEWS, pair_jobs, plan_pairs, town_records
from ._render import ViewJob
from ._towns import derived_seed

BASE_LATLON = (-35.25, 149.05)  # Canberra, inside UTM zone 55
OWNED = ("ACT_data.mat", "ANU_data_small", "ANU_data_test")
_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def _pano_ids(rng: np.random.Generator, n: int) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        pid = "".join(rng.choice(_ID_ALPHABET, 22))
        if pid not in seen:
            seen.add(pid)
            ids.append(pid)
    return ids


def _savemat_atomic(path, data: dict) -> None:
    buf = io.BytesIO()
    scipy.io.savemat(buf, data)
    raw = bytearray(buf.getvalue())
    # The 116-byte MAT v5 text header carries a creation time; a fixed text keeps the file
    # byte-identical across runs (the format only needs it to start with non-zero bytes).
    raw[:116] = b"MATLAB 5.0 MAT-file, written by train.synth".ljust(116)
    atomic_write(path, bytes(raw))


def write_cvact(cfg: SynthConfig, run: Callable[[Sequence[ViewJob]], None]) -> list[dict]:
    """Render and write every file; returns the towns used (for ``synth_info.json``)."""
    pairs = plan_pairs(cfg, BASE_LATLON)
    rng = np.random.default_rng(derived_seed(cfg.seed, STREAM_IDS))
    rows = rng.permutation(len(pairs))  # pair k is stored in 0-based row rows[k]
    pano_ids = _pano_ids(rng, len(pairs))
    test_ks = [k for k, p in enumerate(pairs) if p.split == "test"]
    val_ks = set(test_ks[::2])

    out, jobs = cfg.out, []
    for k, pair in enumerate(pairs):
        pid = pano_ids[rows[k]]
        folders = ["ANU_data_test"] if pair.split == "test" else ["ANU_data_small"]
        if k in val_ks:
            folders.append("ANU_data_small")  # valSet images live in ANU_data_small too
        sat = tuple(str(out / satellite_relpath(f, pid)) for f in folders)
        pano = tuple(str(out / ground_relpath(f, pid)) for f in folders)
        jobs += pair_jobs(cfg, pair, sat, pano, derived_seed(cfg.seed, STREAM_VIEWS, int(rows[k])))
    run(jobs)

    utm = np.zeros((len(pairs), 2))
    lat = np.array([p.lat for p in pairs])
    lon = np.array([p.lon for p in pairs])
    utm[rows, 0], utm[rows, 1], _ = latlon_to_utm(lat, lon, CVACT_ZONE)

    def matlab_rows(ks) -> np.ndarray:  # sorted 1-based rows as a MATLAB double column
        return np.sort(rows[list(ks)] + 1).astype(np.float64).reshape(-1, 1)

    train_rows = matlab_rows(k for k, p in enumerate(pairs) if p.split == "train")
    val_rows, all_rows = matlab_rows(sorted(val_ks)), matlab_rows(test_ks)
    # Written last: without it the folders hold images but no dataset.
    _savemat_atomic(
        out / "ACT_data.mat",
        {
            "panoIds": np.array(pano_ids),  # equal lengths -> saved as an N x 22 char matrix
            "utm": utm,
            "trainSet": {"trainNum": float(len(train_rows)), "trainInd": train_rows},
            "valSet": {"valNum": float(len(val_rows)), "valInd": val_rows},
            "valSetAll": {"valNum": float(len(all_rows)), "valInd": all_rows},
        },
    )
    return town_records(pairs)
