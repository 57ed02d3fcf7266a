"""Render one cross-view pair from the procedural world and save it next to this script.

Run from the repository root::

    python -m examples.world_pair --seed 7 --style downtown

The satellite tile is north-up; the panorama has north at its centre column and azimuth
growing clockwise (east at 3/4 of the width). Each view gets its own domain gap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from train.world import TOWN_STYLES, DomainGap, World


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("Run")[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--style", choices=TOWN_STYLES, default="suburb")
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = p.parse_args()

    world = World.generate(args.seed, args.style, size_m=600.0)
    rng = np.random.default_rng(args.seed)
    east, north = world.sample_street_points(1, rng)[0]
    lat, lon = world.georef.metres_to_latlon(east, north)
    sat = world.render_satellite(
        (east, north), size_px=256, gsd_m=0.35, gap=DomainGap.sample(rng, 1.0), rng=rng
    )
    pano = world.render_panorama(
        (east, north), height=128, width=512, gap=DomainGap.sample(rng, 1.0), rng=rng
    )
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sat).save(args.out / "pair_satellite.png")
    Image.fromarray(pano).save(args.out / "pair_panorama.png")
    print(f"camera at lat {float(lat):.6f}, lon {float(lon):.6f}; wrote {args.out}/pair_*.png")


if __name__ == "__main__":
    main()
