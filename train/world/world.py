"""The procedural cross-view world: one seeded 2.5-D town, rendered from above and from the street.

Both views come from the same rasters, so the ground truth is exact: a panorama taken at
``(east, north)`` belongs to the satellite tile centred there. Conventions (see
``.notes/WORLD_API.md``): local metres east/north with the origin at the world raster's
top-left corner (``world.georef``); tiles are north-up; panoramas have north at column
``W/2``, azimuth growing clockwise to the right.

Usage::

    world = World.generate(seed=0, style="suburb")
    rng = np.random.default_rng(0)
    pts = world.sample_street_points(8, rng)
    sat = world.render_satellite(pts[0], gap=DomainGap.sample(rng))
    pano = world.render_panorama(pts[0], gap=DomainGap.sample(rng))
"""

from __future__ import annotations

import zlib
from functools import cached_property

import numpy as np

from d4g_edge.geo import GeoReference
from train.world._drone import render_drone
from train.world._gap import NEUTRAL, DomainGap
from train.world._generate import generate_scene
from train.world._ground import render_view
from train.world._march import MarchAccel
from train.world._satellite import render_satellite
from train.world._scene import Scene

DRONE_NEUTRAL = DomainGap(visibility_m=3000.0)  # aerial haze is thin: kilometres, not 600 m


class OutsideWorldError(ValueError):
    """A requested position or tile is not inside the world."""


