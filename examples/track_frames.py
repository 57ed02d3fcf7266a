"""Track a sequence of frames with odometry and print fused fixes (a drone companion loop).

``d4g-edge follow FOLDER --mavlink udpout:127.0.0.1:14550`` does this and publishes
GPS_INPUT; this is the same loop in Python::

    python examples/track_frames.py frames/*.jpg --bundle my_bundle --step-m 8 --heading 90
"""

import argparse

import d4g_edge
from d4g_edge.tracker import Tracker

p = argparse.ArgumentParser()
p.add_argument("frames", nargs="+")
p.add_argument("--bundle", default=None)
p.add_argument("--step-m", type=float, default=None, help="metres moved between frames")
p.add_argument("--heading", type=float, default=0.0, help="direction of travel (deg)")
args = p.parse_args()

loc = d4g_edge.Localizer(args.bundle)
tracker = Tracker.from_bundle(loc.bundle)
for frame in args.frames:
    obs = loc.observe(frame, top_k=100)  # top-100 tiles of this frame and its own answer
    odometry = (args.step_m, args.heading) if args.step_m else None
    fix = tracker.track(obs, odometry=odometry)  # not_in_map frames are no evidence
    state = "locked" if fix.locked else f"no fix ({fix.reason})"  # use only locked fixes
    print(f"{frame}: {fix.lat:.6f}, {fix.lon:.6f} ±{fix.uncertainty_m:.0f} m  {state}")
