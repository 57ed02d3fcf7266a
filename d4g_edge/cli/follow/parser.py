"""The ``d4g-edge follow`` flags: every value checked when parsed (exit 2 before any frame),
with the validators of :mod:`d4g_edge.cli.args`; the folder's defaults are
:class:`~d4g_edge.cli.follow.frames.FrameFolder`'s.

Usage::

    add_follow_parser(subparsers, bundle_help)     # as d4g_edge.cli.app does
"""

from __future__ import annotations

import argparse
from pathlib import Path

from d4g_edge.cli.args import flight, number
from d4g_edge.cli.follow.frames import FrameFolder
from d4g_edge.cli.follow.loop import run_follow
from d4g_edge.cli.follow.mavlink import MAX_RADIUS_M, MAX_YAW_SIGMA_DEG

_FOLLOW_EPILOG = """\
frame folder: files *.jpg|*.jpeg|*.png are taken in name order once their size and mtime have
been stable for --settle s; write each frame to a temporary name (.f001.jpg or f001.jpg.tmp)
and rename it, and write its sidecar IMAGE.json (odometry [metres, heading_deg], heading_deg,
altitude_m, pitch_deg) before the image. A frame that still fails to decode is retried
--retries times, then skipped with a warning; bad sidecar fields are dropped with a warning.
If the folder disappears, follow waits for it (heartbeats go on) until --idle-timeout.

MAVLink: MAVLink 2, HEARTBEAT at 1 Hz, one GPS_INPUT per frame: a position only while the
tracker is locked (fix_type 3 when the 95 % radius <= --good-m, 2 <= --poor-m), else no fix
(fix_type 1, 0 satellites); horiz_accuracy = the 95 % radius / 2.4477 (EKF3's 1-sigma).

exit status: 0 done (--max-frames or --idle-timeout), 2 a user error (one 'error:' line),
130 SIGINT (Ctrl-C), 143 SIGTERM; the MAVLink connection is closed first.
"""


def add_follow_parser(sub, bundle_help: str) -> None:
    """The ``follow`` subcommand of ``sub`` (the ``d4g-edge`` subparsers)."""
    p = sub.add_parser(
        "follow",
        help="track a stream of frames; publish fixes over MAVLink",
        description="Localize and track frames from a watched folder or a camera, and publish "
        "the fix to an autopilot as MAVLink GPS_INPUT.",
        epilog=_FOLLOW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pos = number(float, 0, lo_open=True)
    p.add_argument("source", help="folder watched for new frames, or camera:N (OpenCV)")
    p.add_argument("--bundle", type=Path, default=None, help=bundle_help)
    p.add_argument(
        "--mavlink",
        default=None,
        help="where to send GPS_INPUT: udpout:HOST:PORT, udpin:[HOST]:PORT, tcp:HOST:PORT, "
        "tcpin:[HOST]:PORT or /dev/ttyACM0[,BAUD] (checked before any frame is read)",
    )
    p.add_argument(
        "--top-k", type=number(int, 1), default=100, help="tiles scored per frame (default 100)"
    )
    p.add_argument(
        "--heading", type=number(), default=None, help="known heading (deg), else searched"
    )
    p.add_argument(
        "--altitude",
        type=flight("altitude_m", number()),
        default=None,
        help="drone: metres above ground, (0, 5000]",
    )
    p.add_argument(
        "--pitch",
        type=flight("pitch_deg", number()),
        default=None,
        help="drone: camera degrees from nadir, [0, 80)",
    )
    p.add_argument("--walk-sigma-m", type=pos, default=10.0, help="motion blur without odometry")
    p.add_argument("--temperature", type=pos, default=0.02, help="score -> likelihood scale")
    _add_fix_quality_flags(p)
    _add_stream_flags(p)
    p.add_argument("--threads", type=number(int, 1, 1024), default=None, help="encoder threads")
    p.add_argument("--json", action="store_true", help="print one JSON line per fix")
    p.set_defaults(handler=run_follow)


def _add_fix_quality_flags(p) -> None:
    """What a fix is published as: 3D / 2D / no fix by its radius, and when yaw is sent."""
    quality = number(float, 0, MAX_RADIUS_M, lo_open=True)
    p.add_argument(
        "--good-m",
        type=quality,
        default=25.0,
        help="3D fix while the 95 %% radius is below this (m, default 25)",
    )
    p.add_argument(
        "--poor-m",
        type=quality,
        default=100.0,
        help="2D fix below this, else no fix (m, default 100)",
    )
    p.add_argument(
        "--yaw-sigma-max",
        type=number(float, 0, MAX_YAW_SIGMA_DEG, lo_open=True),
        default=MAX_YAW_SIGMA_DEG,
        help="send an estimated heading as yaw only below this 1-sigma error (deg, <= 10)",
    )


def _add_stream_flags(p) -> None:
    """How the frame folder is watched, and when the loop stops."""
    pos = number(float, 0, lo_open=True)
    p.add_argument(
        "--interval", type=pos, default=FrameFolder.interval_s, help="folder poll interval (s)"
    )
    p.add_argument(
        "--settle",
        type=number(float, 0),
        default=FrameFolder.settle_s,
        help="take a file once its size and mtime are unchanged this long "
        f"(s, default {FrameFolder.settle_s:g})",
    )
    p.add_argument(
        "--retries",
        type=number(int, 0, 100),
        default=FrameFolder.retries,
        help=f"times a frame that fails to decode is tried again (default {FrameFolder.retries})",
    )
    p.add_argument(
        "--max-frames",
        type=number(int, 1),
        default=None,
        help="stop after N frames, fixed or skipped (>= 1)",
    )
    p.add_argument(
        "--idle-timeout",
        type=number(float, 0),
        default=None,
        help="stop after S s without a new frame (default: run until stopped)",
    )
