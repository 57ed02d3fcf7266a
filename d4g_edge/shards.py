"""Shards of one index build and their merge into a bundle.

``build_index(..., shard=(i, n))`` embeds every n-th tile starting at i and writes a shard
folder (``shard.json`` + ``embeddings.npy`` + ``tiles.npz``, each checksummed, no graph), so
many machines embed one country under any scheduler; :func:`merge_shards` checks that shards
``0..n-1`` of one build (same satellite model, same tile source) are all present and intact,
and writes one bundle.

Usage::

    from d4g_edge.shards import merge_shards
    merge_shards(["shards/0", "shards/1"], "bundles/all", ground="ground_int8.onnx")
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from d4g_edge._io import atomic_write_bytes, atomic_write_json, sha256_file
from d4g_edge.bundle import write_bundle
from d4g_edge.config import EncoderConfig
from d4g_edge.errors import BundleError
from d4g_edge.index import IndexParams
from d4g_edge.pairing import check_pairing
from d4g_edge.runtime import open_encoder
from d4g_edge.tiles.base import TileTable

SHARD_SCHEMA = "d4g-edge/shard/1"
SHARD_MANIFEST = "shard.json"


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise BundleError(f"--shard must look like i/n (e.g. 0/8), got {text!r}") from None
    if not 0 <= i < n:
        raise BundleError(f"--shard {text}: need 0 <= i < n")
    return i, n


def open_grounds(ground, threads) -> list | None:
    """One path or several (e.g. ground_int8.onnx + ground_int8.pte) -> opened encoders."""
    if ground is None:
        return None
    paths = list(ground) if isinstance(ground, list | tuple) else [ground]
    return [open_encoder(p, threads=threads) for p in paths] or None


def write_shard(out: Path, vectors, table: TileTable, entry: dict, shard, geo: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buf_path = out / "embeddings.npy"
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vectors, np.float32))
    atomic_write_bytes(buf_path, buf.getvalue())
    table.save(out / "tiles.npz")
    files = {p.name: sha256_file(p) for p in (buf_path, out / "tiles.npz")}
    atomic_write_json(
        out / SHARD_MANIFEST,
        {
            "schema": SHARD_SCHEMA,
            "shard": list(shard),
            "satellite": entry,
            "georeference": geo,
            "tile_count": len(table),
            "files": files,
        },
    )


def merge_shards(
    shards: Sequence[str | Path],
    out: str | Path,
    *,
    ground: str | Path | Sequence[str | Path] | None = None,
    params: IndexParams | None = None,
    threads: int | None = None,
    cells: bool = False,
) -> Path:
    """Join the shards ``0/n .. n-1/n`` of one build into a bundle (all must be present)."""
    metas, vecs, tables = [], [], []
    for d in map(Path, shards):
        mpath = d / SHARD_MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{d} is not a shard (no {SHARD_MANIFEST}); build with --shard i/n")
        meta = json.loads(mpath.read_text())
        if meta.get("schema") != SHARD_SCHEMA:
            raise BundleError(f"{mpath}: unknown shard schema {meta.get('schema')!r}")
        for name, sha in meta["files"].items():
            if sha256_file(d / name) != sha:
                raise BundleError(f"{d}/{name} does not match its checksum; rebuild that shard")
        metas.append(meta)
        vecs.append(np.load(d / "embeddings.npy", allow_pickle=False))
        tables.append(TileTable.load(d / "tiles.npz"))
    first = metas[0]
    n = first["shard"][1]
    for m, d in zip(metas, shards, strict=True):
        for key in ("satellite", "georeference"):
            if m[key] != first[key]:
                raise BundleError(
                    f"shard {d} differs from {shards[0]} in its {key}; shards of one "
                    "build share the model and the tile source"
                )
        if m["shard"][1] != n:
            raise BundleError(f"shard {d} is {m['shard']}, not one of {n}")
    have = sorted(m["shard"][0] for m in metas)
    if have != list(range(n)):
        raise BundleError(f"merge needs shards 0..{n - 1} exactly once; got {have}")
    g = open_grounds(ground, threads)
    for enc in g or []:
        check_pairing(enc.config, EncoderConfig.from_dict(first["satellite"]["config"]), "merge")
    return write_bundle(
        out,
        np.concatenate(vecs),
        TileTable.concat(tables),
        first["satellite"],
        ground=g,
        params=params,
        georeference=first["georeference"],
        cells=cells,
    )
