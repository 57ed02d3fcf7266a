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
``error: ...`` and exits with status 2, never a traceback. Flags are checked when they are
parsed (the ``type=`` validators below: finite numbers, ranges, counts >= 1, a ``--plot``
folder that exists), so a wrong one costs no bundle load and no localization. ``--json``
output is strict JSON: a non-finite number is written as ``null``, never ``NaN``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from d4g_edge import drone
from d4g_edge._version import __version__
from d4g_edge.build.builder import (
    add_build_args,
    add_index_args,
    index_params,
    positive_metres,
    zoom_level,
)
from d4g_edge.config import ConfigError
from d4g_edge.errors import D4GEdgeError, ImageError
from d4g_edge.localizer import BUNDLE_ENV, default_bundle_path
from d4g_edge.log import logger, setup_logging

# ---- argparse types: one place for what a flag's value may be -------------------------------
# argparse turns an ArgumentTypeError into "d4g-edge CMD: error: argument --FLAG: MESSAGE" and
# exit status 2, before any work starts.


def _finite(text: str, what: str = "a number") -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"expected {what}, got {text!r}: NaN and infinity are not allowed"
        )
    return value


def heading_deg(text: str) -> float:
    """Degrees clockwise from north, any finite value (taken modulo 360)."""
    return _finite(text, "degrees clockwise from north, e.g. 0 for north or 90 for east")


def positive_int(text: str) -> int:
    """A count >= 1 (``--top-k``, ``--threads``, ``--queries``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _flight(name: str):
    """``--altitude`` / ``--pitch``: the ranges a :class:`d4g_edge.drone.Flight` checks (one
    definition of what is physically meaningful, shared with the API)."""

    def parse(text: str) -> float:
        value = _finite(text)
        try:
            if name == "altitude":
                drone.Flight(altitude_m=value)
            else:
                drone.Flight(pitch_deg=value)
        except D4GEdgeError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value

    return parse


def _lat_lon(lat: float, lon: float, text: str) -> None:
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise argparse.ArgumentTypeError(
            f"latitude must be in -90..90 and longitude in -180..180 degrees, got {text!r} "
            "(latitude first)"
        )


def _numbers(text: str, names: str) -> list[float]:
    parts = text.split(",")
    if len(parts) != len(names.split(",")):
        raise argparse.ArgumentTypeError(
            f"expected {names} ({len(names.split(','))} comma-separated numbers), got {text!r}"
        )
    return [_finite(v, f"{names} as numbers") for v in parts]


def lat_lon(text: str) -> tuple[float, float]:
    """``LAT,LON`` in degrees (``--truth``)."""
    lat, lon = _numbers(text, "LAT,LON")
    _lat_lon(lat, lon, text)
    return lat, lon


def prior(text: str) -> tuple[float, float, float]:
    """``LAT,LON,RADIUS_M`` with a radius > 0 (``--prior``)."""
    lat, lon, radius = _numbers(text, "LAT,LON,RADIUS_M")
    _lat_lon(lat, lon, text)
    if radius <= 0:
        raise argparse.ArgumentTypeError(f"RADIUS_M must be > 0 metres, got {text!r}")
    return lat, lon, radius


def plot_path(text: str) -> Path:
    """A picture file that can be written: its folder exists, its type is known, matplotlib
    is installed (see :func:`d4g_edge.cli.plot.check_plot_target`)."""
    from d4g_edge.cli.plot import check_plot_target

    try:
        return check_plot_target(text)[0]
    except D4GEdgeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _json_safe(value):
    """``value`` with every non-finite float as ``None``: JSON has no NaN or Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar
        return _json_safe(value.item())
    return value


def _dumps(value, **kwargs) -> str:
    """Strict JSON (``allow_nan=False`` after mapping NaN/inf to ``null``)."""
    return json.dumps(_json_safe(value), allow_nan=False, **kwargs)


