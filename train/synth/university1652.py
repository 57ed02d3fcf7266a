"""Write a synthetic dataset in the University-1652 layout (drone, satellite, street views).

Each location is a building (or, where buildings run out, a street point) that a drone orbits:
``drone_per_location`` frames from log-uniform heights (default 40..250 m), any heading and a pitch
of 0..45 degrees from nadir, aimed at the location so that it stays in the image centre; one
north-up satellite tile centred on it; ``street_per_location`` level street photos from the
nearest free street points, looking at it. Every view draws its own domain gap. Train
locations come from towns never used for test (cross-area); the test gallery adds
``distractors`` satellite tiles of test-town locations that have no query, as the release's
extra gallery buildings. Ids are 4-digit strings, unique over both splits.

Files (``NN`` = 01 .. ``drone_per_location``, ``K`` = 01 .. ``street_per_location``)::

    train/drone/{id}/image-NN.jpeg        test/query_drone/{id}/image-NN.jpeg
    train/satellite/{id}/{id}.jpg         test/gallery_drone/{id}/image-NN.jpeg   (same bytes)
    train/street/{id}/K.jpg               test/query_satellite/{id}/{id}.jpg
                                          test/gallery_satellite/{id}/{id}.jpg   (+ distractors)
                                          test/query_street/{id}/K.jpg, test/gallery_street/...
    world_locations.csv   split,id,lat,lon,town,east_m,north_m   (tile centres; written last;
                          the real release has no such file and loaders must not need it)

Usage::

    write_university1652(cfg, functools.partial(run_u1652_jobs, workers=4))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from d4g_edge.fileio import atomic_write
from train.datasets.university1652 import LOCATIONS_FILE, LOCATIONS_HEADER

from ._config import SynthConfig
from ._pairs import STREAM_IDS, STREAM_POINTS, STREAM_TOWNS, STREAM_VIEWS
from ._render import run_jobs
from ._towns import TownSpec, derived_seed, get_world, split_counts, town_specs

BASE_LATLON = (42.36, -71.09)  # a university town; the towns are laid out east/south of it
OWNED = ("train", "test", LOCATIONS_FILE)
MAX_PITCH_DEG = 45.0
STREET_FOV_DEG = 90.0
STREAM_CAMERAS = 5
KINDS = ("satellite", "drone", "street")


@dataclass(frozen=True)
class Location:
    split: str  # "train" | "test" (queries and gallery) | "distractor" (test gallery only)
    town: TownSpec
    town_index: int
    east: float
    north: float
    lat: float
    lon: float


@dataclass(frozen=True)
class U1652Job:
    """One view to one or more files (every path receives the same bytes)."""

    town: TownSpec
    kind: str  # one of KINDS
    position_en: tuple[float, float]  # tile centre or camera position, local metres
    size: int  # square image side, pixels
    seed: int
    paths: tuple[str, ...]
    gsd_m: float = 0.0  # satellite
    altitude_m: float = 0.0  # drone
    pitch_deg: float = 0.0  # drone
    heading_deg: float = 0.0  # drone and street
    gap_strength: float = 1.0
    jpeg_quality: int = 92


def render_u1652(job: U1652Job) -> np.ndarray:
    """The job's (size, size, 3) uint8 image; each view draws its own domain gap."""
    from train.world import DomainGap

    world = get_world(job.town)
    rng = np.random.default_rng(job.seed)
    if job.kind == "satellite":
        gap = DomainGap.sample(rng, job.gap_strength)
        return world.render_satellite(job.position_en, job.size, job.gsd_m, gap=gap, rng=rng)
    if job.kind == "drone":
        gap = DomainGap.sample_drone(rng, job.gap_strength)
        return world.render_drone(
            job.position_en,
            job.altitude_m,
            job.pitch_deg,
            job.heading_deg,
            height=job.size,
            width=job.size,
            gap=gap,
            rng=rng,
        )
    if job.kind == "street":
        gap = DomainGap.sample(rng, job.gap_strength)
        return world.render_pinhole(
            job.position_en,
            job.heading_deg,
            STREET_FOV_DEG,
            height=job.size,
            width=job.size,
            gap=gap,
            rng=rng,
        )
    raise ValueError(f"unknown job kind {job.kind!r}; expected one of {KINDS}")


def run_u1652_jobs(jobs: Sequence[U1652Job], workers: int = 1, desc: str = "render") -> None:
    """Render and write every job in ``workers`` processes (``_render.run_jobs``)."""
    run_jobs(jobs, workers, desc, render_fn=render_u1652)


