"""Localize one ground panorama against a bundle: the ten lines a user copies.

Run from anywhere with the SDK installed (``pip install d4g-edge``)::

    python examples/localize_image.py examples/query_pano.jpg --bundle my_bundle
"""

import argparse

import d4g_edge

p = argparse.ArgumentParser()
p.add_argument("image")
p.add_argument("--bundle", default=None, help="bundle dir (default: the bundled default)")
args = p.parse_args()

loc = d4g_edge.Localizer(args.bundle, threads=2)  # loads and verifies the bundle once
fix = loc.localize(args.image, top_k=5)  # heading unknown: searched over 36 rolls, refined
if fix.status == "not_in_map":  # a degenerate frame or a place the bundle does not show
    raise SystemExit(f"no fix: {fix.reason}")
print(
    f"lat {fix.lat:.6f} lon {fix.lon:.6f} (±{fix.uncertainty_m:.0f} m at {fix.coverage or 0:.0%}), "
    f"{fix.status} (P(within 25 m) {fix.p_within_25m or 0:.2f}), "
    f"heading {fix.heading_deg:.0f}°, score {fix.score:.3f}"
)
for c in fix.candidates:
    print(
        f"  tile {c.tile_id}: {c.lat:.6f}, {c.lon:.6f}  score {c.score:.3f}  {c.distance_m:.0f} m"
    )
