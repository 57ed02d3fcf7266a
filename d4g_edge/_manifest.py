"""The bundle manifest (``manifest.json``): its names, reading it, and its fields' types.

The manifest is a device's trust anchor, so a field of the wrong type or out of range is a
:class:`BundleSchemaError` naming the field, what was expected and what came, never a
``TypeError`` deep in the loader. Unknown top-level keys are kept (a newer writer may add
some); unknown ``index`` keys are refused, because they would change how the index is read.

Usage::

    from d4g_edge._manifest import read_manifest
    manifest = read_manifest(Path("bundles/town"))      # BundleSchemaError names the field
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from d4g_edge._version import __version__
from d4g_edge.errors import BundleError, BundleSchemaError
from d4g_edge.index import IndexParams

BUNDLE_SCHEMA = "d4g-edge/bundle/1"
MANIFEST = "manifest.json"
INDEX_FILE = "index.bin"
TILES_FILE = "tiles.npz"
QUERY_SUFFIXES = (".onnx", ".pte")
QUERY_VIEWS = ("ground", "drone")
INDEX_LAYOUT_KEYS = ("layout", "cells")
# models.query holds the query model (what encodes the device's picture: a ground panorama or a
# drone frame), models.query_extra the same model in other formats. Manifests written before
# that name settled call them models.ground / models.ground_extra: read as aliases, so those
# bundles (the shipped default among them) open unchanged.
QUERY_KEYS = ("query", "query_extra")
OLD_QUERY_KEYS = ("ground", "ground_extra")
_REQUIRED = ("schema", "created", "embed_dim", "models", "index", "tile_count", "files")
_GRAPH_PARAMS = ("M", "ef_construction", "ef")  # hnswlib's, each >= 2
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CELL_KEY = re.compile(r"^[0-9]{1,20}$")
_FIX = "rebuild the bundle with d4g-edge build-index, or copy its manifest.json again"


def query_keys(models: Mapping[str, Any]) -> tuple[str, str]:
    """The keys ``models`` names its query models under: ``("query", "query_extra")``, or
    ``("ground", "ground_extra")`` in a manifest written before the rename."""
    if not any(k in models for k in QUERY_KEYS) and any(k in models for k in OLD_QUERY_KEYS):
        return OLD_QUERY_KEYS
    return QUERY_KEYS


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the bundle at ``root``, its schema, fields and their types checked."""
    path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"bundle {root} is not a directory; build one with d4g-edge build-index")
    if not path.is_file():
        raise BundleError(f"{root} has no {MANIFEST}; is it a bundle (d4g-edge build-index)?")
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleSchemaError(f"{path} is not valid JSON: {err}") from None
    except (OSError, RecursionError) as err:
        raise BundleError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != BUNDLE_SCHEMA:
        got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise BundleSchemaError(
            f"{path}: unknown bundle schema {got!r}, this d4g-edge {__version__} reads "
            f"{BUNDLE_SCHEMA!r}; rebuild the bundle or use the matching d4g-edge version"
        )
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise BundleSchemaError(f"{path} lacks the fields {missing} required by {BUNDLE_SCHEMA}")
    check_manifest(manifest, str(path))
    return manifest


