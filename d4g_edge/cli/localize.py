"""``d4g-edge localize``: where panoramas (or a drone bundle's frames) were taken.

One line per image (or one strict JSON line with ``--json``), with the error in metres when
the truth is known: ``--truth LAT,LON`` for one image, else an ``IMAGE.json`` sidecar
``{"lat": .., "lon": ..}`` (a broken one is skipped with a warning). ``IMAGE.json``'s
``heading_deg`` (the device's compass, as in ``follow``'s sidecars) is used when ``--heading``
is not given, and its ``fov_deg`` (a phone photo's horizontal field of view) when ``--fov`` is
not; without either, a ground bundle reads the photo's EXIF (:mod:`d4g_edge.ground_query`),
else the image is a panorama. Every image path is checked before the bundle is loaded.

Usage::

    d4g-edge localize IMAGE [IMAGE ...] [--bundle DIR] [--top-k K] [--prior LAT,LON,RADIUS_M]
                      [--heading DEG] [--fov DEG] [--json] [--plot FILE.png]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from d4g_edge.cli.args import checked, flight, heading_deg, lat_lon, number, positive_int, prior
from d4g_edge.cli.output import dumps, printable
from d4g_edge.errors import D4GEdgeError, ImageError
from d4g_edge.log import logger


def _plot_target(text: str) -> Path:
    """A picture file that can be written: its folder exists, its type is known, matplotlib
    is installed (see :func:`d4g_edge.cli.plot.check_plot_target`)."""
    from d4g_edge.cli.plot import check_plot_target

    return check_plot_target(text)[0]


plot_path = checked(_plot_target)


def add_parser(sub, bundle_help: str) -> None:
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
        "--fov",
        type=number(float, 0, 360, lo_open=True),
        default=None,
        help="horizontal field of view (deg) of a phone photo for a ground bundle (360: a "
        "panorama), of the camera for a drone bundle; default: IMAGE.json's fov_deg, else the "
        "photo's EXIF 35 mm-equivalent focal length (ground), else a panorama",
    )
    loc.add_argument(
        "--altitude",
        type=flight("altitude_m"),
        default=None,
        help="drone frames: metres above ground, in (0, 5000]",
    )
    loc.add_argument(
        "--pitch",
        type=flight("pitch_deg"),
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
    loc.set_defaults(handler=run)


def _sidecar_heading(image: Path, key: str = "heading_deg") -> float | None:
    """``IMAGE.json``'s finite ``heading_deg`` (the device's compass, as in follow's sidecars;
    ``key="fov_deg"``: the camera's field of view, range-checked by the localizer), else None;
    a broken sidecar is reported by :func:`_truth`."""
    sidecar = image.with_name(image.name + ".json")
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else None
        value = data.get(key) if isinstance(data, dict) else None
        heading = float(value) if isinstance(value, int | float) and value is not True else None
    except (OSError, ValueError, TypeError, RecursionError):
        return None
    return heading if heading is not None and math.isfinite(heading) else None


def _truth(args: argparse.Namespace, image: Path) -> tuple[float, float] | None:
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
            printable(sidecar),
            err,
            printable(image),
        )
        return None
    return lat, lon


def _fmt(value: float | None, spec: str) -> str:
    # no fix (not_in_map) has no radius; a NaN one is not a number to print either
    return format(value, spec) if value is not None and math.isfinite(value) else "?"


def _table_row(image: Path, fix, err: float | None) -> str:
    status = getattr(fix, "status", None)
    return (
        f"{printable(image)}: lat {_fmt(fix.lat, '.6f')} lon {_fmt(fix.lon, '.6f')}  score "
        f"{_fmt(fix.score, '.3f')}  heading {_fmt(fix.heading_deg, '.0f')}°"
        + (f" ±{sigma:.0f}°" if (sigma := getattr(fix, "heading_sigma_deg", None)) else "")
        + f"  ±{_fmt(fix.uncertainty_m, '.0f')} m"
        + (f"  {status}" if status else "")
        + (f"  error {err:.1f} m" if err is not None else "")
    )


def _check_images(args: argparse.Namespace) -> None:
    """Before the bundle is loaded: a typo costs nothing."""
    if args.truth is not None and len(args.images) > 1:
        raise D4GEdgeError("--truth applies to one image; use IMAGE.json sidecars for several")
    for image in args.images:
        if not image.is_file():
            raise ImageError(
                f"image file {printable(image)} "
                + (
                    "is a folder; pass the images in it (e.g. DIR/*.jpg)"
                    if image.is_dir()
                    else "does not exist (or is not a file)"
                )
            )


def run(args: argparse.Namespace) -> int:
    from d4g_edge.geo import haversine_m
    from d4g_edge.ground_query import exif_fov
    from d4g_edge.image import load_rgb
    from d4g_edge.localizer import Localizer

    _check_images(args)
    loc = Localizer(args.bundle, backend=args.backend, threads=args.threads, region=args.prior)
    for i, image in enumerate(args.images):
        rgb = load_rgb(image)
        flight_values = {"altitude_m": args.altitude, "pitch_deg": args.pitch}
        fov = args.fov if args.fov is not None else _sidecar_heading(image, "fov_deg")
        if fov is None and loc.view != "drone":  # rgb no longer carries the file's EXIF
            fov = exif_fov(image, rgb.shape)
        fix = loc.localize(
            rgb,
            top_k=args.top_k,
            prior=args.prior,
            heading=args.heading if args.heading is not None else _sidecar_heading(image),
            fov_deg=fov,
            **{k: v for k, v in flight_values.items() if v is not None},
        )
        truth = _truth(args, image)
        err = float(haversine_m(fix.lat, fix.lon, *truth)) if truth else None
        if args.json:
            print(dumps({"image": printable(image), **fix.to_dict(), "error_m": err}))
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
