"""A pedestrian's phone walk for ``benchmarks.bench_track`` (issue 23): photos, not panoramas.

A walker follows the town's streets (``bench_track.drive`` at walking steps) and takes a
level-ish phone photo at every step: horizontal field of view ``fov_deg`` (a phone's main
camera is 65-75 degrees across), looking along the walk give or take 30 degrees, pitch within
5 degrees, a little roll. A phone has a compass: each frame carries the look direction it
reads, the truth plus Gaussian noise of ``compass_sigma_deg`` (magnetometers in a city are
off by 5-15 degrees). The photos are cut from the panorama rendered at the walker's position
(north at its centre column) with :func:`d4g_edge.photo.pano_to_pinhole`, the projection the
SDK inverts."""

from __future__ import annotations

import numpy as np

from d4g_edge.photo import pano_to_pinhole

LOOK_AROUND_DEG = 30.0  # how far from the walking direction the phone may point
PITCH_DEG = 5.0
ROLL_DEG = 3.0
ASPECT = 0.75  # a 4:3 photo held in landscape


def walk_photos(panos, path, rng, fov_deg: float, compass_sigma_deg: float):
    """(photos, compass headings in degrees) for panoramas rendered along ``path`` (east,
    north metres): one photo per position, looking near the walking direction."""
    photos, compass = [], []
    for i, pano in enumerate(panos):
        move = path[min(i + 1, len(path) - 1)] - path[max(i - 1, 0)]
        walking = float(np.degrees(np.arctan2(move[0], move[1])))  # east of north
        look = walking + rng.uniform(-LOOK_AROUND_DEG, LOOK_AROUND_DEG)
        width = max(64, round(pano.shape[1] * fov_deg / 360.0))  # the panorama's resolution
        photo = pano_to_pinhole(
            pano,
            fov_deg=fov_deg,
            heading_deg=look,
            pitch_deg=rng.uniform(-PITCH_DEG, PITCH_DEG),
            roll_deg=rng.uniform(-ROLL_DEG, ROLL_DEG),
            size=(max(48, round(width * ASPECT)), width),
        )
        photos.append(photo)
        compass.append(float((look + rng.normal(0.0, compass_sigma_deg)) % 360.0))
    return photos, compass
