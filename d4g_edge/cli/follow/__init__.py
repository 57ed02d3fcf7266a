"""``d4g-edge follow``: a drone companion loop — frames in, tracked fixes out (and MAVLink).

Frames come from a folder watched for new images, or from a camera through OpenCV
(``camera:0``) when it is installed. Each frame is localized
(:class:`~d4g_edge.localizer.Localizer`, top-k retrieval), fused by the
:class:`~d4g_edge.tracker.Tracker`, printed, and with ``--mavlink URL`` sent to an autopilot
as ``GPS_INPUT`` (pymavlink + pyserial, optional extra ``d4g-edge[mavlink]``).

**The frame folder.** Files ``*.jpg|*.jpeg|*.png`` (not hidden) are taken in name order, each
once, when their size *and* mtime have not changed for ``--settle`` seconds. Writers should
still write to a temporary name (``.f001.jpg`` or ``f001.jpg.tmp``) and rename: a rename is
atomic, so a frame is then never seen half-written (what hloc and ArduPilot companion tools
expect). A frame that fails to decode anyway (a writer that paused longer than the settle
time) is retried ``--retries`` times, each after a longer wait, then skipped. A frame that
cannot be used (broken link, not a file, vanished, undecodable) is skipped with one warning
line naming it and why; the loop goes on. If the folder disappears (a card unmounted, a flight
folder rotated) the loop warns once and waits for it to come back, still sending heartbeats;
``--idle-timeout`` ends the wait like any other idle period.

**Sidecars.** ``IMAGE.json`` (write it *before* the image) may hold ``odometry``
(``[metres >= 0, heading_deg]`` moved since the previous frame), ``heading_deg`` (where the
frame's top / the panorama's centre points), ``altitude_m`` above ground and ``pitch_deg``
from nadir (drone bundles, :mod:`d4g_edge.drone`); they override the flags for that frame.
:func:`read_sidecar` validates them all: a bad field (wrong type, NaN, inf, out of range) is
dropped, a bad file (not JSON, not an object, a directory, over 64 KiB) is ignored, each with
one warning line, and the frame is still localized from the flags. No NaN reaches the tracker.

**MAVLink** (``--mavlink URL``): MAVLink 2, a ``HEARTBEAT`` at 1 Hz and one ``GPS_INPUT`` per
frame, a position only while the tracker is locked; :mod:`~d4g_edge.cli.follow.mavlink` says
what each field carries and which ArduPilot parameters read it.

**Stopping.** ``--max-frames``, ``--idle-timeout``, SIGINT (exit 130) or SIGTERM (exit 143):
each ends the loop with a message, closes the MAVLink connection and exits.

The package, one module per part:

* :mod:`~d4g_edge.cli.follow.frames` — the watched folder and the camera;
* :mod:`~d4g_edge.cli.follow.sidecars` — ``IMAGE.json`` read and validated;
* :mod:`~d4g_edge.cli.follow.mavlink_url` — ``--mavlink`` checked before any frame;
* :mod:`~d4g_edge.cli.follow.mavlink` — the ``GPS_INPUT`` / ``HEARTBEAT`` publisher;
* :mod:`~d4g_edge.cli.follow.loop` — frames to fixes (:func:`run_follow`);
* :mod:`~d4g_edge.cli.follow.parser` — the flags.

Usage::

    d4g-edge follow frames/ --bundle town --mavlink udpout:127.0.0.1:14550
"""

from __future__ import annotations

from d4g_edge.cli.follow.errors import FollowError, MavlinkError, SidecarError
from d4g_edge.cli.follow.frames import FRAME_SUFFIXES, FrameFolder, camera_frames
from d4g_edge.cli.follow.loop import EXIT_SIGNAL, run_follow
from d4g_edge.cli.follow.mavlink import (
    MAX_RADIUS_M,
    MAX_YAW_SIGMA_DEG,
    R95_PER_SIGMA,
    MavlinkPublisher,
)
from d4g_edge.cli.follow.mavlink_url import MavlinkTarget, parse_mavlink_url
from d4g_edge.cli.follow.parser import add_follow_parser
from d4g_edge.cli.follow.sidecars import FrameMeta, read_sidecar

__all__ = [
    "EXIT_SIGNAL",
    "FRAME_SUFFIXES",
    "MAX_RADIUS_M",
    "MAX_YAW_SIGMA_DEG",
    "R95_PER_SIGMA",
    "FollowError",
    "FrameFolder",
    "FrameMeta",
    "MavlinkError",
    "MavlinkPublisher",
    "MavlinkTarget",
    "SidecarError",
    "add_follow_parser",
    "camera_frames",
    "parse_mavlink_url",
    "read_sidecar",
    "run_follow",
]
