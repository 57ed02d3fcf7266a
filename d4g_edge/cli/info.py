"""``d4g-edge info``: describe a bundle, after verifying what ``localize`` verifies.

Usage::

    d4g-edge info [BUNDLE] [--json [--full]]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from d4g_edge.cli.output import dumps


def add_parser(sub, bundle_help: str) -> None:
    info = sub.add_parser("info", help="describe a bundle (and verify it)")
    info.add_argument("bundle", type=Path, nargs="?", default=None, help=bundle_help)
    info.add_argument("--json", action="store_true")
    info.add_argument("--full", action="store_true", help="--json: per-row lists too")
    info.set_defaults(handler=run)


def _search_kind(index, params: dict) -> str:
    """How the bundle is searched: the storage kind, and exact or graph for hnswlib."""
    storage = params.get("storage", "hnswlib")
    if storage != "hnswlib":
        return storage
    return "hnswlib (exact)" if getattr(index, "exact", False) else "hnswlib (graph)"


def _brief(value, full: bool):
    """Per-row lists (centre offsets, teacher centres) shortened unless ``--full``."""
    if isinstance(value, dict):
        return {k: _brief(v, full) for k, v in value.items()}
    if isinstance(value, list) and len(value) > 16 and not full:
        return f"<{len(value)} values: d4g-edge info --json --full>"
    return [_brief(v, full) for v in value] if isinstance(value, list) else value


def run(args: argparse.Namespace) -> int:
    from d4g_edge import trust
    from d4g_edge.bundle import Bundle
    from d4g_edge.localizer import default_bundle_path

    b = Bundle.load(args.bundle if args.bundle is not None else default_bundle_path())
    # verify what `localize` verifies: the query model opens, its embedded config equals the
    # manifest's and it pairs with the index's satellite model (Bundle.open_query_encoder);
    # the calibration file, if any, reads
    enc = b.open_query_encoder() if b.query_path is not None else None
    calibration = trust.Calibration.from_bundle(b)
    if args.json:
        print(dumps(_brief(b.manifest, args.full), indent=2))  # strict JSON: NaN -> null
        return 0
    _print_summary(b, enc, calibration)
    return 0


def _print_summary(b, enc, calibration) -> None:
    from d4g_edge._manifest import query_keys

    m = b.manifest
    g = m["models"].get(query_keys(m["models"])[0])  # models.query (.ground when older)
    print(f"bundle {b.root} ({m['schema']}, created {m['created']}): verified")
    c = b.centres_per_tile
    rows = f"{m['tile_count']}" + (
        f" ({m['tile_count'] // c} tiles x {c} centres)" if c > 1 else ""
    )
    print(
        f"  tiles: {rows}  embed dim: {m['embed_dim']}  search: "
        f"{_search_kind(b.index, m['index'])} {m['index']}"
    )
    print(
        f"  satellite model: {m['models']['satellite'].get('source')} "
        f"sha256 {m['models']['satellite'].get('sha256', '?')[:16]}…"
    )
    if g:
        c = enc.config
        query = f"{g['file']} sha256 {g['sha256'][:16]}… ({c.model_id} {c.view} {c.quantization})"
    print(f"  query model: {query if g else '(none)'}")
    print(f"  serves: {', '.join(b.views) or 'index only'}")
    print(f"  calibration: {m['calibration']['file'] if calibration else 'none (uncalibrated)'}")
    t = b.tiles
    geo = dict(m.get("georeference") or {})
    if isinstance(geo.get("centres"), dict):  # the per-centre offsets are in --json --full
        geo["centres"] = {k: v for k, v in geo["centres"].items() if k != "offsets"}
    print(
        f"  area: lat {t.lat.min():.6f}..{t.lat.max():.6f}, lon {t.lon.min():.6f}.."
        f"{t.lon.max():.6f}; georeference {json.dumps(geo)}"
    )