def _printable(path: Path) -> str:
    # a file name that is not valid UTF-8 (surrogate-escaped) must not crash print()
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


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
    loc.add_argument(
        "--top-k", type=positive_int, default=5, help="candidates to report, >= 1 (default: 5)"
    )
    loc.add_argument(
        "--prior",
        type=prior,
        default=None,
        help="LAT,LON,RADIUS_M: search only tiles within the radius (metres, > 0)",
    )
    loc.add_argument(
        "--heading",
        type=heading_deg,
        default=None,
        help="azimuth (deg clockwise from north, finite) of the panorama's centre column, or "
        "where a drone frame's top points; default: IMAGE.json's heading_deg (as in follow's "
        "sidecars), else searched",
    )
    loc.add_argument(
        "--altitude",
        type=_flight("altitude"),
        default=None,
        help="drone frames: metres above ground, in (0, 5000]",
    )
    loc.add_argument(
        "--pitch",
        type=_flight("pitch"),
        default=None,
        help="drone frames: camera degrees from nadir, in [0, 80)",
    )
    loc.add_argument(
        "--truth",
        type=lat_lon,
        default=None,
        help="LAT,LON of the true position (else read from IMAGE.json if present: "
        '{"lat": ..., "lon": ...}; a broken sidecar is skipped with a warning)',
    )
    loc.add_argument("--backend", choices=("onnxruntime", "executorch"), default="onnxruntime")
    loc.add_argument("--threads", type=positive_int, default=None, help="encoder threads, >= 1")
    loc.add_argument(
        "--json",
        action="store_true",
        help="print JSON lines instead of a table (strict JSON: null for a non-finite number)",
    )
    loc.add_argument(
        "--plot",
        type=plot_path,
        default=None,
        help="write a picture (query, top-k on a map, truth) to FILE.png|pdf|svg (no suffix: "
        "PNG); its folder must exist; needs matplotlib. Several images: FILE_0.png, ...",
    )

    info = sub.add_parser("info", help="describe a bundle (and verify it)")
    info.add_argument("bundle", type=Path, nargs="?", default=None, help=bundle_help)
    info.add_argument("--json", action="store_true")
    info.add_argument("--full", action="store_true", help="--json: per-row lists too")

    bld = sub.add_parser("build-index", help="embed satellite tiles into a bundle (torch-free)")
    bld.add_argument(
        "--tiles",
        required=True,
        type=Path,
        help="XYZ folder z/x/y.png|jpg, or a world-file image / GeoTIFF",
    )
    bld.add_argument(
        "--tile-size-m", type=positive_metres, default=None, help="raster tile side (m)"
    )
    bld.add_argument(
        "--stride-m",
        type=positive_metres,
        default=None,
        help="raster tile stride (m); default: half the tile size",
    )
    bld.add_argument("--crs", default=None, help="CRS of a world file, e.g. EPSG:32616")
    bld.add_argument(
        "--zoom", type=zoom_level, default=None, help="XYZ zoom (default: the highest)"
    )
    add_build_args(bld)

    mrg = sub.add_parser("merge", help="join the shards of a build-index --shard run")
    mrg.add_argument("shards", nargs="+", type=Path)
    mrg.add_argument("--out", required=True, type=Path)
    add_index_args(mrg)

    bch = sub.add_parser("bench", help="encoder / search / end-to-end latency, HNSW recall")
    bch.add_argument("--bundle", type=Path, default=None, help=bundle_help)
    bch.add_argument(
        "--queries", type=positive_int, default=50, help="timed queries, >= 1 (default: 50)"
    )
    bch.add_argument(
        "--threads", type=positive_int, default=1, help="encoder threads, >= 1 (default: 1)"
    )
    bch.add_argument("--json", action="store_true", help="print the report as strict JSON")

    cal = sub.add_parser(
        "calibrate",
        help="fit the bundle's calibrated radius and status on your geotagged frames",
        description="Fit the trust model (radius at --coverage, p_within_25m, status) on "
        'frames with IMAGE.json sidecars {"lat": .., "lon": ..} (or {"in_map": false}) and '
        "write it into the bundle, checksummed; prints the coverage reached.",
    )
    cal.add_argument("bundle", type=Path, help="bundle directory to calibrate (rewritten)")
    cal.add_argument("--queries", type=Path, required=True, help="folder of geotagged frames")
    cal.add_argument(
        "--coverage",
        type=float,
        default=0.95,
        help="probability the radius holds the truth, in [0.5, 1) (default: 0.95)",
    )
    cal.add_argument("--seed", type=int, default=0, help="seed of the simulated priors/turns")
    cal.add_argument("--json", action="store_true", help="print the report as strict JSON")

    from d4g_edge.cli.follow import add_follow_parser

    add_follow_parser(sub, bundle_help)
    return p


