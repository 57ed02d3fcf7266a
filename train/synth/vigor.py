"""Write a synthetic dataset in the official VIGOR layout (four cities, overlapping tiles).

Each city is ``vigor_districts`` towns (districts) side by side near the real city's
coordinates, each of another style, so every city has every kind of town (VIGOR's four cities
are all dense US cities: cross-area means new places of a known kind, not unseen
architecture); with one district per city, each city is a single town of its own style.
Tiles lie on a grid with a stride of half a tile (50% overlap, as in VIGOR), so every
panorama falls inside exactly four tiles: the positive is the one whose central quarter
(|offset| <= a quarter tile on both axes) holds it, the other three are its semi-positives.
Offsets are written as VIGOR does: ``delta_lat delta_lon`` = tile centre minus panorama,
north and east, in tile pixels. Only tiles that cover some panorama are rendered.

Cross-area: NewYork + Seattle hold the ``train`` panoramas and Chicago + SanFrancisco the
``test`` ones. Same-area: each city's panoramas are split into
``same_area_balanced_{train,test}.txt`` in the train:test proportion.

Files (``--vigor-layout official``; ``alt`` uses satellite/{city} and ground/{city})::

    {city}/satellite/satellite_{lat}_{lon}.png    {city}/panorama/{id},{lat},{lon},.jpg
    splits/{city}/satellite_list.txt, pano_label_balanced.txt,
    splits/{city}/same_area_balanced_train.txt, same_area_balanced_test.txt   written last

Usage::

    write_vigor(cfg, run_jobs)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from d4g_edge.fileio import atomic_write
from d4g_edge.geo import offset_latlon
from train.datasets.vigor import CITIES, CROSS_CITIES, satellite_name

from ._config import SynthConfig
from ._pairs import STREAM_IDS, STREAM_POINTS, STREAM_TOWNS, STREAM_VIEWS
from ._photos import run_with_photos
from ._render import ViewJob
from ._towns import TownSpec, derived_seed, get_world, split_counts, street_points

CITY_ORIGINS = {  # top-left corners near the real cities
    "Chicago": (41.90, -87.65),
    "NewYork": (40.75, -74.00),
    "SanFrancisco": (37.79, -122.43),
    "Seattle": (47.62, -122.36),
}
OWNED = ("splits", "satellite", "ground", "photos", "photos.csv", *CITIES)
_GRID_OFFSET = 1 << 20  # SeedSequence entropy must be non-negative; grid indices may not be
_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def covering_tiles(east: float, north: float, stride: float) -> list[tuple[int, int]]:
    """Grid indices of the 4 tiles holding a point: positive first, then the 3 others."""
    i0, j0 = round(east / stride), round(north / stride)
    i1 = i0 + (1 if east >= i0 * stride else -1)
    j1 = j0 + (1 if north >= j0 * stride else -1)
    return [(i0, j0), (i1, j0), (i0, j1), (i1, j1)]


def same_area_train_counts(city_sizes: list[int], n_train: int) -> list[int]:
    """Same-area train panoramas per city: ``n_train`` in all, proportional to city size.

    Largest-remainder rounding (ties to the earlier city) keeps the total exact, so the
    same-area protocol has as many training pairs as the cross-area one.
    """
    quota = np.asarray(city_sizes, dtype=np.float64) * n_train / sum(city_sizes)
    counts = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - counts), kind="stable")[: n_train - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _dirs(cfg: SynthConfig, city: str):
    if cfg.vigor_layout == "official":
        return cfg.out / city / "satellite", cfg.out / city / "panorama"
    return cfg.out / "satellite" / city, cfg.out / "ground" / city


def _district_towns(cfg: SynthConfig, c: int) -> list[TownSpec]:
    """The towns of city ``c``: ``vigor_districts`` of them on a square-ish grid, a street
    apart, each of its own style (district ``d`` of city ``c`` takes style ``c + d``)."""
    from train.world import TOWN_STYLES

    lat0, lon0 = CITY_ORIGINS[CITIES[c]]
    cols = int(np.ceil(np.sqrt(cfg.vigor_districts)))
    pitch = cfg.town_size_m + cfg.tile_m  # districts never share a tile
    towns = []
    for d in range(cfg.vigor_districts):
        row, col = divmod(d, cols)
        lat, lon = offset_latlon(lat0, lon0, col * pitch, -row * pitch)
        # one district per city keeps the original seeds and styles
        seed = (
            derived_seed(cfg.seed, STREAM_TOWNS, c)
            if d == 0
            else derived_seed(cfg.seed, STREAM_TOWNS, c, d)
        )
        style = TOWN_STYLES[(c + d) % len(TOWN_STYLES)]
        towns.append(TownSpec(seed, style, float(lat), float(lon), cfg.town_size_m))
    return towns


def _city_plan(cfg: SynthConfig, c: int, city: str, n: int, rng: np.random.Generator):
    """(towns, tile jobs, pano jobs, satellite names, label lines) of one city."""
    towns = _district_towns(cfg, c)
    stride, gsd = cfg.tile_m / 2, cfg.gsd_m
    sat_dir, pano_dir = _dirs(cfg, city)
    tile_jobs, pano_jobs, lines, names = [], [], [], []
    for d, (town, count) in enumerate(zip(towns, split_counts(n, len(towns)), strict=True)):
        world = get_world(town)
        geo = world.georef
        common = dict(town=town, gap_strength=cfg.gap_strength, jpeg_quality=cfg.jpeg_quality)
        # 1.5 tiles of margin: the farthest covering tile reaches one tile beyond the panorama.
        point_seed = (
            derived_seed(cfg.seed, STREAM_POINTS, c)
            if d == 0
            else derived_seed(cfg.seed, STREAM_POINTS, c, d)
        )
        points = street_points(world, count, point_seed, 1.6 * cfg.tile_m)
        tiles: dict[tuple[int, int], tuple[str, float, float]] = {}
        for k, (e, nn) in enumerate(points):
            lat, lon = geo.metres_to_latlon(e, nn)
            # The file name is the ground truth: round first, then place the camera there.
            lat, lon = round(float(lat), 6), round(float(lon), 6)
            pe, pn = (float(v) for v in geo.latlon_to_metres(lat, lon))
            pano = f"{''.join(rng.choice(_ALPHABET, 22))},{lat:.6f},{lon:.6f},.jpg"
            parts = [pano]
            for i, j in covering_tiles(pe, pn, stride):
                if (i, j) not in tiles:
                    tlat, tlon = (float(v) for v in geo.metres_to_latlon(i * stride, j * stride))
                    tiles[(i, j)] = (satellite_name(tlat, tlon), i * stride, j * stride)
                name, ce, cn = tiles[(i, j)]
                parts += [name, f"{(cn - pn) / gsd:.4f}", f"{(ce - pe) / gsd:.4f}"]
            lines.append(" ".join(parts))
            view_key = (c, 1, k) if d == 0 else (c, 1, k, d)
            pano_jobs.append(
                ViewJob(
                    kind="panorama",
                    position_en=(pe, pn),
                    size=cfg.pano_size,
                    gsd_m=gsd,
                    seed=derived_seed(cfg.seed, STREAM_VIEWS, *view_key),
                    paths=(str(pano_dir / pano),),
                    **common,
                )
            )
        for (i, j), (name, ce, cn) in sorted(tiles.items()):
            key = (c, 0, i + _GRID_OFFSET, j + _GRID_OFFSET) + (() if d == 0 else (d,))
            tile_jobs.append(
                ViewJob(
                    kind="satellite",
                    position_en=(ce, cn),
                    size=(cfg.sat_size, cfg.sat_size),
                    gsd_m=gsd,
                    seed=derived_seed(cfg.seed, STREAM_VIEWS, *key),
                    paths=(str(sat_dir / name),),
                    **common,
                )
            )
            names.append(name)
    return towns, tile_jobs, pano_jobs, names, lines


def write_vigor(cfg: SynthConfig, run: Callable[[Sequence[ViewJob]], None]) -> list[dict]:
    """Render and write every file; returns one town record per city."""
    counts = dict(zip(CROSS_CITIES["train"], split_counts(cfg.train, 2), strict=True))
    counts |= dict(zip(CROSS_CITIES["test"], split_counts(cfg.test, 2), strict=True))
    rng = np.random.default_rng(derived_seed(cfg.seed, STREAM_IDS))
    plans = {city: _city_plan(cfg, c, city, counts[city], rng) for c, city in enumerate(CITIES)}
    run_with_photos(  # the photos (and photos.csv) only with cfg.photos
        cfg,
        run,
        [
            job
            for _, tile_jobs, pano_jobs, _, _ in plans.values()
            for job in (*tile_jobs, *pano_jobs)
        ],
    )

    same_counts = same_area_train_counts([len(p[4]) for p in plans.values()], cfg.train)
    for (city, (_, _, _, sat_names, lines)), n_train in zip(
        plans.items(), same_counts, strict=True
    ):
        order = rng.permutation(len(lines))
        same_train = sorted(order[:n_train].tolist())
        same_test = sorted(order[n_train:].tolist())
        split_dir = cfg.out / "splits" / city
        text = lambda rows: "".join(r + "\n" for r in rows)  # noqa: E731
        atomic_write(split_dir / "satellite_list.txt", text(sat_names))
        atomic_write(split_dir / "same_area_balanced_train.txt", text(lines[i] for i in same_train))
        atomic_write(split_dir / "same_area_balanced_test.txt", text(lines[i] for i in same_test))
        atomic_write(split_dir / "pano_label_balanced.txt", text(lines))
    return [
        {"city": city, "district": d, **dataclasses.asdict(town)}
        for city, plan in plans.items()
        for d, town in enumerate(plan[0])
    ]
