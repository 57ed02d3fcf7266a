"""A bundle: what a device carries to localize (manifest + query model + index + tiles).

Layout of a bundle directory (``docs/design.md``)::

    manifest.json    schema, created, embed dim, models (satellite, query: file, SHA-256,
                     encoder config; older manifests name the query model "ground"),
                     preprocessing, index params, tile count, georeference, file checksums
    ground.onnx      the query encoder (and/or ground.pte + ground.pte.json); optional; named
                     after its view: drone.onnx for a drone student (manifest "views")
    index.bin        the satellite embeddings (ids = tile table rows): an hnswlib graph, or a
                     float16 .npy array searched exactly (manifest index.storage)
    tiles.npz        tile id, centre lat/lon, footprint metres, cell
    cells/<key>.bin  instead of index.bin in a cell-sharded bundle (d4g_edge.cells)

Loading verifies, in this order, each failure a typed error naming what differs: the schema
and every field's type and range (:class:`BundleSchemaError`, :mod:`d4g_edge._manifest`);
that every file named, the query model included, lies inside the bundle and is listed with a
checksum; every file's SHA-256 and the query model's ``models.<role>.sha256``
(:class:`BundleChecksumError`); that the index's satellite model belongs to the query model
(:class:`ModelMismatchError`: same teacher and teacher SHA-256, same embedding dim and
teacher centre); and the contents a checksum cannot vouch for (:class:`BundleContentError`,
:mod:`d4g_edge._bundle_checks`): tile positions, index shape, links and finite vectors.
:meth:`Bundle.open_query_encoder` then opens the query model and checks its embedded config
against the manifest's (``Localizer`` and ``d4g-edge info`` both call it). Writes go to a
temporary folder renamed into place, so a bundle is either complete or absent.

Usage::

    from d4g_edge.bundle import Bundle
    b = Bundle.load("bundles/town")        # verified
    enc = b.open_query_encoder()            # the query model, checked against the manifest
    b.index.search(z, k=5); b.tiles.lat; b.query_path
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge._bundle_checks import (
    check_hnsw_file,
    check_models,
    check_npy_file,
    check_query_file,
    check_vectors,
    query_entries,
    verify_files,
)
from d4g_edge._manifest import (
    BUNDLE_SCHEMA,
    INDEX_FILE,
    INDEX_LAYOUT_KEYS,
    MANIFEST,
    QUERY_KEYS,
    QUERY_SUFFIXES,
    TILES_FILE,
    query_keys,
    read_manifest,
)
from d4g_edge._version import __version__
from d4g_edge.cells import CELLS_DIR, CellIndex, cells_near, write_cells
from d4g_edge.config import EncoderConfig
from d4g_edge.errors import (
    BundleChecksumError,
    BundleContentError,
    BundleError,
    BundleSchemaError,
    EncoderError,
    ModelMismatchError,
)
from d4g_edge.fileio import atomic_write_json, sha256_file
from d4g_edge.index import EmbeddingIndex, IndexParams
from d4g_edge.pairing import check_pairing, config_differences
from d4g_edge.runtime import BACKENDS, Encoder, open_encoder
from d4g_edge.tiletable import TileTable

__all__ = ["Bundle", "check_pairing", "model_entry", "read_manifest", "write_bundle"]


@dataclass
class Bundle:
    root: Path
    manifest: dict[str, Any]
    tiles: TileTable
    index: EmbeddingIndex
    satellite_config: EncoderConfig
    # the query model: what encodes the device's picture (a ground panorama or a drone frame)
    query_config: EncoderConfig | None
    query_path: Path | None
    # every bundled query model: its file (relative to root) -> the config the manifest records
    query_configs: Mapping[str, EncoderConfig] = field(default_factory=dict)

    # their names before drone bundles, when the query model was always a ground model
    ground_path = property(lambda self: self.query_path, doc="Old name of :attr:`query_path`.")
    ground_config = property(lambda self: self.query_config, doc="Old name of query_config.")

    @property
    def embed_dim(self) -> int:
        return int(self.manifest["embed_dim"])

    def query_file(self, suffix: str) -> Path | None:
        """The bundled query model with ``suffix`` (".onnx" / ".pte"), if any."""
        entry = next(
            (e for _, e in query_entries(self.manifest) if e["file"].endswith(suffix)), None
        )
        return self.root / entry["file"] if entry else None

    def open_query_encoder(
        self, backend: str | None = None, threads: int | None = None, path: str | Path | None = None
    ) -> Encoder:
        """Open the query model and check it is the one this bundle was built for.

        Without ``path``: the bundled model for ``backend`` ("onnxruntime": the ``.onnx``,
        "executorch": the ``.pte``; None: the manifest's default ``models.query``), whose
        embedded config must equal the manifest's entry field for field. With ``path``: a
        model of the user's, whose config must equal the bundle's query model up to the
        quantization. Either way it must pair with the index's satellite model. A difference
        is a :class:`ModelMismatchError` naming the fields; what ``localize`` and
        ``d4g-edge info`` both verify.
        """
        if path is None:
            if self.query_path is None:
                raise BundleError(
                    f"{self.root} is index-only (built without --query); pass "
                    "query=PATH to the query model"
                )
            suffix = _BACKEND_SUFFIX.get(backend) if backend is not None else None
            if backend is not None and suffix is None:
                raise EncoderError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
            path = self.query_path if suffix is None else self.query_file(suffix)
            if path is None:
                raise BundleError(
                    f"{self.root} holds no query model for backend {backend!r} "
                    f"({'a .pte' if backend == 'executorch' else 'a .onnx'}); rebuild "
                    "with --query for that format, or pass query=PATH"
                )
            rel = next(n for n in self.query_configs if self.root / n == path)
            expected, ignore, what = self.query_configs[rel], (), f"models entry of {rel}"
        else:
            expected, ignore, what = self.query_config, ("quantization",), "query model"
        enc = open_encoder(path, backend=backend, threads=threads)
        diffs = config_differences(enc.config, expected, ignore) if expected is not None else []
        if diffs:
            raise ModelMismatchError(
                f"{path}'s embedded config differs from the bundle's {what} "
                f"({self.root}/{MANIFEST}) in {'; '.join(diffs)}: the model file was replaced "
                "or the manifest edited; copy the bundle again or rebuild it"
            )
        check_pairing(enc.config, self.satellite_config, str(self.root))
        return enc

    @property
    def views(self) -> tuple[str, ...]:
        """The query views this bundle localizes: ("ground",), ("drone",), or () (index only)."""
        if "views" in self.manifest:
            return tuple(self.manifest["views"])
        return (self.query_config.view,) if self.query_config is not None else ()

    @property
    def stride_m(self) -> float | None:
        return (self.manifest.get("georeference") or {}).get("stride_m")

    @property
    def centres_per_tile(self) -> int:
        """Index rows per tile: > 1 for an off-centre encoder (one row per polar centre)."""
        centres = (self.manifest.get("georeference") or {}).get("centres") or {}
        return int(centres.get("per_tile", 1))

    @property
    def position_step_m(self) -> float | None:
        """Distance between neighbouring index positions: the centres' spacing, else the
        tile stride."""
        centres = (self.manifest.get("georeference") or {}).get("centres") or {}
        return centres.get("spacing_m") or self.stride_m

    @property
    def grid_step_m(self) -> float:
        """:attr:`position_step_m`, else half the median tile footprint (the half-overlap
        grid); 0.0 when neither is known. The resolution of an answer from this bundle."""
        step = self.position_step_m or float(np.nanmedian(self.tiles.footprint_m)) / 2
        return float(step) if np.isfinite(step) else 0.0

    @classmethod
    def load(cls, root: str | Path, *, verify: bool = True, region=None) -> Bundle:
        """Load (and verify) a bundle; of a cell-sharded one only the cells with tiles within
        ``region`` = (lat, lon, radius_m) (see :mod:`d4g_edge.cells`)."""
        root = Path(root)
        manifest = read_manifest(root)
        where = f"{root}/{MANIFEST}"
        queries = query_entries(manifest)
        for role, entry in queries:
            check_query_file(root, manifest, role, entry)
        if verify:
            verify_files(root, manifest, skip_prefix=CELLS_DIR + "/")
            for role, entry in queries:
                if entry["sha256"] != manifest["files"][entry["file"]]:
                    raise BundleChecksumError(
                        f"{where}: models.{role}.sha256 {entry['sha256'][:16]}… is not the "
                        f"SHA-256 of {entry['file']} ({manifest['files'][entry['file']][:16]}…); "
                        "the manifest was edited: copy the bundle again or rebuild it"
                    )
        sat, configs = check_models(root, manifest, queries)
        query_entry = manifest["models"].get(query_keys(manifest["models"])[0])
        query = configs[query_entry["file"]] if query_entry else None
        index_meta = manifest["index"]
        layout = {k: v for k, v in index_meta.items() if k in INDEX_LAYOUT_KEYS}
        try:
            params = IndexParams.from_dict({k: v for k, v in index_meta.items() if k not in layout})
        except (TypeError, ValueError) as err:
            raise BundleSchemaError(f"{where}: index parameters {index_meta}: {err}") from None
        count, dim = manifest["tile_count"], manifest["embed_dim"]
        tiles = TileTable.load(root / TILES_FILE)
        if len(tiles) != count:
            raise BundleContentError(
                f"{root}: tiles.npz has {len(tiles)} rows, manifest says {count}"
            )
        if layout.get("layout") == "cells":
            index = _load_cells(root, manifest, tiles, params, region, verify)
        else:
            index = _load_index(root / INDEX_FILE, dim, count, params)
        query_path = root / query_entry["file"] if query_entry else None
        return cls(root, manifest, tiles, index, sat, query, query_path, configs)


_BACKEND_SUFFIX = {"onnxruntime": ".onnx", "executorch": ".pte"}


def _load_index(path: Path, dim: int, count: int, params: IndexParams) -> EmbeddingIndex:
    """One index file, its header and vectors checked before and after hnswlib / numpy read it."""
    if params.storage == "hnswlib":
        check_hnsw_file(path, dim, count)  # also checks every vector (read from the file)
    elif params.storage == "float16":
        check_npy_file(path, dim, count)
    index = EmbeddingIndex.load(path, dim, count, params)
    if params.storage == "float16":
        check_vectors(index.vectors, path)
    return index


def _load_cells(root: Path, manifest, tiles: TileTable, params, region, verify) -> CellIndex:
    cells = manifest["index"]["cells"]
    for key, (start, stop) in cells.items():
        if (tiles.cell[start:stop] != int(key)).any():
            raise BundleContentError(
                f"{root}/{TILES_FILE}: rows {start}..{stop} are not all in cell {key}, as "
                "the manifest's index.cells says; rebuild the bundle"
            )
    keys = cells_near(tiles, cells, region)
    if verify:
        verify_files(root, manifest, only={f"{CELLS_DIR}/{k}.bin" for k in keys})
    dim = manifest["embed_dim"]
    parts = []
    for key in keys:
        start, stop = cells[key]
        parts.append(
            (_load_index(root / CELLS_DIR / f"{key}.bin", dim, stop - start, params), start)
        )
    return CellIndex(parts, manifest["tile_count"], params, tuple(keys))


def model_entry(path: Path, config: EncoderConfig, sha256: str, file: str | None = None) -> dict:
    return {
        "file": file or path.name,
        "source": str(path),
        "sha256": sha256,
        "model_id": config.model_id,
        "config": config.to_dict(),
    }


def write_bundle(
    out: str | Path,
    vectors: np.ndarray,
    tiles: TileTable,
    satellite: dict[str, Any],
    *,
    query: Any | None = None,
    params: IndexParams | None = None,
    georeference: Mapping[str, Any] | None = None,
    threads: int = -1,
    cells: bool = False,
    ground: Any | None = None,
) -> Path:
    """Build the index of ``vectors`` (rows of ``tiles``) and write a bundle atomically.

    ``satellite`` is a :func:`model_entry` dict; ``query`` an opened query encoder
    (:mod:`d4g_edge.runtime`) to copy into the bundle, a list of them (at most one ``.onnx``
    and one ``.pte``; the first is the default, ``models.query``), or None for an index-only
    bundle (``ground`` is its old name). ``cells=True`` writes one index per geographic cell
    (:mod:`d4g_edge.cells`).
    """
    out = Path(out)
    params = params or IndexParams()
    sat_cfg = EncoderConfig.from_dict(satellite["config"])
    if ground is not None:
        if query is not None:
            raise BundleError("give the query model as query=, not also as ground= (its old name)")
        query = ground
    queries = [] if query is None else list(query) if isinstance(query, list | tuple) else [query]
    for enc in queries:
        check_pairing(enc.config, sat_cfg, "build")
    if len(vectors) != len(tiles) or vectors.shape[1] != sat_cfg.embed_dim:
        raise BundleError(
            f"{len(vectors)} x {vectors.shape[1]} embeddings for {len(tiles)} tiles "
            f"of a {sat_cfg.embed_dim}-d model"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        index_meta = params.to_dict()
        if cells:
            tiles, ranges = write_cells(tmp, vectors, tiles, params, threads)
            index_meta.update(layout="cells", cells=ranges)
        else:
            EmbeddingIndex.build(vectors, params, threads).save(tmp / INDEX_FILE)
        tiles.save(tmp / TILES_FILE)
        models = {"satellite": dict(satellite), **_copy_query_models(tmp, queries)}
        views = sorted({enc.config.view for enc in queries})
        g = queries[0].config if queries else None
        manifest = {
            "schema": BUNDLE_SCHEMA,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "d4g_edge_version": __version__,
            "embed_dim": sat_cfg.embed_dim,
            # the query views the bundle serves ("models.query" holds the query model)
            "views": views,
            "models": models,
            "preprocessing": _preprocessing(g) if g is not None else None,
            "index": index_meta,
            "tile_count": len(tiles),
            "georeference": {"crs": "EPSG:4326", **dict(georeference or {})},
            "files": {
                p.relative_to(tmp).as_posix(): sha256_file(p)
                for p in sorted(tmp.rglob("*"))
                if p.is_file()
            },
        }
        atomic_write_json(tmp / MANIFEST, manifest)
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _copy_query_models(tmp: Path, queries: list) -> dict[str, Any]:
    """Copy the query models into the bundle folder ``tmp``, named after their view (ground.onnx,
    drone.pte + its config sidecar); their ``models`` entries: the first is ``query``."""
    views = sorted({enc.config.view for enc in queries})
    if len(views) > 1:
        raise BundleError(
            f"query models of different views {views} in one bundle: a drone student and a "
            "ground student have different teachers, so each needs its own index"
        )
    entries = []
    for enc in queries:
        suffix = enc.path.suffix.lower()
        if suffix not in QUERY_SUFFIXES:
            raise BundleError(f"{enc.path}: a query model is .onnx or .pte, got {suffix!r}")
        name = f"{enc.config.view}{suffix}"
        if (tmp / name).exists():
            raise BundleError(f"two query models of one format ({name}); pass one of each")
        shutil.copyfile(enc.path, tmp / name)
        if suffix == ".pte":
            shutil.copyfile(enc.path.with_name(enc.path.name + ".json"), tmp / (name + ".json"))
        entries.append(model_entry(enc.path, enc.config, enc.sha256, name))
    first, extra = QUERY_KEYS
    return ({first: entries[0]} if entries else {}) | ({extra: entries[1:]} if entries[1:] else {})


def _preprocessing(cfg: EncoderConfig) -> dict[str, Any]:
    spec = cfg.input()
    return {
        "view": cfg.view,
        "size": list(spec.size),
        "polar": spec.polar and list(spec.polar),
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "layout": cfg.layout,
    }


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder to ``out``; an existing bundle there is replaced."""
    if out.exists():
        if not (out / MANIFEST).is_file() and any(out.iterdir()):
            raise BundleError(f"{out} exists and is not a bundle; choose another --out")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
