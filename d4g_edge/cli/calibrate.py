"""``d4g-edge calibrate``: fit a bundle's trust model on your geotagged frames.

Usage::

    d4g-edge calibrate BUNDLE --queries FRAMES/ [--coverage 0.95] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from d4g_edge.cli.output import dumps


def add_parser(sub, bundle_help: str) -> None:
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
    cal.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from d4g_edge.build.calibrate import calibrate

    command = "d4g-edge " + " ".join(sys.argv[1:]) if sys.argv else None
    _, report = calibrate(
        args.bundle, args.queries, coverage=args.coverage, seed=args.seed, command=command
    )
    if args.json:
        print(dumps(report, indent=2))
    else:
        print(
            f"calibrated {args.bundle} on {report['frames']} frames ({report['rows']} rows, "
            f"{report['rows_in_map']} in the map): the {args.coverage:.0%} radius holds the "
            f"truth for {report['coverage_fit']:.1%} of the rows it was fitted on and "
            f"{report['coverage_cv']:.1%} by 5-fold cross-validation; "
            f"{report['ok_rate_of_right_cv']:.1%} of answers within 25 m are 'ok'"
        )
        photos, ok = report.get("coverage_cv_photo"), report.get("ok_rate_of_right_cv_photo")
        print(
            f"photos ({report['rows_photo']} rows): groups {report['photo_groups']}"
            + (f"; the radius holds the truth for {photos:.1%} (cross-validated)" if photos else "")
            + (f"; {ok:.1%} of photos within 25 m are 'ok'" if ok is not None else "")
        )
        if report.get("heading_coverage_cv") is not None:
            print(
                "heading: 1.96 heading_sigma_deg holds the true heading of "
                f"{report['heading_coverage_cv']:.1%} of right answers by cross-validation"
            )
    return 0
