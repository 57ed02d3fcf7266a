"""Paired augmentation that keeps the panorama and its satellite tile geometrically consistent.

Conventions (shared with :mod:`train.world`): a panorama's north is at column ``W/2`` and
azimuth grows clockwise to the right; a tile is north-up. Hence

* a horizontal flip of the tile (east <-> west) is ``np.fliplr`` of the panorama, and
* ``np.rot90(tile, k)`` (counter-clockwise, east content moves to the top) is
  ``np.roll(pano, -k * W // 4, axis=1)``: the old east becomes the new north.

A drone camera frame (University-1652) is not a panorama: it turns and mirrors like the tile
(``frame=True``), and as its heading is arbitrary anyway the pair stays a true pair.

Photometric jitter (brightness, contrast, saturation) is drawn independently per view,
because the two views come from different sensors at different times anyway.

Usage::

    aug = PairAugment(flip_p=0.5, rotate_p=0.75)
    ground, sat = aug(ground_u8, sat_u8, np.random.default_rng(0))  # float32 [0, 1], HWC
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def flip_pair(ground: np.ndarray, sat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror both views east <-> west (a panorama or a camera frame: both are ``fliplr``)."""
    return ground[:, ::-1], sat[:, ::-1]


def rotate_pair(
    ground: np.ndarray, sat: np.ndarray, k: int, frame: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the tile by ``k`` quarter turns counter-clockwise and roll the panorama to match
    (``frame``: the query is a camera frame, turned like the tile)."""
    if frame:
        return np.rot90(ground, k), np.rot90(sat, k)
    width = ground.shape[1]
    if width % 4:
        raise ValueError(f"panorama width must be a multiple of 4 to rotate by 90 deg, got {width}")
    if sat.shape[0] != sat.shape[1]:
        raise ValueError(f"satellite tile must be square to rotate, got {sat.shape[:2]}")
    return np.roll(ground, -k * width // 4, axis=1), np.rot90(sat, k)


@dataclass(frozen=True)
class PairAugment:
    """Random flip/rotation of the pair plus per-view colour jitter (0 disables a part)."""

    flip_p: float = 0.5
    rotate_p: float = 0.75  # when it fires, k is uniform in {1, 2, 3} (Sample4Geo)
    brightness: float = 0.2  # factor uniform in [1 - b, 1 + b]
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        for name in ("flip_p", "rotate_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PairAugment.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"PairAugment.{name} must be in [0, 1), got {getattr(self, name)}")

    def geometric(
        self, ground: np.ndarray, sat: np.ndarray, rng: np.random.Generator, frame: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        if rng.random() < self.flip_p:
            ground, sat = flip_pair(ground, sat)
        if rng.random() < self.rotate_p:
            ground, sat = rotate_pair(ground, sat, int(rng.integers(1, 4)), frame)
        return ground, sat

    def photometric(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 or [0, 1] float HWC -> jittered float32 in [0, 1]."""
        x = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601
        # Each jitter is skipped at magnitude 0, so a disabled jitter is an exact identity.
        if self.brightness:
            x = x * np.float32(1.0 + rng.uniform(-self.brightness, self.brightness))
        if self.contrast:
            mean = np.float32((x @ luma).mean())
            x = (x - mean) * np.float32(1.0 + rng.uniform(-self.contrast, self.contrast)) + mean
        if self.saturation:
            grey = (x @ luma)[..., None]
            x = grey + (x - grey) * np.float32(1.0 + rng.uniform(-self.saturation, self.saturation))
        return np.clip(x, 0.0, 1.0, out=x)

    def __call__(
        self, ground: np.ndarray, sat: np.ndarray, rng: np.random.Generator, frame: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        ground, sat = self.geometric(ground, sat, rng, frame)
        return self.photometric(ground, rng), self.photometric(sat, rng)


# Geometric variants: the 8 flips x quarter turns applied to both views consistently, so a
# cached teacher embedding can be looked up by (variant, pair) (train.method.teacher_cache).
NUM_VARIANTS = 8


def apply_variant(ground: np.ndarray, sat: np.ndarray, variant: int, frame: bool = False):
    """Variant ``v`` = flip ``v // 4`` then ``v % 4`` counter-clockwise quarter turns
    (``frame``: the query is a camera frame, see the module docstring)."""
    if not 0 <= variant < NUM_VARIANTS:
        raise ValueError(f"variant must be in [0, {NUM_VARIANTS}), got {variant}")
    flip, k = divmod(variant, 4)
    if flip:
        ground, sat = flip_pair(ground, sat)
    if k:
        ground, sat = rotate_pair(ground, sat, k, frame)
    return ground, sat