def pick_locations(world, n: int, seed: int, margin_m: float, spacing_m: float) -> np.ndarray:
    """(n, 2) east/north points >= ``spacing_m`` apart and >= ``margin_m`` inside the town:
    building centres in random order first, then free street points."""
    from train.world._scene import BUILDING

    rng = np.random.default_rng(seed)
    e0, n0, e1, n1 = world.extent_m
    objs = world.scene.objects
    cand = objs.centre[objs.kind == BUILDING]
    cand = cand[rng.permutation(len(cand))]
    chosen: list[np.ndarray] = []

    def take(points: np.ndarray) -> None:
        for p in points:
            if len(chosen) >= n:
                return
            inside = (
                e0 + margin_m <= p[0] <= e1 - margin_m and n0 + margin_m <= p[1] <= n1 - margin_m
            )
            if inside and all(np.hypot(*(p - q)) >= spacing_m for q in chosen):
                chosen.append(p)

    take(cand)
    if len(chosen) < n:
        take(world.sample_street_points(8 * n, rng, margin_m=margin_m))
    if len(chosen) < n:
        raise ValueError(
            f"a {world.scene.size_m:.0f} m town holds only {len(chosen)} of {n} locations "
            f"{spacing_m:.0f} m apart; lower --pairs-per-town (more towns) or raise --town-size-m"
        )
    return np.asarray(chosen, dtype=np.float64)


def plan_locations(cfg: SynthConfig) -> list[Location]:
    """Train, test and distractor locations; train towns first, then the test towns."""
    per_town = cfg.pairs_per_town
    n_dis = cfg.n_distractors
    n_train_towns = math.ceil(cfg.train / per_town)
    n_test_towns = math.ceil((cfg.test + n_dis) / per_town)
    towns = town_specs(
        cfg.seed, 0, n_train_towns + n_test_towns, BASE_LATLON, cfg.town_size_m, STREAM_TOWNS
    )
    margin = 0.75 * cfg.tile_m  # > half the tile diagonal: the whole tile lies inside the town
    out: list[Location] = []
    test_splits = ["test"] * cfg.test + ["distractor"] * n_dis
    for first, count, total, splits in (
        (0, n_train_towns, cfg.train, ["train"] * cfg.train),
        (n_train_towns, n_test_towns, cfg.test + n_dis, test_splits),
    ):
        i = 0
        for t, n in zip(range(first, first + count), split_counts(total, count), strict=True):
            world = get_world(towns[t])
            seed = derived_seed(cfg.seed, STREAM_POINTS, towns[t].seed)
            pts = pick_locations(world, n, seed, margin, cfg.tile_m / 2)
            for e, nn in pts:
                lat, lon = world.georef.metres_to_latlon(e, nn)
                # the csv is the ground truth: round first, then centre the views there
                lat, lon = round(float(lat), 7), round(float(lon), 7)
                pe, pn = (float(v) for v in world.georef.latlon_to_metres(lat, lon))
                out.append(Location(splits[i], towns[t], t, pe, pn, lat, lon))
                i += 1
    return out


def _drone_cameras(cfg: SynthConfig, world, loc: Location, seed: int):
    """(position, altitude, pitch, heading) per frame, aimed at the location."""
    rng = np.random.default_rng(seed)
    e0, n0, e1, n1 = world.extent_m
    cams = []
    for _ in range(cfg.drone_per_location):
        lo, hi = np.log([cfg.drone_altitude_min_m, cfg.drone_altitude_max_m])
        alt = float(np.exp(rng.uniform(lo, hi)))
        heading = float(rng.uniform(0.0, 360.0))
        pitch = float(rng.uniform(0.0, MAX_PITCH_DEG))
        h = np.radians(heading)
        back_dir = np.array([-np.sin(h), -np.cos(h)])
        # how far the drone may stand back before leaving the town (1 m inside its border)
        room = []
        for d, lo, hi, p in ((back_dir[0], e0, e1, loc.east), (back_dir[1], n0, n1, loc.north)):
            if abs(d) > 1e-9:
                room.append(((hi - 1.0 - p) if d > 0 else (p - lo - 1.0)) / abs(d))
        back = min(alt * np.tan(np.radians(pitch)), *room)
        pitch = float(np.degrees(np.arctan2(max(back, 0.0), alt)))
        pos = (loc.east + back_dir[0] * back, loc.north + back_dir[1] * back)
        cams.append((pos, alt, pitch, heading))
    return cams


