"""Geotagged query folders for fitting and measuring trust (``d4g-edge calibrate``, bench_trust).

Writes, from the procedural world of the bundled default (the world's VIGOR layout, its
held-out test cities indexed), folders of ``IMAGE.jpg`` + ``IMAGE.jpg.json`` sidecars
(``{"lat", "lon", "heading_deg"}``, or ``{"in_map": false}`` for a frame that shows no place
of the map), the format ``d4g-edge calibrate --queries`` reads:

``fit/`` (what the default's calibration is fitted on; never reported on)
  - ``inmap``: panoramas at new street points of the bundle's own towns (another seed than
    the VIGOR test panoramas, which are the reported set);
  - ``outmap``: the training cities' panoramas of ``--data`` (real places the bundle does not
    hold: their lat/lon lie outside its tiles);
  - ``wrongview``: the training cities' satellite tiles, marked ``in_map: false``.

``report/`` (measured by ``benchmarks.bench_trust``; never fitted on)
  - ``outmap``: panoramas of fresh towns of every style (new seeds, far from any city);
  - ``degenerate``: constant, noise, tiny and extreme-aspect frames, blurred noise,
    gradients, satellite tiles of the mapped cities and drone frames over them.

The in-map reported set is the VIGOR test split of ``--data`` itself (1,200 panoramas).

Usage::

    python -m train.synth --layout vigor --out data/vigor --train 3600 --test 1200 \\
        --town-size-m 600 --workers 2
    python -m benchmarks.trust_data --data data/vigor --out data/trust --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from d4g_edge.log import logger, setup_logging
from train.datasets.vigor import CITIES, CROSS_CITIES, detect_layout
from train.synth._config import SynthConfig
from train.synth._render import ViewJob, run_jobs, save_image_atomic
from train.synth._towns import TownSpec, derived_seed, get_world, street_points
from train.synth.vigor import _district_towns

FIT_SEED = 7_001  # street points of the fit set: not the VIGOR test points (seed 0 streams)
REPORT_SEED = 7_002


def _sidecar(image: Path, data: dict) -> None:
    image.with_name(image.name + ".json").write_text(json.dumps(data))


def _pano_jobs(towns, n: int, seed: int, out: Path, cfg: SynthConfig) -> list[ViewJob]:
    """``n`` panoramas at street points of ``towns`` (evenly), sidecars written now."""
    jobs = []
    per = [n // len(towns) + (i < n % len(towns)) for i in range(len(towns))]
    for t, (town, count) in enumerate(zip(towns, per, strict=True)):
        world = get_world(town)
        points = street_points(world, count, derived_seed(seed, t), 1.6 * cfg.tile_m)
        for k, (e, nn) in enumerate(points):
            lat, lon = (float(v) for v in world.georef.metres_to_latlon(e, nn))
            path = out / f"t{t:02d}_{k:04d}.jpg"
            _sidecar(path, {"lat": lat, "lon": lon, "heading_deg": 0.0})
            jobs.append(
                ViewJob(
                    town=town,
                    kind="panorama",
                    position_en=(float(e), float(nn)),
                    size=cfg.pano_size,
                    gsd_m=cfg.gsd_m,
                    seed=derived_seed(seed, 1, t, k),
                    paths=(str(path),),
                )
            )
    return jobs


def _vigor_cfg(data: Path) -> SynthConfig:
    info = json.loads((data / "synth_info.json").read_text())
    cfg = info["settings"]
    return SynthConfig(
        layout="vigor",
        out=data,
        train=int(cfg.get("train", 3600)),
        test=int(cfg.get("test", 1200)),
        seed=int(cfg.get("seed", 0)),
        town_size_m=float(cfg.get("town_size_m", 600.0)),
        vigor_districts=int(cfg.get("vigor_districts", 4)),
    )


def _copy_city(data: Path, cities, out: Path, n: int, rng, satellite: bool) -> int:
    """``n`` panoramas (with lat/lon sidecars) or satellite tiles (``in_map: false``) of
    ``cities``, copied from the dataset."""
    files = []
    for city in cities:
        sat_dir, pano_dir = detect_layout(data, city)
        files += sorted((sat_dir if satellite else pano_dir).iterdir())
    pick = rng.choice(len(files), size=min(n, len(files)), replace=False)
    out.mkdir(parents=True, exist_ok=True)
    for i in sorted(pick):
        src = files[i]
        dst = out / f"{src.parent.parent.name}_{i:05d}{src.suffix}"
        shutil.copyfile(src, dst)
        if satellite:
            _sidecar(dst, {"in_map": False, "kind": "satellite tile"})
        else:  # VIGOR names: {id},{lat},{lon},.jpg
            _, lat, lon, _ = src.name.split(",")
            _sidecar(dst, {"lat": float(lat), "lon": float(lon), "heading_deg": 0.0})
    return len(pick)


def degenerate_frames(out: Path, rng, world_town: TownSpec | None = None) -> int:
    """Frames that show no place: each with an ``in_map: false`` sidecar and its kind."""
    out.mkdir(parents=True, exist_ok=True)
    frames: list[tuple[str, np.ndarray]] = []
    for _k in range(15):
        frames.append(("constant", np.full((128, 512, 3), rng.integers(0, 256, 3), np.uint8)))
    frames.append(("black", np.zeros((128, 512, 3), np.uint8)))
    frames.append(("white", np.full((128, 512, 3), 255, np.uint8)))
    for _k in range(15):
        frames.append(("uniform noise", rng.integers(0, 256, (128, 512, 3), dtype=np.uint8)))
    for _k in range(15):
        g = rng.normal(128, rng.uniform(10, 80), (128, 512, 3))
        frames.append(("gaussian noise", np.clip(g, 0, 255).astype(np.uint8)))
    for _k in range(10):
        noise = rng.integers(0, 256, (128, 512, 3), dtype=np.uint8)
        blur = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 8)))
        frames.append(("blurred noise", np.asarray(blur)))
    for _k in range(10):
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, 512)[None, :, None]
        frames.append(
            ("gradient", np.broadcast_to(a + (b - a) * t, (128, 512, 3)).astype(np.uint8))
        )
    for side in (1, 2, 4, 8, 12):
        frames.append(("tiny", rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))
    for h, w in ((1, 1000), (4, 512), (1000, 4), (8, 400), (600, 20)):
        frames.append(("extreme aspect", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    if world_town is not None:  # drone frames over a mapped town: the wrong kind of image
        from train.world import DomainGap

        world = get_world(world_town)
        pts = street_points(world, 20, derived_seed(REPORT_SEED, 9), 100.0)
        for e, n in pts:
            gap = DomainGap.sample_drone(rng)
            img = world.render_drone(
                (e, n), rng.uniform(40, 250), rng.uniform(0, 45), rng.uniform(0, 360), gap=gap
            )
            frames.append(("drone frame", img))
    for i, (kind, img) in enumerate(frames):
        path = out / f"{i:04d}.png"
        save_image_atomic(path, np.ascontiguousarray(img))
        _sidecar(path, {"in_map": False, "kind": kind})
    return len(frames)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    p.add_argument("--data", type=Path, required=True, help="the world in VIGOR layout")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fit-inmap", type=int, default=1500)
    p.add_argument("--fit-outmap", type=int, default=600)
    p.add_argument("--fit-wrongview", type=int, default=150)
    p.add_argument("--report-towns", type=int, default=12)
    p.add_argument("--report-per-town", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    setup_logging()
    cfg = _vigor_cfg(args.data)
    rng = np.random.default_rng(FIT_SEED)
    test_towns = [
        t for city in CROSS_CITIES["test"] for t in _district_towns(cfg, CITIES.index(city))
    ]
    fit, report = args.out / "fit", args.out / "report"
    for d in (fit / "inmap", report / "outmap"):
        d.mkdir(parents=True, exist_ok=True)
    jobs = _pano_jobs(test_towns, args.fit_inmap, FIT_SEED, fit / "inmap", cfg)
    n_out = _copy_city(
        args.data, CROSS_CITIES["train"], fit / "outmap", args.fit_outmap, rng, False
    )
    n_wrong = _copy_city(
        args.data, CROSS_CITIES["train"], fit / "wrongview", args.fit_wrongview, rng, True
    )
    # fresh towns of every style, far from the four cities (central Kansas)
    from train.world import TOWN_STYLES

    fresh = []
    for k in range(args.report_towns):
        lat, lon = 38.5 + 0.02 * (k // 4), -98.5 + 0.03 * (k % 4)
        style = TOWN_STYLES[k % len(TOWN_STYLES)]
        fresh.append(TownSpec(derived_seed(REPORT_SEED, k), style, lat, lon, cfg.town_size_m))
    jobs += _pano_jobs(
        fresh, args.report_towns * args.report_per_town, REPORT_SEED, report / "outmap", cfg
    )
    run_jobs(jobs, workers=args.workers, desc="trust queries")
    for f in (report / "outmap").glob("*.json"):  # a fresh town is no place of the map
        meta = json.loads(f.read_text())
        f.write_text(json.dumps({**meta, "in_map": False, "kind": "unmapped town"}))
    n_deg = degenerate_frames(
        report / "degenerate", np.random.default_rng(REPORT_SEED), test_towns[0]
    )
    # the mapped cities' own satellite tiles: the right place, the wrong kind of image
    n_deg += _copy_city(args.data, CROSS_CITIES["test"], report / "degenerate", 20, rng, True)
    logger.info(
        "wrote %s: fit %d in-map + %d out-of-map + %d satellite tiles; report %d out-of-map "
        "+ %d degenerate",
        args.out,
        args.fit_inmap,
        n_out,
        n_wrong,
        args.report_towns * args.report_per_town,
        n_deg,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
