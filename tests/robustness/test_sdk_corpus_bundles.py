"""SDK corpus, bundles (issue 21 items 12-16): every damaged bundle ends in a typed
``D4GEdgeError`` or a correct answer, through both ``Localizer(bundle).localize(image)`` and
``d4g-edge info BUNDLE``, and ``info`` rejects exactly what ``localize`` rejects.

Variants of three small real bundles (an hnswlib index, a float16 index, a cell-sharded one,
all from tiny random conv encoders run by onnxruntime) and of a second, foreign bundle built
from other models: every manifest field missing, mistyped or out of range; every file
flipped, truncated, emptied, missing or swapped with the foreign bundle's; the same damage
with the checksums re-computed (so the content checks, not the checksum, must catch it);
path escapes (``..``, absolute names, symlinks out of the bundle). A variant that loads must
localize a panorama made from a tile to exactly that tile. Each case has a time limit
(:mod:`tests.robustness.sdk_case`).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.robustness.sdk_case import call, cli
from tests.sdk._models import SAT_SIZE, conv_onnx, pano_of_tile, student_config

TIMEOUT_S = 30.0
QUERY_TILE = 5
HNSW_HEADER = struct.Struct("<QQQQQQiIQQQdQ")  # hnswlib 0.8.0 saveIndex header


# ---- the bundles ---------------------------------------------------------------------------


def _write(out: Path, ground: Path, sat: Path, n: int, seed: int, **kw) -> dict:
    """A bundle of ``n`` random tiles on a grid crossing several 0.01-degree cells."""
    from d4g_edge.bundle import model_entry, write_bundle
    from d4g_edge.index import IndexParams
    from d4g_edge.runtime import open_encoder
    from d4g_edge.tiletable import TileTable

    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 256, (n, SAT_SIZE, SAT_SIZE, 3), dtype=np.uint8)
    s = open_encoder(sat, threads=1)
    vectors = s.embed(list(tiles))
    rows = np.arange(n)
    table = TileTable.from_rows(rows + 100, 40.0 + rows * 0.004, -88.0 + rows * 1e-4, [32.0] * n)
    entry = model_entry(s.path, s.config, s.sha256)
    g = open_encoder(ground, threads=1)
    params = IndexParams(M=8, ef_construction=40, storage=kw.pop("storage", "hnswlib"))
    write_bundle(out, vectors, table, entry, query=g, params=params, **kw)
    return {"path": out, "tiles": tiles, "table": table}


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("sdk_corpus_bundles")
    # one seed for both views: a panorama made from a tile embeds like that tile
    ground = conv_onnx(d / "m" / "ground.onnx", student_config("ground"), seed=7)
    sat = conv_onnx(d / "m" / "satellite.onnx", student_config("satellite"), seed=7)
    # the foreign bundle: other models (another teacher, 8-d), other tiles
    other = {"teacher_sha256": "cd" * 32, "embed_dim": 8}
    g2 = conv_onnx(d / "m2" / "ground.onnx", student_config("ground", **other), seed=8)
    s2 = conv_onnx(d / "m2" / "satellite.onnx", student_config("satellite", **other), seed=8)
    hnsw = _write(d / "hnsw", ground, sat, 12, seed=1, georeference={"stride_m": 16.0})
    out = {
        "hnsw": hnsw,
        "f16": _write(d / "f16", ground, sat, 12, seed=1, storage="float16"),
        "cells": _write(d / "cells", ground, sat, 12, seed=1, cells=True),
        "other": _write(d / "other", g2, s2, 7, seed=2),
        "ground": ground,
        "satellite": sat,
        "query": pano_of_tile(hnsw["tiles"][QUERY_TILE]),
    }
    return out


# ---- edits ---------------------------------------------------------------------------------


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def _save_manifest(root: Path, m) -> None:
    (root / "manifest.json").write_text(json.dumps(m))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fix_checksums(root: Path) -> None:
    """Re-compute every listed checksum (and the query model's sha256) from the files as
    they are now: what someone does who edits a bundle and "repairs" its manifest."""
    m = _manifest(root)
    for name in m["files"]:
        if (root / name).is_file():
            m["files"][name] = _sha(root / name)
    g = m["models"].get("query")
    if isinstance(g, dict) and g.get("file") in m["files"]:
        g["sha256"] = m["files"][g["file"]]
    _save_manifest(root, m)


def _walk(m: dict, dotted: str | tuple):
    """The parent of a field and its key: ``"models.query.file"``, or a tuple of keys when
    one holds a dot (``("files", "tiles.npz")``)."""
    *parents, last = dotted.split(".") if isinstance(dotted, str) else dotted
    for key in parents:
        m = m[int(key)] if isinstance(m, list) else m[key]
    return m, (int(last) if isinstance(m, list) else last)


def set_(dotted: str | tuple, value) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        m = _manifest(root)
        parent, key = _walk(m, dotted)
        parent[key] = value
        _save_manifest(root, m)

    return edit


def drop(dotted: str | tuple) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        m = _manifest(root)
        parent, key = _walk(m, dotted)
        del parent[key]
        _save_manifest(root, m)

    return edit


def manifest_text(text: bytes | str) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        data = text.encode() if isinstance(text, str) else text
        (root / "manifest.json").write_bytes(data)

    return edit


def file_bytes(name: str, fn: Callable[[bytes, dict], bytes], fix: bool = False) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        path = root / name
        path.write_bytes(fn(path.read_bytes(), ctx))
        if fix:
            fix_checksums(root)

    return edit


def flip(at: float) -> Callable:
    def fn(data: bytes, ctx) -> bytes:
        b = bytearray(data)
        b[int(len(b) * at)] ^= 0xFF
        return bytes(b)

    return fn


def truncate(frac: float) -> Callable:
    return lambda data, ctx: data[: int(len(data) * frac)]


def from_other(base: str, name: str) -> Callable:
    return lambda data, ctx: (ctx[base]["path"] / name).read_bytes()


def from_model(role: str) -> Callable:
    return lambda data, ctx: ctx[role].read_bytes()


def remove(name: str) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        path = root / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return edit


def chain(*edits: Callable) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        for e in edits:
            e(root, ctx)

    return edit


def fixed(edit: Callable) -> Callable:
    return chain(edit, lambda root, ctx: fix_checksums(root))


def tiles_table(change: Callable[[dict], None]) -> Callable:
    """Rewrite tiles.npz with ``change`` applied to its columns, checksums re-computed."""

    def edit(root: Path, ctx: dict) -> None:
        with np.load(root / "tiles.npz") as data:
            cols = {k: data[k] for k in data.files}
        change(cols)
        buf = io.BytesIO()
        np.savez(buf, **cols)
        (root / "tiles.npz").write_bytes(buf.getvalue())
        fix_checksums(root)

    return edit


def col(name: str, row: int, value) -> Callable:
    def change(cols: dict) -> None:
        a = cols[name].copy()
        a[row] = value
        cols[name] = a

    return change


def hnsw_header(field: int, value) -> Callable:
    def fn(data: bytes, ctx) -> bytes:
        head = list(HNSW_HEADER.unpack(data[: HNSW_HEADER.size]))
        head[field] = value
        return HNSW_HEADER.pack(*head) + data[HNSW_HEADER.size :]

    return fn


def hnsw_record(row: int, part: str, value) -> Callable:
    """Overwrite the first float of row ``row``'s vector, or its first level-0 link."""

    def fn(data: bytes, ctx) -> bytes:
        head = HNSW_HEADER.unpack(data[: HNSW_HEADER.size])
        per, data_off = head[3], head[5]
        at = HNSW_HEADER.size + row * per + (data_off if part == "vector" else 4)
        b = bytearray(data)
        if part == "degree":
            b[at - 4 : at - 2] = struct.pack("<H", value)
        else:
            b[at : at + 4] = struct.pack("<f" if part == "vector" else "<I", value)
        return bytes(b)

    return fn


def npy(array_fn: Callable[[np.ndarray], np.ndarray]) -> Callable:
    def fn(data: bytes, ctx) -> bytes:
        arr = np.load(io.BytesIO(data))
        buf = io.BytesIO()
        np.save(buf, array_fn(arr.copy()))
        return buf.getvalue()

    return fn


def _nan_row(a: np.ndarray, value=np.nan) -> np.ndarray:
    a[3, 2] = value
    return a


def symlink_out(name: str) -> Callable:
    """Replace ``name`` by a symlink to an identical copy outside the bundle."""

    def edit(root: Path, ctx: dict) -> None:
        outside = root.parent / f"outside_{Path(name).name}"
        shutil.copyfile(root / name, outside)
        (root / name).unlink()
        (root / name).symlink_to(outside)

    return edit


def outside_ground(how: str) -> Callable:
    """models.query.file pointing out of the bundle at an identical copy of the model."""

    def edit(root: Path, ctx: dict) -> None:
        shutil.copyfile(root / "ground.onnx", root.parent / "outside_ground.onnx")
        m = _manifest(root)
        name = (
            "../outside_ground.onnx"
            if how == "dotdot"
            else str(root.parent / "outside_ground.onnx")
        )
        m["models"]["query"]["file"] = name
        if how != "unlisted":
            m["files"][name] = m["files"]["ground.onnx"]
        _save_manifest(root, m)

    return edit


def edited_embedded_config(root: Path, ctx: dict) -> None:
    """ground.onnx re-exported with another embedded config (weights_sha256), checksums fixed."""
    cfg = student_config("ground", weights_sha256="12" * 32)
    conv_onnx(root / "ground.onnx", cfg, seed=7)
    fix_checksums(root)


def onnx_without_metadata(root: Path, ctx: dict) -> None:
    conv_onnx(root / "ground.onnx", student_config("ground"), seed=7, metadata=False)
    fix_checksums(root)


def ground_config(**changes) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        m = _manifest(root)
        m["models"]["query"]["config"].update(changes)
        _save_manifest(root, m)

    return edit


def index_only(root: Path, ctx: dict) -> None:
    m = _manifest(root)
    del m["models"]["query"], m["files"]["ground.onnx"]
    m["views"] = []
    (root / "ground.onnx").unlink()
    _save_manifest(root, m)


def unlisted_pte_extra(root: Path, ctx: dict) -> None:
    m = _manifest(root)
    extra = dict(m["models"]["query"], file="ground.pte")
    m["models"]["query_extra"] = [extra]
    _save_manifest(root, m)


def cells_key(key: str) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        m = _manifest(root)
        cells = m["index"]["cells"]
        first = sorted(cells)[0]
        cells[key] = cells.pop(first)
        _save_manifest(root, m)

    return edit


def cells_span(span) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        m = _manifest(root)
        cells = m["index"]["cells"]
        cells[sorted(cells)[0]] = span
        _save_manifest(root, m)

    return edit


def first_cell_file(fn: Callable, fix: bool = False) -> Callable:
    def edit(root: Path, ctx: dict) -> None:
        name = sorted((root / "cells").iterdir())[0].name
        file_bytes(f"cells/{name}", fn, fix)(root, ctx)

    return edit


def first_cell_unlisted(root: Path, ctx: dict) -> None:
    m = _manifest(root)
    del m["files"][sorted(n for n in m["files"] if n.startswith("cells/"))[0]]
    _save_manifest(root, m)


# ---- the variants --------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    id: str
    base: str  # "hnsw", "f16" or "cells"
    edit: Callable[[Path, dict], None]
    expect: str  # "typed" (refused by both) or "ok" (the right tile)
    match: str | None = None  # text the error must contain: the field or file it names


def T(id, edit, match=None, base="hnsw") -> Variant:  # a table row
    return Variant(id, base, edit, "typed", match)


def OK(id, edit, base="hnsw") -> Variant:
    return Variant(id, base, edit, "ok")


REQUIRED = ("schema", "created", "embed_dim", "models", "index", "tile_count", "files")
VARIANTS: list[Variant] = [
    OK("unchanged", lambda root, ctx: None),
    OK("unchanged-f16", lambda root, ctx: None, base="f16"),
    OK("unchanged-cells", lambda root, ctx: None, base="cells"),
    # -- the manifest as a whole
    T("manifest-missing", remove("manifest.json"), "no manifest.json"),
    T("manifest-empty", manifest_text(""), "not valid JSON"),
    T(
        "manifest-truncated",
        lambda root, ctx: manifest_text((root / "manifest.json").read_bytes()[:200])(root, ctx),
        "not valid JSON",
    ),
    T("manifest-binary", manifest_text(bytes(range(256))), "not valid JSON"),
    T("manifest-list", manifest_text("[1, 2]"), "schema"),
    T("manifest-null", manifest_text("null"), "schema"),
    T("manifest-deep-nesting", manifest_text("[" * 100_000 + "]" * 100_000)),
    T(
        "manifest-a-directory",
        chain(remove("manifest.json"), lambda root, ctx: (root / "manifest.json").mkdir()),
        "no manifest.json",
    ),
    *[T(f"missing-{k}", drop(k), k) for k in REQUIRED],
    OK("missing-views", drop("views")),
    OK("missing-preprocessing", drop("preprocessing")),
    OK("missing-georeference", drop("georeference")),
    OK("missing-d4g_edge_version", drop("d4g_edge_version")),
    OK("unknown-top-level-key", set_("comment", "copied from the field laptop")),
    OK("georeference-null", set_("georeference", None)),
    # -- top-level fields mistyped or out of range
    T("schema-future", set_("schema", "d4g-edge/bundle/2"), "schema"),
    T("schema-int", set_("schema", 1), "schema"),
    T("created-int", set_("created", 5), "created"),
    T("version-list", set_("d4g_edge_version", [0, 1]), "d4g_edge_version"),
    T("embed_dim-string", set_("embed_dim", "16"), "embed_dim"),
    T("embed_dim-float", set_("embed_dim", 16.0), "embed_dim"),
    T("embed_dim-bool", set_("embed_dim", True), "embed_dim"),
    T("embed_dim-zero", set_("embed_dim", 0), "embed_dim"),
    T("embed_dim-other", set_("embed_dim", 8), "embed_dim"),
    T("tile_count-many", set_("tile_count", "many"), "tile_count"),
    T("tile_count-zero", set_("tile_count", 0), "tile_count"),
    T("tile_count-negative", set_("tile_count", -3), "tile_count"),
    T("tile_count-one-more", set_("tile_count", 13), "13"),
    T("tile_count-float", set_("tile_count", 12.5), "tile_count"),
    T("tile_count-null", set_("tile_count", None), "tile_count"),
    T("files-list", set_("files", ["index.bin", "tiles.npz"]), "files"),
    T("files-string", set_("files", "index.bin"), "files"),
    T("files-empty", set_("files", {}), "files"),
    T("files-sha-int", set_(("files", "tiles.npz"), 5), "tiles.npz"),
    T("files-sha-short", set_(("files", "tiles.npz"), "abc"), "tiles.npz"),
    T(
        "files-sha-upper",
        lambda root, ctx: set_(
            ("files", "tiles.npz"), _manifest(root)["files"]["tiles.npz"].upper()
        )(root, ctx),
        "tiles.npz",
    ),
    T("files-lacks-index", drop(("files", "index.bin")), "index.bin"),
    T("files-lacks-tiles", drop(("files", "tiles.npz")), "tiles.npz"),
    T("views-string", set_("views", "ground"), "views"),
    T("views-satellite", set_("views", ["satellite"]), "views"),
    T("views-drone", set_("views", ["drone"]), "views"),
    T("views-empty", set_("views", []), "views"),
    T("preprocessing-string", set_("preprocessing", "imagenet"), "preprocessing"),
    # -- the calibration (d4g_edge.trust), read by localize and info alike
    T("calibration-string", set_("calibration", "fit.json"), "calibration"),
    T("calibration-name-dotdot", set_("calibration", {"file": "../fit.json"}), "calibration"),
    T(
        "calibration-unlisted",
        set_("calibration", {"file": "calibration-0123456789ab.json"}),
        "calibration-0123456789ab.json",
    ),
    # -- models
    T("models-list", set_("models", []), "models"),
    T("models-string", set_("models", "fastervit"), "models"),
    T("models-no-satellite", drop("models.satellite"), "satellite"),
    T("satellite-entry-string", set_("models.satellite", "x"), "models.satellite"),
    T("satellite-no-config", drop("models.satellite.config"), "encoder config"),
    T("satellite-config-string", set_("models.satellite.config", "x"), "models.satellite"),
    T("satellite-config-empty", set_("models.satellite.config", {}), "models.satellite"),
    T("satellite-sha-int", set_("models.satellite.sha256", 7), "models.satellite.sha256"),
    T("satellite-model_id-edited", set_("models.satellite.model_id", "resnet"), "model_id"),
    T(
        "satellite-teacher-edited",
        set_("models.satellite.config.teacher_sha256", "12" * 32),
        "teacher_sha256",
    ),
    T(
        "satellite-is-ground-config",
        lambda root, ctx: set_(
            "models.satellite.config", _manifest(root)["models"]["query"]["config"]
        )(root, ctx),
        "satellite",
    ),
    T("ground-entry-list", set_("models.query", []), "models.query"),
    T("ground-no-config", drop("models.query.config"), "encoder config"),
    T("ground-file-int", set_("models.query.file", 5), "models.query.file"),
    T("ground-file-empty", set_("models.query.file", ""), "models.query.file"),
    T("ground-file-missing", drop("models.query.file"), "models.query.file"),
    T("ground-file-unknown", set_("models.query.file", "nope.onnx"), "models.query.file"),
    T("ground-file-is-tiles", set_("models.query.file", "tiles.npz"), "models.query.file"),
    T("ground-file-dotdot", outside_ground("dotdot"), "leaves the bundle"),
    T("ground-file-absolute", outside_ground("absolute"), "leaves the bundle"),
    T("ground-file-outside-unlisted", outside_ground("unlisted"), "leaves the bundle"),
    T("ground-unlisted", drop(("files", "ground.onnx")), "models.query.file"),
    T("ground-sha-stale", set_("models.query.sha256", "0" * 64), "models.query.sha256"),
    T("ground-sha-int", set_("models.query.sha256", 3), "models.query.sha256"),
    T("ground-sha-missing", drop("models.query.sha256"), "models.query.sha256"),
    T("ground-model_id-edited", set_("models.query.model_id", "convnext"), "model_id"),
    T("ground-config-embed_dim", ground_config(embed_dim=8), "embed_dim"),
    T("ground-config-teacher", ground_config(teacher_sha256="12" * 32), "teacher_sha256"),
    T("ground-config-teacher-model", ground_config(teacher_model="vit"), "teacher_model"),
    T("ground-config-weights", ground_config(weights_sha256="34" * 32), "weights_sha256"),
    T("ground-config-quantization", ground_config(quantization="int8"), "quantization"),
    T("ground-config-model_kwargs", ground_config(model_kwargs={"depth": 3}), "model_kwargs"),
    T("ground-config-size", ground_config(inputs={"ground": {"size": [64, 256]}}), "inputs"),
    T(
        "ground-config-view-satellite",
        lambda root, ctx: ground_config(
            inputs=_manifest(root)["models"]["satellite"]["config"]["inputs"]
        )(root, ctx),
        "view",
    ),
    T("ground-config-centre", ground_config(teacher_centre=[0.1] * 16), "teacher_centre"),
    T("ground-config-mean-nan", ground_config(mean=[float("nan")] * 3), "mean"),
    T("ground-config-unknown-key", ground_config(colour="blue"), "colour"),
    T("ground_extra-string", set_("models.query_extra", "ground.pte"), "query_extra"),
    T("ground_extra-int-entry", set_("models.query_extra", [5]), "query_extra"),
    T("ground_extra-pte-unlisted", unlisted_pte_extra, "ground.pte"),
    # -- index parameters
    T("index-string", set_("index", "hnsw"), "index"),
    T("index-list", set_("index", []), "index"),
    T("index-M-zero", set_("index.M", 0), "index.M"),
    T("index-M-string", set_("index.M", "32"), "index.M"),
    T("index-M-float", set_("index.M", 8.5), "index.M"),
    T("index-ef-negative", set_("index.ef", -1), "index.ef"),
    T("index-ef-null", set_("index.ef", None), "index.ef"),
    T("index-ef_construction-bool", set_("index.ef_construction", True), "ef_construction"),
    T("index-exact_threshold-negative", set_("index.exact_threshold", -1), "exact_threshold"),
    T("index-space-l2", set_("index.space", "l2"), "space"),
    T("index-space-int", set_("index.space", 2), "index.space"),
    T("index-storage-zip", set_("index.storage", "zip"), "storage"),
    T("index-storage-float16-on-hnsw", set_("index.storage", "float16"), "float16"),
    T("index-storage-hnswlib-on-f16", set_("index.storage", "hnswlib"), "hnswlib", base="f16"),
    T("index-unknown-key", set_("index.metric", "dot"), "metric"),
    T("index-layout-flat", set_("index.layout", "flat"), "index.layout"),
    T("index-layout-cells-without-cells", set_("index.layout", "cells"), "index.cells"),
    OK("index-storage-missing", drop("index.storage")),  # older manifests: hnswlib
    OK("index-ef-changed", set_("index.ef", 16)),
    # -- georeference
    T("geo-string", set_("georeference", "EPSG:4326"), "georeference"),
    T("geo-crs-int", set_("georeference.crs", 4326), "georeference.crs"),
    T("geo-stride-string", set_("georeference.stride_m", "16"), "stride_m"),
    T("geo-stride-negative", set_("georeference.stride_m", -16), "stride_m"),
    T("geo-stride-zero", set_("georeference.stride_m", 0), "stride_m"),
    T("geo-stride-nan", set_("georeference.stride_m", float("nan")), "stride_m"),
    T("geo-cell_deg-zero", set_("georeference.cell_deg", 0), "cell_deg"),
    T("geo-centres-string", set_("georeference.centres", "5x5"), "centres"),
    T("geo-per_tile-string", set_("georeference.centres", {"per_tile": "25"}), "per_tile"),
    T("geo-per_tile-zero", set_("georeference.centres", {"per_tile": 0}), "per_tile"),
    T("geo-per_tile-not-divisor", set_("georeference.centres", {"per_tile": 5}), "per_tile"),
    T(
        "geo-offsets-short",
        set_("georeference.centres", {"per_tile": 2, "offsets": [[0, 0]]}),
        "offsets",
    ),
    T(
        "geo-spacing-negative",
        set_("georeference.centres", {"per_tile": 1, "spacing_m": -9}),
        "spacing_m",
    ),
    OK("geo-unknown-key", set_("georeference.note", {"any": "thing"})),
    OK("geo-centres-one", set_("georeference.centres", {"per_tile": 1})),
    # -- ground.onnx
    T("ground-flipped", file_bytes("ground.onnx", flip(0.5)), "ground.onnx"),
    T("ground-truncated", file_bytes("ground.onnx", truncate(0.5)), "ground.onnx"),
    T("ground-empty", file_bytes("ground.onnx", truncate(0)), "ground.onnx"),
    T("ground-missing", remove("ground.onnx"), "ground.onnx"),
    T(
        "ground-from-other",
        file_bytes("ground.onnx", from_other("other", "ground.onnx")),
        "ground.onnx",
    ),
    T("ground-symlink-out", symlink_out("ground.onnx"), "outside the bundle"),
    T("ground-truncated-fixed", file_bytes("ground.onnx", truncate(0.5), fix=True)),
    T("ground-empty-fixed", file_bytes("ground.onnx", truncate(0), fix=True)),
    T(
        "ground-garbage-fixed",
        file_bytes("ground.onnx", lambda d, c: bytes(range(256)) * 40, fix=True),
    ),
    T("ground-header-flipped-fixed", file_bytes("ground.onnx", flip(0.0), fix=True)),
    T(
        "ground-from-other-fixed",
        file_bytes("ground.onnx", from_other("other", "ground.onnx"), fix=True),
        "teacher_sha256",
    ),
    T(
        "ground-is-satellite-fixed",
        file_bytes("ground.onnx", from_model("satellite"), fix=True),
        "view",
    ),
    T("ground-embedded-config-edited-fixed", edited_embedded_config, "weights_sha256"),
    T("ground-no-metadata-fixed", onnx_without_metadata, "metadata"),
    T(
        "ground-a-directory",
        chain(remove("ground.onnx"), lambda root, ctx: (root / "ground.onnx").mkdir()),
        "ground.onnx",
    ),
    OK("index-only-with-ground-given", index_only),
    # -- index.bin (hnswlib)
    T("index-flipped", file_bytes("index.bin", flip(0.5)), "index.bin"),
    T("index-truncated", file_bytes("index.bin", truncate(0.5)), "index.bin"),
    T("index-missing", remove("index.bin"), "index.bin"),
    T("index-from-other", file_bytes("index.bin", from_other("other", "index.bin")), "index.bin"),
    T("index-symlink-out", symlink_out("index.bin"), "outside the bundle"),
    T("index-truncated-fixed", file_bytes("index.bin", truncate(0.5), fix=True), "index.bin"),
    T("index-header-only-fixed", file_bytes("index.bin", truncate(0.01), fix=True), "index.bin"),
    T("index-empty-fixed", file_bytes("index.bin", truncate(0), fix=True), "index.bin"),
    T(
        "index-from-other-fixed",
        file_bytes("index.bin", from_other("other", "index.bin"), fix=True),
        "index.bin",
    ),
    T(
        "index-is-f16-fixed",
        file_bytes("index.bin", from_other("f16", "index.bin"), fix=True),
        "index.bin",
    ),
    T("index-count-fixed", file_bytes("index.bin", hnsw_header(2, 11), fix=True), "rows"),
    # hnswlib sizes the index by the manifest's count, not by this header field
    OK("index-capacity-huge-fixed", file_bytes("index.bin", hnsw_header(1, 1 << 60), fix=True)),
    T("index-record-size-fixed", file_bytes("index.bin", hnsw_header(3, 1 << 40), fix=True)),
    T("index-dim-fixed", file_bytes("index.bin", hnsw_header(4, 10), fix=True), "16-d"),
    T(
        "index-entry-point-fixed",
        file_bytes("index.bin", hnsw_header(7, 999), fix=True),
        "entry point",
    ),
    T(
        "index-nan-vector-fixed",
        file_bytes("index.bin", hnsw_record(3, "vector", np.nan), fix=True),
        "NaN",
    ),
    T(
        "index-inf-vector-fixed",
        file_bytes("index.bin", hnsw_record(3, "vector", np.inf), fix=True),
        "NaN or infinity",
    ),
    T(
        "index-link-out-of-range-fixed",
        file_bytes("index.bin", hnsw_record(2, "link", 9999), fix=True),
        "links",
    ),
    T(
        "index-degree-huge-fixed",
        file_bytes("index.bin", hnsw_record(2, "degree", 60000), fix=True),
        "links",
    ),
    # -- index.bin (float16)
    T("f16-flipped", file_bytes("index.bin", flip(0.5)), "index.bin", base="f16"),
    T(
        "f16-truncated-fixed",
        file_bytes("index.bin", truncate(0.6), fix=True),
        "index.bin",
        base="f16",
    ),
    T(
        "f16-header-only-fixed",
        file_bytes("index.bin", truncate(0.1), fix=True),
        "index.bin",
        base="f16",
    ),
    T("f16-nan-fixed", file_bytes("index.bin", npy(_nan_row), fix=True), "NaN", base="f16"),
    T(
        "f16-inf-fixed",
        file_bytes("index.bin", npy(lambda a: _nan_row(a, np.inf)), fix=True),
        "NaN or infinity",
        base="f16",
    ),
    T(
        "f16-float32-fixed",
        file_bytes("index.bin", npy(lambda a: a.astype(np.float32)), fix=True),
        "float16",
        base="f16",
    ),
    T(
        "f16-rows-dropped-fixed",
        file_bytes("index.bin", npy(lambda a: a[:-1]), fix=True),
        "float16",
        base="f16",
    ),
    T(
        "f16-transposed-fixed",
        file_bytes("index.bin", npy(lambda a: np.asfortranarray(a)), fix=True),
        "float16",
        base="f16",
    ),
    T(
        "f16-is-hnsw-fixed",
        file_bytes("index.bin", from_other("hnsw", "index.bin"), fix=True),
        "index.bin",
        base="f16",
    ),
    T(
        "f16-garbage-fixed",
        file_bytes("index.bin", lambda d, c: b"\x93NUMPY" + bytes(200), fix=True),
        "index.bin",
        base="f16",
    ),
    # -- tiles.npz
    T("tiles-flipped", file_bytes("tiles.npz", flip(0.5)), "tiles.npz"),
    T("tiles-truncated", file_bytes("tiles.npz", truncate(0.5)), "tiles.npz"),
    T("tiles-missing", remove("tiles.npz"), "tiles.npz"),
    T("tiles-from-other", file_bytes("tiles.npz", from_other("other", "tiles.npz")), "tiles.npz"),
    T("tiles-symlink-out", symlink_out("tiles.npz"), "outside the bundle"),
    T("tiles-truncated-fixed", file_bytes("tiles.npz", truncate(0.5), fix=True), "tiles.npz"),
    T("tiles-empty-fixed", file_bytes("tiles.npz", truncate(0), fix=True), "tiles.npz"),
    T(
        "tiles-garbage-fixed",
        file_bytes("tiles.npz", lambda d, c: b"PK\x03\x04" + bytes(300), fix=True),
        "tiles.npz",
    ),
    T("tiles-flipped-fixed", file_bytes("tiles.npz", flip(0.5), fix=True), "tiles.npz"),
    T(
        "tiles-from-other-fixed",
        file_bytes("tiles.npz", from_other("other", "tiles.npz"), fix=True),
        "rows",
    ),
    T(
        "tiles-is-npy-fixed",
        file_bytes("tiles.npz", from_other("f16", "index.bin"), fix=True),
        "tiles.npz",
    ),
    T("tiles-lat-141.9", tiles_table(col("lat", 4, 141.9)), "lat"),
    T("tiles-lat-nan", tiles_table(col("lat", 4, np.nan)), "lat"),
    T("tiles-lon-200", tiles_table(col("lon", 4, 200.0)), "lon"),
    T("tiles-lon-inf", tiles_table(col("lon", 4, -np.inf)), "lon"),
    T("tiles-footprint-zero", tiles_table(col("footprint_m", 4, 0.0)), "footprint_m"),
    T("tiles-footprint-negative", tiles_table(col("footprint_m", 4, -32.0)), "footprint_m"),
    T("tiles-footprint-inf", tiles_table(col("footprint_m", 4, np.inf)), "footprint_m"),
    OK("tiles-footprint-nan", tiles_table(col("footprint_m", 4, np.nan))),  # NaN: unknown
    T("tiles-id-negative", tiles_table(col("tile_id", 4, -1)), "tile_id"),
    T("tiles-id-float", tiles_table(lambda c: c.update(tile_id=c["tile_id"] + 0.5)), "tile_id"),
    T("tiles-lat-strings", tiles_table(lambda c: c.update(lat=c["lat"].astype(str))), "lat"),
    T("tiles-lat-2d", tiles_table(lambda c: c.update(lat=c["lat"][:, None])), "lat"),
    T("tiles-lat-short", tiles_table(lambda c: c.update(lat=c["lat"][:-1])), "lat"),
    T("tiles-no-cell", tiles_table(lambda c: c.pop("cell")), "cell"),
    T("tiles-no-rows", tiles_table(lambda c: c.update({k: v[:0] for k, v in c.items()})), "empty"),
    OK("tiles-extra-column", tiles_table(lambda c: c.update(note=np.zeros(12)))),
    # -- other files and path escapes
    T("files-names-dotdot", set_(("files", "../tiles.npz"), "0" * 64), "leaves the bundle"),
    T("files-names-absolute", set_(("files", "/etc/hostname"), "0" * 64), "leaves the bundle"),
    T("files-lists-missing-extra", set_(("files", "notes.txt"), "0" * 64), "notes.txt"),
    T(
        "files-symlink-loop",
        chain(
            set_(("files", "loop"), "0" * 64),
            lambda root, ctx: (root / "loop").symlink_to(root / "loop"),
        ),
        "loop",
    ),
    OK(
        "files-symlink-inside",
        chain(
            lambda root, ctx: (root / "data").mkdir(),
            lambda root, ctx: (root / "tiles.npz").rename(root / "data" / "tiles.npz"),
            lambda root, ctx: (root / "tiles.npz").symlink_to(root / "data" / "tiles.npz"),
        ),
    ),
    T("manifest-from-other", file_bytes("manifest.json", from_other("other", "manifest.json"))),
    # -- cell-sharded bundles
    T("cells-key-dotdot", cells_key("../../index"), "index.cells", base="cells"),
    T("cells-key-word", cells_key("north"), "index.cells", base="cells"),
    T("cells-span-beyond", cells_span([0, 99]), "index.cells", base="cells"),
    T("cells-span-string", cells_span("0-3"), "index.cells", base="cells"),
    T("cells-span-empty", cells_span([0, 0]), "index.cells", base="cells"),
    T("cells-string", set_("index.cells", "all"), "index.cells", base="cells"),
    T("cells-empty", set_("index.cells", {}), "index.cells", base="cells"),
    T("cells-layout-dropped", drop("index.layout"), "index", base="cells"),
    T("cells-file-flipped", first_cell_file(flip(0.5)), "cells/", base="cells"),
    T(
        "cells-file-nan-fixed",
        first_cell_file(hnsw_record(0, "vector", np.nan), fix=True),
        "NaN",
        base="cells",
    ),
    T(
        "cells-file-truncated-fixed",
        first_cell_file(truncate(0.5), fix=True),
        "cells/",
        base="cells",
    ),
    T("cells-file-unlisted", first_cell_unlisted, "cells/", base="cells"),
    T("cells-column-edited", tiles_table(col("cell", 0, 7)), "cell", base="cells"),
]


def test_sdk_corpus_bundles_size():
    ids = [v.id for v in VARIANTS]
    assert len(ids) == len(set(ids)), "variant ids must be unique"
    assert len(VARIANTS) >= 120, len(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_sdk_corpus_bundles(bases, tmp_path, variant):
    from d4g_edge.localizer import Localizer

    root = tmp_path / "b"
    shutil.copytree(bases[variant.base]["path"], root, symlinks=True)
    variant.edit(root, bases)
    given = bases["ground"] if variant.id.startswith("index-only") else None

    def localize():
        loc = Localizer(root, threads=1, query=given)
        return loc.localize(bases["query"], heading=0.0, top_k=3)

    api = call(localize, TIMEOUT_S)
    info = cli(["info", str(root)], TIMEOUT_S)
    assert api.kind in ("ok", "typed"), api.detail
    assert info.kind in ("ok", "typed"), info.detail
    assert api.kind == info.kind, (
        f"localize: {api.kind} {api.detail}; info: {info.kind} {info.detail}"
    )
    if variant.expect == "typed":
        assert api.kind == "typed", f"expected a typed error, localize answered {api.value}"
        if variant.match:
            assert variant.match in api.detail, api.detail
            assert variant.match in info.detail, info.detail
        assert "verified" not in info.stdout
        return
    assert api.kind == "ok", api.detail
    table = bases[variant.base]["table"]
    fix = api.value
    assert (fix.lat, fix.lon) == (table.lat[QUERY_TILE], table.lon[QUERY_TILE])
    assert fix.candidates[0].tile_id == table.tile_id[QUERY_TILE]
    assert fix.score > 0.99
    assert "verified" in info.stdout
