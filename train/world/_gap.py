"""The domain gap between the satellite capture and the street-level capture.

Every rendered view gets its own :class:`DomainGap`; the *difference* between the two views'
gaps is what a cross-view model has to bridge: season (vegetation colour), white balance,
sun direction (shadows, facade shading), capture epoch (buildings and cars that appeared or
disappeared in between), sensor noise, optical blur and exposure.

Usage::

    rng = np.random.default_rng(0)
    sat_gap = DomainGap.sample(rng, strength=1.0)
    grd_gap = DomainGap.sample(rng, strength=1.0)
    tile = world.render_satellite((400.0, -300.0), gap=sat_gap, rng=rng)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


class DomainGapError(ValueError):
    """A DomainGap parameter is outside its documented range."""


@dataclass(frozen=True)
class DomainGap:
    """Capture conditions of one view. The default instance is the neutral capture.

    Angles are degrees; the sun azimuth is clockwise from north in the *world* frame (so a
    rotated/flipped world needs :meth:`rotated90` / :meth:`flipped` to keep its shadows).
    """

    season: float = 0.0  # 0 lush summer .. 0.5 dry late summer .. 1 late autumn
    colour_shift: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gains (RGB)
    sun_azimuth_deg: float = 135.0
    sun_elevation_deg: float = 50.0
    # Capture epoch in [0, 1]; each changeable object (building, car) flips presence at its own
    # epoch, so two views whose time_gap differ by dt disagree on about dt of those objects.
    time_gap: float = 0.0
    noise_sigma: float = 0.0  # Gaussian sensor noise, in 0..255 units
    blur_sigma: float = 0.0  # Gaussian optical blur, pixels
    exposure: float = 1.0  # multiplicative brightness
    saturation: float = 1.0  # 1 = unchanged, 0 = grey
    visibility_m: float = 600.0  # distance haze e-folding length (ground views only)
    # Each field/lawn/forest varies on its own between captures (harvest, mowing, drought):
    # up to +-0.5 season and +-25 % brightness per field.
    field_variation: float = 0.0
    # Each material looks different per sensor/capture (fresh vs worn asphalt, wet vs dry
    # ground, a satellite's tone curve): log-brightness sd 0.35 and chroma sd 0.04 at 1.0.
    material_variation: float = 0.0
    variation_seed: int = 0  # draws the per-field and per-material variations
    # Satellite only: view angle from nadir and the azimuth towards the satellite; tall
    # objects lean away from it and the walls facing it show.
    off_nadir_deg: float = 0.0
    off_nadir_azimuth_deg: float = 0.0
    cloud_cover: float = 0.0  # satellite only: share of the tile under soft cloud shadow
    # Drone only: a moving camera smears the frame along one image direction (degrees
    # counter-clockwise from the image x axis) over this many pixels.
    motion_blur_px: float = 0.0
    motion_blur_deg: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "season": 0.0 <= self.season <= 1.0,
            "sun_elevation_deg": 5.0 <= self.sun_elevation_deg <= 90.0,
            "time_gap": 0.0 <= self.time_gap <= 1.0,
            "noise_sigma": self.noise_sigma >= 0.0,
            "blur_sigma": self.blur_sigma >= 0.0,
            "exposure": self.exposure > 0.0,
            "saturation": self.saturation >= 0.0,
            "visibility_m": self.visibility_m > 0.0,
            "field_variation": 0.0 <= self.field_variation <= 1.0,
            "material_variation": 0.0 <= self.material_variation <= 1.0,
            "off_nadir_deg": 0.0 <= self.off_nadir_deg <= 45.0,
            "cloud_cover": 0.0 <= self.cloud_cover <= 1.0,
            "motion_blur_px": 0.0 <= self.motion_blur_px <= 20.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise DomainGapError(
                    f"DomainGap.{name}={getattr(self, name)!r} is out of range; see the field "
                    "comments in train/world/_gap.py for the valid range"
                )
        if len(self.colour_shift) != 3 or min(self.colour_shift) <= 0:
            raise DomainGapError(
                f"DomainGap.colour_shift must be 3 positive RGB gains, got {self.colour_shift!r}"
            )

    @classmethod
    def sample(cls, rng: np.random.Generator, strength: float = 1.0) -> DomainGap:
        """A random capture; ``strength`` 0 gives the neutral capture, 1 a realistic spread."""
        if not 0.0 <= strength <= 2.0:
            raise DomainGapError(f"strength must be in [0, 2], got {strength}")
        s = strength
        gains = 1.0 + rng.normal(0.0, 0.07 * s, size=3)
        return cls(
            season=float(np.clip(rng.uniform(0.0, 1.0) * s, 0.0, 1.0)),
            colour_shift=tuple(float(g) for g in np.clip(gains, 0.6, 1.4)),
            sun_azimuth_deg=float(rng.uniform(0.0, 360.0)) if s > 0 else 135.0,
            sun_elevation_deg=float(np.clip(50.0 + rng.uniform(-25.0, 25.0) * s, 5.0, 90.0)),
            time_gap=float(np.clip(rng.uniform(0.0, 0.35) * s, 0.0, 1.0)),
            noise_sigma=float(rng.uniform(0.0, 5.0) * s),
            blur_sigma=float(rng.uniform(0.0, 0.9) * s),
            exposure=float(np.exp(rng.normal(0.0, 0.18 * s))),
            saturation=float(np.clip(1.0 + rng.normal(0.0, 0.15 * s), 0.3, 1.6)),
            visibility_m=float(600.0 * np.exp(rng.normal(0.0, 0.4 * s))),
            field_variation=float(np.clip(rng.uniform(0.5, 1.0) * s, 0.0, 1.0)),
            material_variation=float(np.clip(rng.uniform(0.5, 1.0) * s, 0.0, 1.0)),
            variation_seed=int(rng.integers(0, 2**31)),
            off_nadir_deg=float(np.clip(rng.uniform(0.0, 20.0) * s, 0.0, 45.0)),
            off_nadir_azimuth_deg=float(rng.uniform(0.0, 360.0)),
            cloud_cover=float(np.clip(rng.uniform(-0.3, 0.5) * s, 0.0, 1.0)),
        )

    @classmethod
    def sample_drone(cls, rng: np.random.Generator, strength: float = 1.0) -> DomainGap:
        """A random drone capture: like :meth:`sample` (season, sun, epoch, sensor) but seen
        from a few hundred metres up: thin aerial haze (a visibility of kilometres, not the
        street's hundreds of metres), motion blur of 0..3 px, no satellite off-nadir or
        cloud shadows."""
        base = cls.sample(rng, strength)
        s = strength
        return replace(
            base,
            visibility_m=float(3000.0 * np.exp(rng.normal(0.0, 0.5 * s))),
            blur_sigma=float(rng.uniform(0.0, 0.6) * s),
            motion_blur_px=float(min(rng.uniform(0.0, 3.0) * s, 20.0)),
            motion_blur_deg=float(rng.uniform(0.0, 180.0)),
            off_nadir_deg=0.0,
            cloud_cover=0.0,
        )

    # Geometry helpers: keep the sun fixed relative to a rotated/flipped scene ---------------
    def rotated90(self, k: int = 1) -> DomainGap:
        """The same capture for ``world.rotated90(k)`` (old east becomes new north for k=1)."""
        return replace(
            self,
            sun_azimuth_deg=float((self.sun_azimuth_deg - 90.0 * k) % 360.0),
            off_nadir_azimuth_deg=float((self.off_nadir_azimuth_deg - 90.0 * k) % 360.0),
        )

    def flipped(self) -> DomainGap:
        """The same capture for ``world.flipped()`` (east <-> west mirror)."""
        return replace(
            self,
            sun_azimuth_deg=float((-self.sun_azimuth_deg) % 360.0),
            off_nadir_azimuth_deg=float((-self.off_nadir_azimuth_deg) % 360.0),
        )

    def material_gains(self) -> np.ndarray:
        """(256, 3) float32 RGB gain per base-layer material for this capture."""
        if self.material_variation <= 0.0:
            return np.ones((256, 3), np.float32)
        z = np.random.default_rng([self.variation_seed, 1]).normal(size=(256, 4))
        v = self.material_variation
        return np.exp(0.35 * v * z[:, :1] + 0.04 * v * z[:, 1:]).astype(np.float32)

    def sun_vector(self) -> np.ndarray:
        """Unit vector towards the sun as (east, north, up)."""
        az, el = np.radians(self.sun_azimuth_deg), np.radians(self.sun_elevation_deg)
        return np.array([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])


NEUTRAL = DomainGap()