def _sidecar_heading(image: Path) -> float | None:
    """``IMAGE.json``'s finite ``heading_deg`` (the device's compass, as in follow's sidecars),
    else None; a broken sidecar is reported by :func:`_truth`."""
    sidecar = image.with_name(image.name + ".json")
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else None
        value = data.get("heading_deg") if isinstance(data, dict) else None
        heading = float(value) if isinstance(value, int | float) and value is not True else None
    except (OSError, ValueError, TypeError, RecursionError):
        return None
    return heading if heading is not None and math.isfinite(heading) else None


def _truth(args, image: Path) -> tuple[float, float] | None:
    """``--truth``, else ``IMAGE.json``'s ``{"lat": .., "lon": ..}``. The sidecar only adds the
    error column: a broken one (not JSON, keys missing, values not finite degrees) is skipped
    with one warning naming it, and the answer is printed without an error."""
    if args.truth is not None:
        return args.truth
    sidecar = image.with_name(image.name + ".json")
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "lat" not in data or "lon" not in data:
            raise ValueError('expected an object {"lat": LAT, "lon": LON}')
        if isinstance(data["lat"], bool) or isinstance(data["lon"], bool):
            raise ValueError("lat/lon must be numbers, not true/false")
        lat, lon = float(data["lat"]), float(data["lon"])
        if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
            raise ValueError(f"lat {lat}, lon {lon} are not degrees in -90..90, -180..180")
    except (OSError, ValueError, TypeError, RecursionError) as err:  # JSONDecodeError: ValueError
        logger.warning(
            "ignoring the truth sidecar %s (%s); no error_m for %s",
            _printable(sidecar),
            err,
            _printable(image),
        )
        return None
    return lat, lon


def _fmt(value: float | None, spec: str) -> str:
    # no fix (not_in_map) has no radius; a NaN one is not a number to print either
    return format(value, spec) if value is not None and math.isfinite(value) else "?"


def _table_row(image: Path, fix, err: float | None) -> str:
    status = getattr(fix, "status", None)
    return (
        f"{_printable(image)}: lat {_fmt(fix.lat, '.6f')} lon {_fmt(fix.lon, '.6f')}  score "
        f"{_fmt(fix.score, '.3f')}  heading {_fmt(fix.heading_deg, '.0f')}°  "
        f"±{_fmt(fix.uncertainty_m, '.0f')} m"
        + (f"  {status}" if status else "")
        + (f"  error {err:.1f} m" if err is not None else "")
    )


