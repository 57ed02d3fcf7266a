"""What :meth:`d4g_edge.bundle.Bundle.load` checks beyond the manifest's types: the files it
names (inside the bundle, checksums), the models it records, and the index file's contents.

Contents that a checksum cannot vouch for (a manifest whose checksums were re-computed after
an edit, a bundle written by a buggy tool) are checked too: an hnswlib file's header must
describe the manifest's rows and dimension and its level-0 links must point at rows that
exist, a float16 array must have the manifest's shape, and no index vector may be NaN or
infinite (:class:`BundleContentError`).

Usage::

    from d4g_edge._bundle_checks import verify_files, check_hnsw_file
    verify_files(root, manifest)              # BundleChecksumError names the file
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge._manifest import INDEX_FILE, MANIFEST, QUERY_SUFFIXES, TILES_FILE, query_keys
from d4g_edge.config import ConfigError, EncoderConfig
from d4g_edge.errors import (
    BundleChecksumError,
    BundleContentError,
    BundleSchemaError,
)
from d4g_edge.fileio import sha256_file
from d4g_edge.pairing import check_pairing


def query_entries(manifest: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """(role, entry) of every bundled query model, the default (``models.query``; ``ground`` in
    an old manifest) first; the role is the manifest key, so messages name what the file says."""
    models = manifest["models"]
    key, extra_key = query_keys(models)
    first = [(key, models[key])] if models.get(key) else []
    extra = [(f"{extra_key}[{k}]", e) for k, e in enumerate(models.get(extra_key, []))]
    return first + extra


def check_query_file(root: Path, manifest: Mapping[str, Any], role: str, entry: Mapping) -> Path:
    """A bundled query model is verified like every file: listed with a checksum (its .pte
    config sidecar too), and inside the bundle."""
    name = entry["file"]
    path = bundle_path(root, name, f"models.{role}.file")
    if Path(name).suffix.lower() not in QUERY_SUFFIXES:
        raise BundleSchemaError(
            f"{root}/{MANIFEST}: models.{role}.file {name!r} is not a .onnx or .pte model"
        )
    names = [name] + ([name + ".json"] if name.lower().endswith(".pte") else [])
    for n in names:
        if n not in manifest["files"]:
            raise BundleSchemaError(
                f"{root}/{MANIFEST}: models.{role}.file {n!r} is not listed under files with a "
                "checksum, so it cannot be verified; rebuild the bundle with d4g-edge build-index"
            )
    return path


def check_models(root: Path, manifest, queries) -> tuple[EncoderConfig, dict[str, EncoderConfig]]:
    """The satellite config and the query models' configs, each consistent with its entry and
    the manifest, and each query model paired with the satellite model."""
    where = f"{root}/{MANIFEST}"
    sat = config_of(manifest["models"]["satellite"], "satellite", root)
    configs: dict[str, EncoderConfig] = {}
    for role, entry in [("satellite", manifest["models"]["satellite"]), *queries]:
        cfg = sat if role == "satellite" else config_of(entry, role, root)
        if entry.get("model_id", cfg.model_id) != cfg.model_id:
            raise BundleSchemaError(
                f"{where}: models.{role}.model_id {entry['model_id']!r} vs its config's "
                f"model_id {cfg.model_id!r}; the manifest was edited: rebuild the bundle"
            )
        if role != "satellite":
            check_pairing(cfg, sat, str(root))
            configs[entry["file"]] = cfg
    if manifest["embed_dim"] != sat.embed_dim:
        raise BundleSchemaError(
            f"{where}: embed_dim {manifest['embed_dim']} vs models.satellite.config.embed_dim "
            f"{sat.embed_dim}; the manifest was edited: rebuild the bundle"
        )
    served = sorted({c.view for c in configs.values()})
    if "views" in manifest and sorted(set(manifest["views"])) != served:
        raise BundleSchemaError(
            f"{where}: views {manifest['views']} vs the query models' views {served}; the "
            "manifest was edited: rebuild the bundle"
        )
    return sat, configs


def bundle_path(root: Path, name: str, field: str) -> Path:
    """``root / name`` for a name from the manifest, refused if it leaves the bundle (an
    absolute path, ``..``, or a symlink that resolves outside ``root``)."""
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise BundleSchemaError(
            f"{root}/{MANIFEST}: {field} {name!r} leaves the bundle; the manifest names files "
            "by relative paths inside the bundle folder"
        )
    path = root / rel
    try:
        resolved, inside = path.resolve(), root.resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise BundleSchemaError(f"{root}: cannot resolve {field} {name!r}: {err}") from None
    if not resolved.is_relative_to(inside):
        raise BundleSchemaError(
            f"{root}/{MANIFEST}: {field} {name!r} is a symlink to {resolved}, outside the "
            "bundle; copy the file into the bundle folder"
        )
    return path


def verify_files(root: Path, manifest: Mapping[str, Any], skip_prefix=None, only=None) -> None:
    """Check the SHA-256 of every listed file (or of ``only``; none under ``skip_prefix``)."""
    files = manifest["files"]
    cells = manifest["index"].get("layout") == "cells"
    for name in [TILES_FILE] + ([] if cells else [INDEX_FILE]) + sorted(only or ()):
        if name not in files:
            raise BundleSchemaError(f"{root}/{MANIFEST} lists no checksum for {name}")
    paths = {name: bundle_path(root, name, "file name") for name in files}
    for name, expected in sorted(files.items()):
        if (only is not None and name not in only) or (
            skip_prefix and name.startswith(skip_prefix)
        ):
            continue
        path = paths[name]
        if not path.is_file():
            raise BundleChecksumError(f"{root}: {name} is listed in the manifest but missing")
        try:
            actual = sha256_file(path)
        except OSError as err:
            raise BundleChecksumError(f"{root}: cannot read {name}: {err}") from None
        if actual != expected:
            raise BundleChecksumError(
                f"{root}: {name} has SHA-256 {actual[:16]}…, the manifest says {expected[:16]}…; "
                "the file was modified or truncated: copy the bundle again or rebuild it"
            )


def config_of(entry: Any, role: str, root: Path) -> EncoderConfig:
    if not isinstance(entry, Mapping) or "config" not in entry:
        raise BundleSchemaError(f"{root}/{MANIFEST}: models.{role} lacks its encoder config")
    try:
        return EncoderConfig.from_dict(entry["config"], source=f"{root} models.{role}.config")
    except ConfigError as err:
        raise BundleSchemaError(str(err)) from None


# ---- the index file --------------------------------------------------------------------

# hnswlib's saveIndex header (hnswalg.h, 0.8.0): offsetLevel0, max_elements,
# cur_element_count, size_data_per_element, label_offset, offsetData (size_t), maxlevel (int),
# enterpoint_node (uint), maxM, maxM0, M (size_t), mult (double), ef_construction (size_t)
_HNSW_HEADER = struct.Struct("<QQQQQQiIQQQdQ")


def check_hnsw_file(path: Path, dim: int, count: int) -> None:
    """Check that an hnswlib file holds ``count`` rows of ``dim`` floats, with every level-0
    link pointing at a row, before hnswlib reads it (its loader trusts the header: a
    damaged one can make it allocate or read far past the data)."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise BundleContentError(f"cannot read the index {path}: {err}") from None
    if size < _HNSW_HEADER.size:
        raise BundleContentError(f"{path} has {size} bytes, too few for an hnswlib index")
    with open(path, "rb") as f:
        head = _HNSW_HEADER.unpack(f.read(_HNSW_HEADER.size))
    off0, max_el, cur, per, label_off, data_off, maxlevel, entry, _, max_m0 = head[:10]
    links0 = 4 + 4 * max_m0
    problems = [
        (off0 == 0, "level-0 offset 0"),
        (cur == count, f"{count} rows (the manifest's tile_count)"),
        (max_el >= cur, "capacity >= rows"),
        (label_off - data_off == 4 * dim, f"{dim}-d float32 vectors (the manifest's embed_dim)"),
        (data_off == links0 and per == label_off + 8, "hnswlib's level-0 record layout"),
        (0 <= maxlevel < 64 and (cur == 0 or entry < cur), "an entry point among the rows"),
        (size >= _HNSW_HEADER.size + cur * per, f"{cur} level-0 records of {per} bytes"),
    ]
    for ok, expected in problems:
        if not ok:
            raise BundleContentError(
                f"{path}: the hnswlib header does not describe {expected} (rows {cur}, "
                f"vector bytes {label_off - data_off}); the index does not belong to this "
                "manifest: rebuild the bundle"
            )
    level0 = np.memmap(path, np.uint8, "r", _HNSW_HEADER.size, (cur, per))
    step = max(1, (64 << 20) // max(per, 1))  # ~64 MB at a time
    for start in range(0, cur, step):
        block = np.asarray(level0[start : start + step])
        links = block[:, :links0].copy().view("<u4")
        degree = links[:, 0] & 0xFFFF
        if (degree > max_m0).any() or (
            (links[:, 1:] >= cur) & (np.arange(max_m0) < degree[:, None])
        ).any():
            raise BundleContentError(
                f"{path}: level-0 links point past the {cur} rows; the index file is corrupt: "
                "rebuild the bundle"
            )
        vectors = block[:, data_off:label_off].copy().view("<f4")
        _finite(vectors, path, start)


def check_npy_file(path: Path, dim: int, count: int) -> None:
    """Check a float16 ``.npy`` index's header before numpy reads (and allocates) the array."""
    try:
        with open(path, "rb") as f:
            fmt = np.lib.format
            read = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else None
            shape, fortran, dtype = (read or fmt.read_array_header_2_0)(f)
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise BundleContentError(f"{path} is not a float16 .npy index: {err}") from None
    if dtype != np.float16 or tuple(shape) != (count, dim) or fortran:
        raise BundleContentError(
            f"{path} holds a {dtype} {tuple(shape)} array, the manifest says float16 "
            f"({count}, {dim}); the index does not belong to this manifest: rebuild the bundle"
        )


def check_vectors(vectors: np.ndarray, path: Path | str) -> None:
    """Every index vector finite (a NaN row scores NaN against every query)."""
    _finite(np.asarray(vectors), path, 0)


def _finite(vectors: np.ndarray, path, first_row: int) -> None:
    ok = np.isfinite(vectors).all(axis=1)
    if not ok.all():
        rows = np.flatnonzero(~ok) + first_row
        raise BundleContentError(
            f"{path}: {rows.size} index vector(s) hold NaN or infinity (row {rows[0]} first); "
            "the index is corrupt: rebuild the bundle"
        )