def _street_cameras(cfg: SynthConfig, world, loc: Location, seed: int):
    """(position, heading to the location) of the nearest free street points."""
    if cfg.street_per_location == 0:
        return []
    rng = np.random.default_rng(seed)
    pts = world.sample_street_points(16 * cfg.street_per_location, rng, margin_m=1.0)
    d = np.hypot(pts[:, 0] - loc.east, pts[:, 1] - loc.north)
    near = pts[np.argsort(d, kind="stable")[: cfg.street_per_location]]
    return [
        ((float(e), float(n)), float(np.degrees(np.arctan2(loc.east - e, loc.north - n))))
        for e, n in near
    ]


def _folders(split: str) -> dict[str, tuple[str, ...]]:
    if split == "train":
        return {"drone": ("train/drone",), "sat": ("train/satellite",), "street": ("train/street",)}
    if split == "test":
        return {
            "drone": ("test/query_drone", "test/gallery_drone"),
            "sat": ("test/query_satellite", "test/gallery_satellite"),
            "street": ("test/query_street", "test/gallery_street"),
        }
    return {"drone": (), "sat": ("test/gallery_satellite",), "street": ()}


def location_jobs(cfg: SynthConfig, loc: Location, loc_id: str, key: int) -> list[U1652Job]:
    """Every view of one location; ``key`` (its plan index) seeds them."""
    world = get_world(loc.town)
    out = cfg.out
    dirs = _folders(loc.split)
    common = dict(town=loc.town, gap_strength=cfg.gap_strength, jpeg_quality=cfg.jpeg_quality)
    jobs = [
        U1652Job(
            kind="satellite",
            position_en=(loc.east, loc.north),
            size=cfg.sat_size,
            seed=derived_seed(cfg.seed, STREAM_VIEWS, key, 0),
            paths=tuple(str(out / d / loc_id / f"{loc_id}.jpg") for d in dirs["sat"]),
            gsd_m=cfg.gsd_m,
            **common,
        )
    ]
    if dirs["drone"]:
        cams = _drone_cameras(cfg, world, loc, derived_seed(cfg.seed, STREAM_CAMERAS, key, 0))
        for j, (pos, alt, pitch, heading) in enumerate(cams, start=1):
            jobs.append(
                U1652Job(
                    kind="drone",
                    position_en=pos,
                    size=cfg.drone_px,
                    seed=derived_seed(cfg.seed, STREAM_VIEWS, key, 1, j),
                    paths=tuple(
                        str(out / d / loc_id / f"image-{j:02d}.jpeg") for d in dirs["drone"]
                    ),
                    altitude_m=alt,
                    pitch_deg=pitch,
                    heading_deg=heading,
                    **common,
                )
            )
    if dirs["street"]:
        cams = _street_cameras(cfg, world, loc, derived_seed(cfg.seed, STREAM_CAMERAS, key, 1))
        for k, (pos, heading) in enumerate(cams, start=1):
            jobs.append(
                U1652Job(
                    kind="street",
                    position_en=pos,
                    size=cfg.drone_px,
                    seed=derived_seed(cfg.seed, STREAM_VIEWS, key, 2, k),
                    paths=tuple(str(out / d / loc_id / f"{k:02d}.jpg") for d in dirs["street"]),
                    heading_deg=heading,
                    **common,
                )
            )
    return jobs


def write_university1652(cfg: SynthConfig, run: Callable[[Sequence[U1652Job]], None]) -> list[dict]:
    """Render and write every file; returns the towns used (for ``synth_info.json``)."""
    locs = plan_locations(cfg)
    rng = np.random.default_rng(derived_seed(cfg.seed, STREAM_IDS))
    ids = [f"{i:04d}" for i in rng.permutation(len(locs))]
    jobs = [
        job
        for key, (loc, i) in enumerate(zip(locs, ids, strict=True))
        for job in location_jobs(cfg, loc, i, key)
    ]
    run(jobs)
    rows = [",".join(LOCATIONS_HEADER) + "\n"]  # the loader's own header
    for loc, i in sorted(zip(locs, ids, strict=True), key=lambda li: li[1]):
        split = "train" if loc.split == "train" else "test"
        rows.append(
            f"{split},{i},{loc.lat:.7f},{loc.lon:.7f},{loc.town_index},{loc.east:.3f},{loc.north:.3f}\n"
        )
    atomic_write(cfg.out / LOCATIONS_FILE, "".join(rows))  # last: the run is complete
    seen: dict[TownSpec, str] = {}
    for loc in locs:
        seen.setdefault(loc.town, "train" if loc.split == "train" else "test")
    return [{"split": s, **dataclasses.asdict(t)} for t, s in seen.items()]
