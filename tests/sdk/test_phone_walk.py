"""The phone walk of benchmarks.bench_track: photos cut where the compass says they look."""

import numpy as np

from benchmarks._phone_walk import LOOK_AROUND_DEG, walk_photos
from d4g_edge.photo import pano_to_pinhole


def _panos(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (64, 256, 3), dtype=np.uint8) for _ in range(n)]


def test_photos_look_near_the_walking_direction_and_the_compass_reads_it():
    path = np.stack([np.zeros(40), np.arange(40) * 5.0], 1)  # walking north
    photos, compass = walk_photos(_panos(40), path, np.random.default_rng(1), 70.0, 0.0)
    assert len(photos) == 40 and all(p.shape == (48, 64, 3) for p in photos)
    off = (np.asarray(compass) + 180.0) % 360.0 - 180.0  # north = 0
    assert np.abs(off).max() <= LOOK_AROUND_DEG and off.std() > 5.0  # looks around


def test_a_noiseless_compass_gives_the_photo_its_heading():
    path = np.stack([np.arange(3) * 5.0, np.zeros(3)], 1)  # walking east
    panos = _panos(3)
    rng = np.random.default_rng(7)
    photos, compass = walk_photos(panos, path, rng, 90.0, 0.0)
    # replaying the generator: the same draws give the same pose
    replay = np.random.default_rng(7)
    for pano, photo, heading in zip(panos, photos, compass, strict=True):
        look = 90.0 + replay.uniform(-LOOK_AROUND_DEG, LOOK_AROUND_DEG)
        pitch, roll = replay.uniform(-5, 5), replay.uniform(-3, 3)
        replay.normal(0.0, 0.0)
        assert abs((heading - look + 180) % 360 - 180) < 1e-9
        again = pano_to_pinhole(pano, fov_deg=90.0, heading_deg=look, pitch_deg=pitch,
                                roll_deg=roll, size=photo.shape[:2])  # fmt: skip
        np.testing.assert_array_equal(again, photo)


def test_compass_noise_has_the_stated_spread():
    path = np.stack([np.zeros(300), np.arange(300) * 5.0], 1)
    rng = np.random.default_rng(3)
    _, noisy = walk_photos(_panos(1) * 300, path, rng, 70.0, 10.0)
    _, clean = walk_photos(_panos(1) * 300, path, np.random.default_rng(3), 70.0, 0.0)
    err = (np.asarray(noisy) - np.asarray(clean) + 180.0) % 360.0 - 180.0
    assert 8.5 < err.std() < 11.5 and abs(err.mean()) < 2.0
