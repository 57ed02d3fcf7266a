"""A bundle: what a device carries to localize (manifest + ground model + index + tiles).

Layout of a bundle directory (``../shared/DESIGN.md``)::

    manifest.json    schema, created, embed dim, models (file, SHA-256, encoder config),
                     preprocessing, index params, tile count, georeference, file checksums
    ground.onnx      the query encoder (and/or ground.pte + ground.pte.json); optional; named
                     after its view: drone.onnx for a drone student (manifest "views")
    index.bin        the satellite embeddings (ids = tile table rows): an hnswlib graph, or a
                     float16 .npy array searched exactly (manifest index.storage)
    tiles.npz        tile id, centre lat/lon, footprint metres, cell

Loading verifies, in this order, each failure a typed error naming what differs: the schema
(:class:`BundleSchemaError`), every file's SHA-256 (:class:`BundleChecksumError`), and that the
index's satellite model belongs to the ground model (:class:`ModelMismatchError`: same teacher
and teacher SHA-256, same embedding dim and teacher centre). Writes go to a temporary folder
renamed into place, so a bundle is either complete or absent.

Usage::

    from d4g_edge.bundle import Bundle
    b = Bundle.load("bundles/town")        # verified
    b.index.search(z, k=5); b.tiles.lat; b.ground_path
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge._io import atomic_write_json, sha256_file
from d4g_edge._version import __version__
from d4g_edge.cells import CELLS_DIR, CellIndex, cells_near, write_cells
from d4g_edge.config import ConfigError, EncoderConfig
from d4g_edge.errors import BundleChecksumError, BundleError, BundleSchemaError
from d4g_edge.index import EmbeddingIndex, IndexParams
from d4g_edge.pairing import check_pairing
from d4g_edge.tiles.base import TileTable

BUNDLE_SCHEMA = "d4g-edge/bundle/1"
MANIFEST = "manifest.json"
INDEX_FILE = "index.bin"
TILES_FILE = "tiles.npz"
QUERY_SUFFIXES = (".onnx", ".pte")
__all__ = ["Bundle", "check_pairing", "model_entry", "read_manifest", "write_bundle"]
_REQUIRED = ("schema", "created", "embed_dim", "models", "index", "tile_count", "files")


@dataclass
class Bundle:
    root: Path
    manifest: dict[str, Any]
    tiles: TileTable
    index: EmbeddingIndex
    satellite_config: EncoderConfig
    ground_config: EncoderConfig | None
    ground_path: Path | None

    @property
    def embed_dim(self) -> int:
        return int(self.manifest["embed_dim"])

    def ground_file(self, suffix: str) -> Path | None:
        """The bundled ground model with ``suffix`` (".onnx" / ".pte"), if any."""
        models = self.manifest["models"]
        entries = ([models["ground"]] if models.get("ground") else []) + list(
            models.get("ground_extra", [])
        )
        for e in entries:
            if e["file"].endswith(suffix):
                return self.root / e["file"]
        return None

    @property
    def views(self) -> tuple[str, ...]:
        """The query views this bundle localizes: ("ground",), ("drone",), or () (index only)."""
        if "views" in self.manifest:
            return tuple(self.manifest["views"])
        return (self.ground_config.view,) if self.ground_config is not None else ()

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

    @classmethod
    def load(cls, root: str | Path, *, verify: bool = True, region=None) -> Bundle:
        """Load (and verify) a bundle; of a cell-sharded one only the cells with tiles within
        ``region`` = (lat, lon, radius_m) (see :mod:`d4g_edge.cells`)."""
        root = Path(root)
        manifest = read_manifest(root)
        if verify:
            verify_files(root, manifest, skip_prefix=CELLS_DIR + "/")
        models = manifest["models"]
        sat = _config(models.get("satellite"), "satellite", root)
        ground_entry = models.get("ground")
        ground = _config(ground_entry, "ground", root) if ground_entry else None
        if ground is not None:
            check_pairing(ground, sat, str(root))
        for k, extra in enumerate(models.get("ground_extra", [])):
            check_pairing(_config(extra, f"ground_extra[{k}]", root), sat, str(root))
        layout = {k: v for k, v in manifest["index"].items() if k in ("layout", "cells")}
        params = IndexParams.from_dict(
            {k: v for k, v in manifest["index"].items() if k not in layout}
        )
        count, dim = int(manifest["tile_count"]), int(manifest["embed_dim"])
        tiles = TileTable.load(root / TILES_FILE)
        if len(tiles) != count:
            raise BundleError(f"{root}: tiles.npz has {len(tiles)} rows, manifest says {count}")
        if layout.get("layout") == "cells":
            keys = cells_near(tiles, layout["cells"], region)
            if verify:
                wanted = {f"{CELLS_DIR}/{k}.bin" for k in keys}
                verify_files(root, manifest, only=wanted)
            index = CellIndex.load(root, keys, layout["cells"], count, dim, params)
        else:
            index = EmbeddingIndex.load(root / INDEX_FILE, dim, count, params)
        ground_path = root / ground_entry["file"] if ground_entry else None
        return cls(root, manifest, tiles, index, sat, ground, ground_path)


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"bundle {root} is not a directory; build one with d4g-edge build-index")
    if not path.is_file():
        raise BundleError(f"{root} has no {MANIFEST}; is it a bundle (d4g-edge build-index)?")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleSchemaError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != BUNDLE_SCHEMA:
        got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise BundleSchemaError(
            f"{path}: unknown bundle schema {got!r}, this d4g-edge {__version__} reads "
            f"{BUNDLE_SCHEMA!r}; rebuild the bundle or use the matching d4g-edge version"
        )
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise BundleSchemaError(f"{path} lacks the fields {missing} required by {BUNDLE_SCHEMA}")
    return manifest


def verify_files(root: Path, manifest: Mapping[str, Any], skip_prefix=None, only=None) -> None:
    """Check the SHA-256 of every listed file (or of ``only``; none under ``skip_prefix``)."""
    files = manifest["files"]
    cells = manifest["index"].get("layout") == "cells"
    for name in (TILES_FILE,) if cells else (INDEX_FILE, TILES_FILE):
        if name not in files:
            raise BundleSchemaError(f"{root}/{MANIFEST} lists no checksum for {name}")
    for name, expected in sorted(files.items()):
        if (only is not None and name not in only) or (
            skip_prefix and name.startswith(skip_prefix)
        ):
            continue
        path = root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleSchemaError(f"{root}/{MANIFEST}: file name {name!r} leaves the bundle")
        if not path.is_file():
            raise BundleChecksumError(f"{root}: {name} is listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleChecksumError(
                f"{root}: {name} has SHA-256 {actual[:16]}…, the manifest says {expected[:16]}…; "
                "the file was modified or truncated: copy the bundle again or rebuild it"
            )


def _config(entry: Any, role: str, root: Path) -> EncoderConfig:
    if not isinstance(entry, Mapping) or "config" not in entry:
        raise BundleSchemaError(f"{root}/{MANIFEST}: models.{role} lacks its encoder config")
    try:
        return EncoderConfig.from_dict(entry["config"], source=f"{root} models.{role}")
    except ConfigError as err:
        raise BundleSchemaError(str(err)) from None


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
    ground: Any | None = None,
    params: IndexParams | None = None,
    georeference: Mapping[str, Any] | None = None,
    threads: int = -1,
    cells: bool = False,
) -> Path:
    """Build the index of ``vectors`` (rows of ``tiles``) and write a bundle atomically.

    ``satellite`` is a :func:`model_entry` dict; ``ground`` an opened ground encoder
    (:mod:`d4g_edge.runtime`) to copy into the bundle, a list of them (at most one ``.onnx``
    and one ``.pte``; the first is the default), or None for an index-only bundle.
    ``cells=True`` writes one index per geographic cell (:mod:`d4g_edge.cells`).
    """
    out = Path(out)
    params = params or IndexParams()
    sat_cfg = EncoderConfig.from_dict(satellite["config"])
    grounds = (
        [] if ground is None else list(ground) if isinstance(ground, list | tuple) else [ground]
    )
    for enc in grounds:
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
        models = {"satellite": dict(satellite)}
        views = sorted({enc.config.view for enc in grounds})
        if len(views) > 1:
            raise BundleError(
                f"query models of different views {views} in one bundle: a drone student and a "
                "ground student have different teachers, so each needs its own index"
            )
        for k, enc in enumerate(grounds):
            suffix = enc.path.suffix.lower()
            if suffix not in QUERY_SUFFIXES:
                raise BundleError(f"{enc.path}: a query model is .onnx or .pte, got {suffix!r}")
            name = f"{enc.config.view}{suffix}"  # ground.onnx, drone.pte, ...
            if (tmp / name).exists():
                raise BundleError(f"two ground models of one format ({name}); pass one of each")
            shutil.copyfile(enc.path, tmp / name)
            if enc.path.suffix.lower() == ".pte":
                sidecar = enc.path.with_name(enc.path.name + ".json")
                shutil.copyfile(sidecar, tmp / (name + ".json"))
            entry = model_entry(enc.path, enc.config, enc.sha256, name)
            if k == 0:
                models["ground"] = entry
            else:
                models.setdefault("ground_extra", []).append(entry)
        g = grounds[0].config if grounds else None
        manifest = {
            "schema": BUNDLE_SCHEMA,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "d4g_edge_version": __version__,
            "embed_dim": sat_cfg.embed_dim,
            # the query views the bundle serves ("models.ground" holds the query model)
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