def _localize(args) -> int:
    from d4g_edge.geo import haversine_m
    from d4g_edge.image import load_rgb
    from d4g_edge.localizer import Localizer

    if args.truth is not None and len(args.images) > 1:
        raise D4GEdgeError("--truth applies to one image; use IMAGE.json sidecars for several")
    for image in args.images:  # before the bundle is loaded: a typo costs nothing
        if not image.is_file():
            raise ImageError(
                f"image file {_printable(image)} "
                + (
                    "is a folder; pass the images in it (e.g. DIR/*.jpg)"
                    if image.is_dir()
                    else "does not exist (or is not a file)"
                )
            )
    loc = Localizer(args.bundle, backend=args.backend, threads=args.threads, region=args.prior)
    for i, image in enumerate(args.images):
        rgb = load_rgb(image)
        flight = {"altitude_m": args.altitude, "pitch_deg": args.pitch}
        fix = loc.localize(
            rgb,
            top_k=args.top_k,
            prior=args.prior,
            heading=args.heading if args.heading is not None else _sidecar_heading(image),
            **{k: v for k, v in flight.items() if v is not None},
        )
        truth = _truth(args, image)
        err = float(haversine_m(fix.lat, fix.lon, *truth)) if truth else None
        if args.json:
            print(_dumps({"image": _printable(image), **fix.to_dict(), "error_m": err}))
        else:
            print(_table_row(image, fix, err))
        if args.plot:
            from d4g_edge.cli.plot import plot_localization

            out = (
                args.plot
                if len(args.images) == 1
                else args.plot.with_name(f"{args.plot.stem}_{i}{args.plot.suffix}")
            )
            plot_localization(rgb, fix, out, truth=truth, title=image.name)
    return 0


def _search_kind(index, params: dict) -> str:
    """How the bundle is searched: the storage kind, and exact or graph for hnswlib."""
    storage = params.get("storage", "hnswlib")
    if storage != "hnswlib":
        return storage
    return "hnswlib (exact)" if getattr(index, "exact", False) else "hnswlib (graph)"


def _info(args) -> int:
    from d4g_edge import trust
    from d4g_edge._manifest import query_keys
    from d4g_edge.bundle import Bundle

    b = Bundle.load(args.bundle if args.bundle is not None else default_bundle_path())
    # verify what `localize` verifies: the query model opens, its embedded config equals the
    # manifest's and it pairs with the index's satellite model (Bundle.open_query_encoder);
    # the calibration file, if any, reads
    enc = b.open_query_encoder() if b.query_path is not None else None
    calibration = trust.Calibration.from_bundle(b)
    m = b.manifest
    if args.json:

        def brief(value):  # per-row lists (centre offsets, teacher centres) only with --full
            if isinstance(value, dict):
                return {k: brief(v) for k, v in value.items()}
            if isinstance(value, list) and len(value) > 16 and not args.full:
                return f"<{len(value)} values: d4g-edge info --json --full>"
            return [brief(v) for v in value] if isinstance(value, list) else value

        print(_dumps(brief(m), indent=2))  # strict JSON: NaN -> null
        return 0
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
    return 0


def _build(args) -> int:
    from d4g_edge.build.builder import build_from_args
    from d4g_edge.build.tiles import open_tile_source

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
    from d4g_edge.build.shards import merge_shards

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
    from d4g_edge.cli.bench import bench, format_report
    from d4g_edge.localizer import Localizer

    report = bench(Localizer(args.bundle, threads=args.threads), queries=args.queries)
    print(_dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _calibrate(args) -> int:
    from d4g_edge.build.calibrate import calibrate

    command = "d4g-edge " + " ".join(sys.argv[1:]) if sys.argv else None
    _, report = calibrate(
        args.bundle, args.queries, coverage=args.coverage, seed=args.seed, command=command
    )
    if args.json:
        print(_dumps(report, indent=2))
    else:
        print(
            f"calibrated {args.bundle} on {report['frames']} frames ({report['rows']} rows, "
            f"{report['rows_in_map']} in the map): the {args.coverage:.0%} radius holds the "
            f"truth for {report['coverage_fit']:.1%} of the rows it was fitted on and "
            f"{report['coverage_cv']:.1%} by 5-fold cross-validation; "
            f"{report['ok_rate_of_right_cv']:.1%} of answers within 25 m are 'ok'"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    from d4g_edge.cli.follow import run_follow

    commands = {
        "localize": _localize,
        "info": _info,
        "build-index": _build,
        "merge": _merge,
        "bench": _bench,
        "calibrate": _calibrate,
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