def _got(value: Any) -> str:
    text = json_repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def json_repr(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f"'{value}'"


class _Checker:
    """Raises one typed error per bad field: ``<where>: <field> must be <expected>, got ...``."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, expected: str, value: Any) -> None:
        raise BundleSchemaError(
            f"{self.where}: {field} must be {expected}, got {_got(value)}; {_FIX}"
        )

    def mapping(self, value: Any, field: str, *, optional: bool = False) -> Mapping | None:
        if optional and value is None:
            return None
        if not isinstance(value, Mapping):
            self.fail(field, "an object" + (" or null" if optional else ""), value)
        return value

    def string(self, value: Any, field: str, *, optional: bool = False) -> None:
        if not (isinstance(value, str) and value) and not (optional and value is None):
            self.fail(field, "a non-empty string" + (" or null" if optional else ""), value)

    def integer(self, value: Any, field: str, minimum: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(field, f"an integer >= {minimum}", value)

    def positive(self, value: Any, field: str, *, optional: bool = True) -> None:
        if optional and value is None:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            self.fail(field, "a finite number > 0" + (" or null" if optional else ""), value)

    def sha256(self, value: Any, field: str) -> None:
        if not isinstance(value, str) or not _SHA256.match(value):
            self.fail(field, "a SHA-256 (64 lowercase hex digits)", value)


def check_manifest(manifest: Mapping[str, Any], where: str) -> None:
    """Raise :class:`BundleSchemaError` for the first field of the wrong type or range."""
    c = _Checker(where)
    c.string(manifest["created"], "created")
    if "d4g_edge_version" in manifest:
        c.string(manifest["d4g_edge_version"], "d4g_edge_version")
    c.integer(manifest["embed_dim"], "embed_dim", 1)
    c.integer(manifest["tile_count"], "tile_count", 1)
    files = c.mapping(manifest["files"], "files")
    if not files:
        c.fail("files", "a non-empty object {name: sha256}", files)
    for name, sha in files.items():
        c.string(name, "a files key")
        c.sha256(sha, f"files[{name!r}]")
    _check_models(c, manifest["models"])
    if "views" in manifest:
        views = manifest["views"]
        if not isinstance(views, list) or not all(v in QUERY_VIEWS for v in views):
            c.fail("views", f"a list of {list(QUERY_VIEWS)}", views)
    c.mapping(manifest.get("preprocessing"), "preprocessing", optional=True)
    _check_index(c, manifest["index"], manifest["tile_count"])
    _check_georeference(c, manifest.get("georeference"), manifest["tile_count"])


def _check_models(c: _Checker, models: Any) -> None:
    c.mapping(models, "models")
    if "satellite" not in models:
        c.fail("models", "an object with a 'satellite' entry (the index's model)", models)
    both = [k for k in (*QUERY_KEYS, *OLD_QUERY_KEYS) if k in models]
    if any(k in OLD_QUERY_KEYS for k in both) and any(k in QUERY_KEYS for k in both):
        c.fail("models", "query models under models.query (or, in an old manifest, models.ground)"
               ", not both", both)  # fmt: skip
    key, extra_key = query_keys(models)
    entries = [("satellite", models["satellite"])]
    if models.get(key) is not None:
        entries.append((key, models[key]))
    extra = models.get(extra_key, [])
    if not isinstance(extra, list):
        c.fail(f"models.{extra_key}", "a list of model entries", extra)
    if extra and models.get(key) is None:
        c.fail(f"models.{key}", f"set when models.{extra_key} is (the default query model)", None)
    entries += [(f"{extra_key}[{k}]", e) for k, e in enumerate(extra)]
    for role, entry in entries:
        c.mapping(entry, f"models.{role}")
        if "config" not in entry:
            raise BundleSchemaError(
                f"{c.where}: models.{role} lacks its encoder config (models.{role}.config); {_FIX}"
            )
        if role != "satellite" or "file" in entry:  # the satellite model is not bundled
            c.string(entry.get("file"), f"models.{role}.file")
        if role != "satellite" or "sha256" in entry:
            c.sha256(entry.get("sha256"), f"models.{role}.sha256")
        for key in ("model_id", "source"):
            if key in entry:
                c.string(entry[key], f"models.{role}.{key}", optional=key == "source")


def _check_index(c: _Checker, index: Any, tile_count: int) -> None:
    c.mapping(index, "index")
    params = {f.name: f for f in dataclasses.fields(IndexParams)}
    unknown = sorted(set(index) - set(params) - set(INDEX_LAYOUT_KEYS))
    if unknown:
        c.fail(
            f"index (unknown keys {unknown})",
            f"an object of the keys {sorted(params) + list(INDEX_LAYOUT_KEYS)}",
            index,
        )
    for name, value in index.items():
        if name in INDEX_LAYOUT_KEYS:
            continue
        default = params[name].default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                c.fail(f"index.{name}", "true or false", value)
        elif isinstance(default, str):
            c.string(value, f"index.{name}")
        elif isinstance(default, float):
            c.positive(value, f"index.{name}", optional=False)
        else:  # the ranges are IndexParams' own checks (Bundle.load types their errors)
            c.integer(value, f"index.{name}", 2 if name in _GRAPH_PARAMS else 0)
    layout = index.get("layout")
    if layout is None and "cells" not in index:
        return
    if layout != "cells":
        c.fail("index.layout", "'cells' (or absent: one index.bin)", layout)
    cells = c.mapping(index.get("cells"), "index.cells")
    if not cells:
        c.fail("index.cells", "a non-empty object {cell key: [start, stop]}", cells)
    spans = []
    for key, span in cells.items():
        if not _CELL_KEY.match(str(key)):
            c.fail("an index.cells key", "a decimal cell number", key)
        ok = isinstance(span, list) and len(span) == 2
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in span)
        if not ok or not 0 <= span[0] < span[1] <= tile_count:
            expected = f"[start, stop] rows with 0 <= start < stop <= {tile_count}"
            c.fail(f"index.cells[{key!r}]", expected, span)
        spans.append(tuple(span))
    spans.sort()
    covered = [0] + [s for _, s in spans]
    if [a for a, _ in spans] != covered[:-1] or covered[-1] != tile_count:
        c.fail("index.cells", f"row ranges that tile 0..{tile_count} without gaps", cells)


def _check_georeference(c: _Checker, geo: Any, tile_count: int) -> None:
    if c.mapping(geo, "georeference", optional=True) is None:
        return
    if "crs" in geo:
        c.string(geo["crs"], "georeference.crs")
    for key in ("stride_m", "tile_size_m", "cell_deg"):
        c.positive(geo.get(key), f"georeference.{key}")
    centres = c.mapping(geo.get("centres"), "georeference.centres", optional=True)
    if centres is None:
        return
    per_tile = centres.get("per_tile", 1)
    c.integer(per_tile, "georeference.centres.per_tile", 1)
    if tile_count % per_tile:
        c.fail(
            "georeference.centres.per_tile",
            f"a divisor of tile_count {tile_count} (index rows = tiles x centres)",
            per_tile,
        )
    for key in ("spacing_m", "grid_stride"):
        c.positive(centres.get(key), f"georeference.centres.{key}")
    offsets = centres.get("offsets")
    if offsets is not None:
        ok = isinstance(offsets, list) and len(offsets) == per_tile
        ok = ok and all(
            isinstance(o, list)
            and len(o) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in o)
            for o in offsets
        )
        if not ok:
            c.fail("georeference.centres.offsets", f"{per_tile} [east, north] pairs", offsets)
