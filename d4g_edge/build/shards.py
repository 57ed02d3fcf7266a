"""Shards of one index build and their merge into a bundle.

``build_index(..., shard=(i, n))`` embeds every n-th tile starting at i and writes a shard
folder (``shard.json`` + ``embeddings.npy`` + ``tiles.npz``, each checksummed, no graph), so
many machines embed one country under any scheduler; :func:`merge_shards` checks that shards
``0..n-1`` of one build (same satellite model, same tile source) are all present and intact,
and writes one bundle. :func:`check_out` refuses an ``--out`` that would fail only after the
work (a file, or a non-empty folder that is neither a bundle nor a shard) up front.

Usage::

    from d4g_edge.build.shards import merge_shards
    merge_shards(["shards/0", "shards/1"], "bundles/all", ground="ground_int8.onnx")
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from d4g_edge.bundle import MANIFEST, write_bundle
from d4g_edge.config import ConfigError, EncoderConfig
from d4g_edge.errors import BundleError
from d4g_edge.fileio import atomic_write, atomic_write_json, sha256_file
from d4g_edge.index import IndexParams
from d4g_edge.pairing import check_pairing
from d4g_edge.runtime import open_encoder
from d4g_edge.tiletable import TileTable

SHARD_SCHEMA = "d4g-edge/shard/1"
SHARD_MANIFEST = "shard.json"


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise BundleError(f"--shard must look like i/n (e.g. 0/8), got {text!r}") from None
    if not 0 <= i < n:
        raise BundleError(f"--shard {text}: need 0 <= i < n (shard i of n, counted from 0)")
    return i, n


def check_out(out: str | Path, kind: str = "bundle") -> Path:
    """``out`` as a Path a bundle (``kind="bundle"``) or a shard can be written to, else a
    :class:`BundleError` before any work: not a file, not under a file, and empty, absent or
    already a ``kind`` (which a build replaces)."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        out = out.resolve()
    if not out.name:
        raise BundleError(f"--out {out} is the file system root; name a folder for the {kind}")
    marker = MANIFEST if kind == "bundle" else SHARD_MANIFEST
    if out.exists() and not out.is_dir():
        raise BundleError(
            f"--out {out} is a file; a {kind} is a folder: choose a new folder path (e.g. "
            f"{out.with_suffix('')}_{kind})"
        )
    if out.is_dir():
        try:
            entries = [p.name for p in out.iterdir()]
        except OSError as err:
            raise BundleError(f"--out {out} cannot be listed: {err}") from None
        if entries and marker not in entries:
            raise BundleError(
                f"--out {out} is a non-empty folder that is not a {kind} (no {marker}; it holds "
                f"{', '.join(sorted(entries)[:3])}{', ...' if len(entries) > 3 else ''}); "
                f"choose a new or empty folder (an existing {kind} there is replaced)"
            )
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BundleError(f"--out {out}: {parent} is a file, not a folder")
            break
    parts = out.with_name(out.name + ".parts")
    if parts.exists() and not parts.is_dir():
        raise BundleError(f"{parts} (the build's work folder) is a file; move it away")
    return out


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
    atomic_write(buf_path, buf.getvalue())
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
    out = check_out(out, "bundle")
    if not shards:
        raise BundleError("merge needs the shard folders of one build-index --shard run")
    metas, vecs, tables = [], [], []
    for d in map(Path, shards):
        meta = _read_shard_manifest(d)
        for name, sha in meta["files"].items():
            if Path(name).name != name or not (d / name).is_file():
                raise BundleError(f"{d}: shard file {name!r} is missing; rebuild that shard")
            if sha256_file(d / name) != sha:
                raise BundleError(f"{d}/{name} does not match its checksum; rebuild that shard")
        metas.append(meta)
        try:
            vecs.append(np.load(d / "embeddings.npy", allow_pickle=False))
        except (OSError, ValueError) as err:
            raise BundleError(f"{d}/embeddings.npy cannot be read ({err}); rebuild it") from None
        # a shard whose tiles were all nodata is empty (a table that TileTable.load refuses)
        empty = meta.get("tile_count") == 0 and len(vecs[-1]) == 0
        tables.append(
            TileTable.from_rows([], [], [], []) if empty else TileTable.load(d / "tiles.npz")
        )
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
    if not sum(len(t) for t in tables):
        raise BundleError(
            f"every shard of {shards[0]}'s build is empty (all nodata): nothing to merge"
        )
    g = open_grounds(ground, threads)
    try:
        sat_cfg = EncoderConfig.from_dict(first["satellite"]["config"])
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise BundleError(
            f"{shards[0]}: the shard's satellite model entry is invalid: {err}"
        ) from None
    for enc in g or []:
        check_pairing(enc.config, sat_cfg, "merge")
    return write_bundle(
        out,
        np.concatenate(vecs),
        TileTable.concat(tables),
        first["satellite"],
        query=g,
        params=params,
        georeference=first["georeference"],
        cells=cells,
    )


def _read_shard_manifest(d: Path) -> dict:
    mpath = d / SHARD_MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{d} is not a shard (no {SHARD_MANIFEST}); build with --shard i/n")
    try:
        meta = json.loads(mpath.read_text())
    except (OSError, ValueError) as err:
        raise BundleError(f"{mpath} is not readable JSON ({err}); rebuild that shard") from None
    if not isinstance(meta, dict) or meta.get("schema") != SHARD_SCHEMA:
        got = meta.get("schema") if isinstance(meta, dict) else type(meta).__name__
        raise BundleError(f"{mpath}: unknown shard schema {got!r}, expected {SHARD_SCHEMA!r}")
    shard, files = meta.get("shard"), meta.get("files")
    if not (
        isinstance(shard, list)
        and len(shard) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
        and 0 <= shard[0] < shard[1]
    ):
        raise BundleError(f"{mpath}: 'shard' must be [i, n] with 0 <= i < n, got {shard!r}")
    if not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())):
        raise BundleError(f"{mpath}: 'files' must map file names to SHA-256, got {files!r}")
    for key in ("satellite", "georeference"):
        if not isinstance(meta.get(key), dict):
            raise BundleError(f"{mpath}: '{key}' is missing or not an object; rebuild that shard")
    return meta