class World:
    """A generated town (see module docstring). Cheap to share read-only across workers."""

    def __init__(self, scene: Scene, seed: int, style: str, georef: GeoReference) -> None:
        self.scene, self.seed, self.style, self.georef = scene, seed, style, georef

    @classmethod
    def generate(
        cls,
        seed: int,
        style: str = "suburb",
        size_m: float = 1200.0,
        origin_lat: float = 40.0,
        origin_lon: float = -88.0,
        resolution_m: float = 0.5,
    ) -> World:
        """Draw the town ``(style, seed)``; ``resolution_m`` is the raster cell size."""
        if not 0.1 <= resolution_m <= 2.0:
            raise ValueError(f"resolution_m must be in [0.1, 2.0] m, got {resolution_m}")
        if not 100.0 <= size_m <= 10_000.0:
            raise ValueError(f"size_m must be in [100, 10000] m, got {size_m}")
        scene = generate_scene(seed, style, size_m, resolution_m)
        return cls(scene, int(seed), style, GeoReference(origin_lat, origin_lon, resolution_m))

    # geometry --------------------------------------------------------------------------
    @property
    def extent_m(self) -> tuple[float, float, float, float]:
        """(east_min, north_min, east_max, north_max) in local metres."""
        s = self.scene.size_m
        return (0.0, -s, s, 0.0)

    @property
    def resolution_m(self) -> float:
        return self.scene.res_m

    @cached_property
    def _accel(self) -> MarchAccel:
        return MarchAccel.build(self.scene)

    @cached_property
    def _max_rise_m(self) -> float:
        return float(np.max(np.maximum(self.scene.base_h, self.scene.obj_h)))

    @cached_property
    def _height_bounds(self) -> tuple[float, float]:
        """(lowest terrain, highest surface of any epoch): the slab drone rays are marched in."""
        return float(self.scene.terrain.min()), self.scene.max_height

    def terrain_height(self, pos_en) -> float:
        """Ground elevation (m) at ``pos_en``."""
        r, c = self._cell(pos_en)
        return float(self.scene.terrain[r, c])

    def _cell(self, pos_en) -> tuple[int, int]:
        e, n = float(pos_en[0]), float(pos_en[1])
        e0, n0, e1, n1 = self.extent_m
        if not (e0 <= e < e1 and n0 < n <= n1):
            raise OutsideWorldError(
                f"position (east={e:.1f}, north={n:.1f}) m is outside the world extent "
                f"{self.extent_m}; sample positions with world.sample_street_points()"
            )
        return int(-n / self.resolution_m), int(e / self.resolution_m)

    def _rng(self, rng, pos_en) -> np.random.Generator:
        if rng is not None:
            return rng
        key = np.round(np.asarray(pos_en, dtype=np.float64) * 100).astype(np.int64)
        return np.random.default_rng([self.seed, zlib.crc32(self.style.encode()), *np.abs(key)])

    def sample_street_points(
        self, n: int, rng: np.random.Generator, margin_m: float = 60.0
    ) -> np.ndarray:
        """(n, 2) east/north points in the driving lanes, >= ``margin_m`` from the border."""
        s = self.scene
        e0, n0, e1, n1 = self.extent_m
        p = s.street_pts
        ok = (p[:, 0] >= e0 + margin_m) & (p[:, 0] <= e1 - margin_m)
        ok &= (p[:, 1] >= n0 + margin_m) & (p[:, 1] <= n1 - margin_m)
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            raise OutsideWorldError(
                f"no road lies {margin_m} m inside this {s.size_m:.0f} m world; lower margin_m "
                "or generate a larger world"
            )
        out: list[np.ndarray] = []
        have = 0
        for _ in range(50):
            i = rng.choice(cand, size=max(2 * (n - have), 8))
            lateral = rng.uniform(-0.3, 0.3, len(i)) * s.street_width[i]
            a = s.street_dir[i]
            q = p[i] + np.stack([-np.sin(a), np.cos(a)], axis=1) * lateral[:, None]
            r = np.clip((-q[:, 1] / s.res_m).astype(np.int64), 0, s.size_px - 1)
            c = np.clip((q[:, 0] / s.res_m).astype(np.int64), 0, s.size_px - 1)
            free = (s.obj_id[r, c] == 0) & (s.base_h[r, c] < 0.5)  # not in a car or a crown
            out.append(q[free])
            have += int(free.sum())
            if have >= n:
                break
        pts = np.concatenate(out)[:n]
        if len(pts) < n:
            raise OutsideWorldError(f"found only {len(pts)} of {n} free street points")
        return pts.astype(np.float64)

    # rendering -------------------------------------------------------------------------
    def render_satellite(
        self,
        center_en,
        size_px: int = 256,
        gsd_m: float = 0.3,
        gap: DomainGap | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """North-up tile (size_px, size_px, 3) uint8; see the module docstring for pixels."""
        if size_px < 1 or gsd_m <= 0:
            raise ValueError(f"size_px must be >= 1 and gsd_m > 0, got {size_px}, {gsd_m}")
        self._cell(center_en)
        return render_satellite(
            self.scene,
            center_en,
            size_px,
            gsd_m,
            gap or NEUTRAL,
            self._rng(rng, center_en),
            self._max_rise_m,
        )

    def render_panorama(
        self,
        pos_en,
        height: int = 128,
        width: int = 512,
        eye_height_m: float = 2.0,
        gap: DomainGap | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Equirectangular 360 x 180 degree panorama (height, width, 3) uint8.

        Column c looks at azimuth (c + 0.5) * 360 / W - 180 degrees (north at x = W/2, east
        at 3W/4); row r at elevation 90 - (r + 0.5) * 180 / H degrees.
        """
        if height < 2 or width < 4:
            raise ValueError(f"panorama must be at least 2 x 4 pixels, got {height} x {width}")
        self._cell(pos_en)
        az = (np.arange(width) + 0.5) * (2 * np.pi / width) - np.pi
        el = np.pi / 2 - (np.arange(height) + 0.5) * (np.pi / height)
        el = np.broadcast_to(el[:, None], (height, width))
        return render_view(
            self.scene,
            self._accel,
            pos_en,
            az,
            el,
            eye_height_m,
            gap or NEUTRAL,
            self._rng(rng, pos_en),
            2 * np.pi / width,
            self._max_rise_m,
        )

    def render_pinhole(
        self,
        pos_en,
        heading_deg: float,
        fov_deg: float = 90.0,
        height: int = 128,
        width: int = 128,
        eye_height_m: float = 2.0,
        gap: DomainGap | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Level pinhole view (height, width, 3) uint8 looking at ``heading_deg`` (from north,
        clockwise) with horizontal field of view ``fov_deg``."""
        if not 1.0 <= fov_deg <= 170.0:
            raise ValueError(f"fov_deg must be in [1, 170], got {fov_deg}")
        self._cell(pos_en)
        f = (width / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
        x = (np.arange(width) + 0.5 - width / 2.0) / f
        y = (height / 2.0 - np.arange(height) - 0.5) / f
        az = np.radians(heading_deg) + np.arctan(x)
        el = np.arctan2(y[:, None], np.sqrt(1.0 + x[None, :] ** 2))
        return render_view(
            self.scene,
            self._accel,
            pos_en,
            az,
            el,
            eye_height_m,
            gap or NEUTRAL,
            self._rng(rng, pos_en),
            np.radians(fov_deg) / width,
            self._max_rise_m,
        )

    def render_drone(
        self,
        pos_en,
        altitude_m: float,
        pitch_deg: float,
        heading_deg: float,
        fov_deg: float = 60.0,
        height: int = 128,
        width: int = 128,
        gap: DomainGap | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Drone photo (height, width, 3) uint8 from ``altitude_m`` above the terrain at ``pos_en``.

        The camera looks ``pitch_deg`` from nadir (0 = straight down) towards ``heading_deg``
        (clockwise from north) with horizontal field of view ``fov_deg``; the image's top
        points towards the heading, so pitch 0 / heading 0 is north-up like a satellite tile
        centred on ``pos_en``, and the centre ray of an oblique view meets flat ground about
        ``altitude_m * tan(pitch)`` ahead. ``gap=None`` is a neutral capture with a drone's
        thin haze; :meth:`DomainGap.sample_drone` draws realistic ones (haze, motion blur).
        """
        if not 30.0 <= altitude_m <= 300.0:
            raise ValueError(f"altitude_m must be in [30, 300] m, got {altitude_m}")
        if not 0.0 <= pitch_deg <= 60.0:
            raise ValueError(
                f"pitch_deg must be in [0, 60] degrees from nadir (0 = straight down), "
                f"got {pitch_deg}"
            )
        if not 1.0 <= fov_deg <= 120.0:
            raise ValueError(f"fov_deg must be in [1, 120], got {fov_deg}")
        if height < 2 or width < 2:
            raise ValueError(f"drone frames need at least 2 x 2 pixels, got {height} x {width}")
        self._cell(pos_en)
        return render_drone(
            self.scene,
            pos_en,
            float(altitude_m),
            float(pitch_deg),
            float(heading_deg),
            float(fov_deg),
            int(height),
            int(width),
            gap or DRONE_NEUTRAL,
            self._rng(rng, pos_en),
            self._height_bounds,
        )

    # rigid transforms (geometric augmentation proofs) ---------------------------------------
    def rotated90(self, k: int = 1) -> World:
        """The town turned counter-clockwise by k quarter turns about its centre (k=1: old east
        is new north). Sun azimuths are world-frame: render with ``gap.rotated90(k)`` to keep
        the same shadows. The georeference is kept (the turned town is not a real place)."""
        return World(self.scene.rotated90(k), self.seed, self.style, self.georef)

    def flipped(self) -> World:
        """The town mirrored east <-> west (render with ``gap.flipped()``)."""
        return World(self.scene.flipped(), self.seed, self.style, self.georef)
