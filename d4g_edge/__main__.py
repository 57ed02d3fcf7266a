"""``d4g-edge`` command line (also ``python -m d4g_edge``).

Usage::

    d4g-edge localize IMAGE [IMAGE ...] [--bundle DIR] [--top-k K] [--prior LAT,LON,RADIUS_M]
                      [--heading DEG] [--json] [--plot FILE.png]
    d4g-edge info [BUNDLE]
    d4g-edge build-index --tiles SRC --model SATELLITE.onnx --out BUNDLE [--ground GROUND.onnx]
                         [--tile-size-m M --stride-m M] [--shard i/n] [--resume]
    d4g-edge merge SHARD_DIR ... --out BUNDLE [--ground GROUND.onnx]
    d4g-edge bench [--bundle DIR]
    d4g-edge follow SOURCE [--bundle DIR] [--mavlink URL]

A user's mistake (a bad image, a missing or tampered bundle, a wrong flag) prints one line
``error: ...`` and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from d4g_edge._log import setup_logging
from d4g_edge._version import __version__
from d4g_edge.build import add_build_args, add_index_args, index_params
from d4g_edge.config import ConfigError
from d4g_edge.errors import D4GEdgeError
from d4g_edge.localizer import BUNDLE_ENV, default_bundle_path


def _floats(n: int, what: str):
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated numbers")
        return values

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="d4g-edge", description="Cross-view geo-localization SDK")
    p.add_argument("--version", action="version", version=f"d4g-edge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    bundle_help = f"bundle directory (default: ${BUNDLE_ENV}, else the bundled default)"

    loc = sub.add_parser(
        "localize", help="estimate lat/lon of ground panoramas (or drone frames: drone bundle)"
    )
    loc.add_argument(
        "images", nargs="+", type=Path, help="panoramas, or drone frames for a drone bundle"
    )
    loc.add_argument("--bundle", type=Path, default=None, help=bundle_help)
    loc.add_argument("--top-k", type=int, default=5, help="candidates to report (default: 5)")
    loc.add_argument(
        "--prior",
        type=_floats(3, "--prior"),
        default=None,
        help="LAT,LON,RADIUS_M: search only tiles within the radius",
    )
    loc.add_argument(
        "--heading",
        type=float,
        default=None,
        help="azimuth (deg) of the panorama's centre column, or where a drone frame's top "
        "points; default: search",
    )
    loc.add_argument(
        "--altitude", type=float, default=None, help="drone frames: metres above ground"
    )
    loc.add_argument(
        "--pitch", type=float, default=None, help="drone frames: camera degrees from nadir"
    )
    loc.add_argument(
        "--truth",
        type=_floats(2, "--truth"),
        default=None,
        help="LAT,LON of the true position (else read from IMAGE.json if present)",
    )
    loc.add_argument("--backend", choices=("onnxruntime", "executorch"), default="onnxruntime")
    loc.add_argument("--threads", type=int, default=None, help="encoder threads")
    loc.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    loc.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="write a picture (query, top-k on a map, truth); needs matplotlib",
    )

    info = sub.add_parser("info", help="describe a bundle (and verify it)")
    info.add_argument("bundle", type=Path, nargs="?", default=None, help=bundle_help)
    info.add_argument("--json", action="store_true")

    bld = sub.add_parser("build-index", help="embed satellite tiles into a bundle (torch-free)")
    bld.add_argument(
        "--tiles",
        required=True,
        type=Path,
        help="XYZ folder z/x/y.png|jpg, or a world-file image / GeoTIFF",
    )
    bld.add_argument("--tile-size-m", type=float, default=None, help="raster tile side (m)")
    bld.add_argument(
        "--stride-m",
        type=float,
        default=None,
        help="raster tile stride (m); default: half the tile size",
    )
    bld.add_argument("--crs", default=None, help="CRS of a world file, e.g. EPSG:32616")
    bld.add_argument("--zoom", type=int, default=None, help="XYZ zoom (default: the highest)")
    add_build_args(bld)

    mrg = sub.add_parser("merge", help="join the shards of a build-index --shard run")
    mrg.add_argument("shards", nargs="+", type=Path)
    mrg.add_argument("--out", required=True, type=Path)
    add_index_args(mrg)

    bch = sub.add_parser("bench", help="encoder / search / end-to-end latency, HNSW recall")
    bch.add_argument("--bundle", type=Path, default=None, help=bundle_help)
    bch.add_argument("--queries", type=int, default=50)
    bch.add_argument("--threads", type=int, default=1, help="encoder threads (default: 1)")
    bch.add_argument("--json", action="store_true")

    from d4g_edge.follow import add_follow_parser

    add_follow_parser(sub, bundle_help)
    return p


def _truth(args, image: Path):
    if args.truth is not None:
        return args.truth
    sidecar = image.with_name(image.name + ".json")
    if sidecar.is_file():
        data = json.loads(sidecar.read_text())
        return float(data["lat"]), float(data["lon"])
    return None


def _localize(args) -> int:
    from d4g_edge.geo import haversine_m
    from d4g_edge.image import load_rgb
    from d4g_edge.localizer import Localizer

    if args.truth is not None and len(args.images) > 1:
        raise D4GEdgeError("--truth applies to one image; use IMAGE.json sidecars for several")
    loc = Localizer(args.bundle, backend=args.backend, threads=args.threads, region=args.prior)
    for i, image in enumerate(args.images):
        rgb = load_rgb(image)
        flight = {"altitude_m": args.altitude, "pitch_deg": args.pitch}
        fix = loc.localize(
            rgb,
            top_k=args.top_k,
            prior=args.prior,
            heading=args.heading,
            **{k: v for k, v in flight.items() if v is not None},
        )
        truth = _truth(args, image)
        err = float(haversine_m(fix.lat, fix.lon, *truth)) if truth else None
        if args.json:
            print(json.dumps({"image": str(image), **fix.to_dict(), "error_m": err}))
        else:
            extra = f"  error {err:.1f} m" if err is not None else ""
            print(
                f"{image}: lat {fix.lat:.6f} lon {fix.lon:.6f}  score {fix.score:.3f}  "
                f"heading {fix.heading_deg:.0f}°  ±{fix.uncertainty_m:.0f} m{extra}"
            )
        if args.plot:
            from d4g_edge.plot import plot_localization

            out = (
                args.plot
                if len(args.images) == 1
                else args.plot.with_name(f"{args.plot.stem}_{i}{args.plot.suffix}")
            )
            plot_localization(rgb, fix, out, truth=truth, title=image.name)
    return 0


def _info(args) -> int:
    from d4g_edge.bundle import Bundle

    b = Bundle.load(args.bundle if args.bundle is not None else default_bundle_path())
    m = b.manifest
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    g = m["models"].get("ground")
    print(f"bundle {b.root} ({m['schema']}, created {m['created']}): verified")
    c = b.centres_per_tile
    rows = f"{m['tile_count']}" + (
        f" ({m['tile_count'] // c} tiles x {c} centres)" if c > 1 else ""
    )
    print(
        f"  tiles: {rows}  embed dim: {m['embed_dim']}  search: "
        f"{'exact' if b.index.exact else 'hnsw'} {m['index']}"
    )
    print(
        f"  satellite model: {m['models']['satellite']['source']} "
        f"sha256 {m['models']['satellite']['sha256'][:16]}…"
    )
    print(f"  query model: {g['file'] + ' sha256 ' + g['sha256'][:16] + '…' if g else '(none)'}")
    print(f"  serves: {', '.join(b.views) or 'index only'}")
    t = b.tiles
    geo = dict(m.get("georeference") or {})
    if isinstance(geo.get("centres"), dict):  # the per-centre offsets are in --json
        geo["centres"] = {k: v for k, v in geo["centres"].items() if k != "offsets"}
    print(
        f"  area: lat {t.lat.min():.6f}..{t.lat.max():.6f}, lon {t.lon.min():.6f}.."
        f"{t.lon.max():.6f}; georeference {json.dumps(geo)}"
    )
    return 0


def _build(args) -> int:
    from d4g_edge.build import build_from_args
    from d4g_edge.tiles import open_tile_source

    src = open_tile_source(
        args.tiles,
        tile_size_m=args.tile_size_m,
        stride_m=args.stride_m,
        crs=args.crs,
        zoom=args.zoom,
    )
    out = build_from_args(src, args)
    print(f"wrote {out}")
    return 0


def _merge(args) -> int:
    from d4g_edge.shards import merge_shards

    out = merge_shards(
        args.shards,
        args.out,
        ground=args.ground,
        params=index_params(args),
        threads=args.threads,
        cells=args.cells,
    )
    print(f"wrote {out}")
    return 0


def _bench(args) -> int:
    from d4g_edge.bench import bench, format_report
    from d4g_edge.localizer import Localizer

    report = bench(Localizer(args.bundle, threads=args.threads), queries=args.queries)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    from d4g_edge.follow import run_follow

    commands = {
        "localize": _localize,
        "info": _info,
        "build-index": _build,
        "merge": _merge,
        "bench": _bench,
        "follow": run_follow,
    }
    try:
        return commands[args.command](args)
    except (D4GEdgeError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
