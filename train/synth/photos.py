"""``python -m train.synth.photos``: phone photos at fixed FoVs cut from a dataset's panoramas.

For evaluation (issue 23's results table): every query panorama of one split (by default the
VIGOR cross-area test split, 1,200 panoramas of ``data/vigor``) gets one photo per ``--fov``,
all at the same random heading (seeded per panorama, so every FoV sees the same direction
and a subset keeps its headings). ``--fov 360`` is the panorama itself, rolled so that its
centre column looks at that heading (the heading is then a whole number of panorama columns,
and the same quantised heading is used for every FoV). Level camera and the exact view by
default; ``--pitch``/``--roll``/``--look`` add a phone's tilt and look (:mod:`._phone`).

Output (``--out``)::

    fov{F}/{city}/{panorama name}      VIGOR (CVUSA: fov{F}/{id}.jpg), one folder per FoV
    photos.csv                          the poses, as in train.synth._photos (image relative
                                        to --out, panorama relative to --data)
    photos_info.json                    the settings (a rerun with others needs --overwrite)

Reading: ``photo_split(load("vigor", data, "test", mode="cross"), out / "photos.csv",
fov_deg=90)`` (:func:`train.synth._photos.photo_split`).

Usage::

    python -m train.synth.photos --data data/vigor --out data/vigor_photos \
        --fov 360 180 120 90 60 --seed 0 --split test --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger, setup_logging

from ._config import LAYOUT_PANO_VFOV
from ._output import OutputDirError, read_info
from ._phone import PhoneLook
from ._photos import (
    CSV_NAME,
    PhotoSpec,
    csv_row,
    cut,
    photo_size,
    write_photo,
    write_photos_csv,
)
from ._render import run_jobs
from ._towns import derived_seed

INFO_NAME = "photos_info.json"
STREAM_EVAL = 6


@dataclass(frozen=True)
class CutJob:
    """One panorama file -> its photos (written by :func:`cut_photos`; ``paths`` is empty,
    so :func:`train.synth._render.run_jobs` writes nothing more)."""

    pano: str
    band: tuple[float, float]
    photos: tuple[PhotoSpec, ...]
    paths: tuple[str, ...] = ()
    jpeg_quality: int = 95


def cut_photos(job: CutJob) -> None:
    with Image.open(job.pano) as img:
        pano = np.asarray(img.convert("RGB"))
    for spec in job.photos:
        if spec.projection == "equirectangular" and spec.size != pano.shape[:2]:
            raise ValueError(f"{job.pano} is {pano.shape[:2]}, the others {spec.size}")
        write_photo(spec, cut(pano, spec, job.band))


def _folder(fov: float) -> str:
    return f"fov{fov:g}"


def _tail(rel: Path, dataset: str) -> Path:
    """VIGOR: {city}/{name} (from {city}/panorama/ or ground/{city}/); CVUSA: {id}.jpg."""
    if dataset != "vigor":
        return Path(rel.name)
    city = rel.parts[-3] if rel.parts[-2] == "panorama" else rel.parts[-2]
    return Path(city) / rel.name


def plan(args: argparse.Namespace, split, pano_shape: tuple[int, int], band) -> tuple[list, list]:
    """(jobs, CSV rows): one job per query panorama, one photo per FoV."""
    h, w = pano_shape
    jobs, rows = [], []
    for path in split.query_paths:
        rel = Path(path).relative_to(split.root).as_posix()
        rng = np.random.default_rng(derived_seed(args.seed, STREAM_EVAL, zlib.crc32(rel.encode())))
        heading = int(rng.integers(w)) * 360.0 / w  # whole columns: the 360 roll is exact
        pitch = round(float(rng.uniform(-args.pitch, args.pitch)), 3) if args.pitch else 0.0
        roll = round(float(rng.uniform(-args.roll, args.roll)), 3) if args.roll else 0.0
        look = PhoneLook.sample(rng) if args.look else PhoneLook(jpeg_quality=args.jpeg_quality)
        tail = _tail(Path(rel), split.dataset)
        specs = []
        for fov in args.fov:
            wide = fov >= 360.0
            specs.append(
                PhotoSpec(
                    path=str(args.out / _folder(fov) / tail),
                    fov_deg=fov,
                    heading_deg=heading,
                    pitch_deg=0.0 if wide else pitch,
                    roll_deg=0.0 if wide else roll,
                    size=(h, w) if wide else photo_size(fov, w, args.aspect, args.width),
                    look=look,
                    projection="equirectangular" if wide else "",
                )
            )
        jobs.append(CutJob(str(path), band, tuple(specs)))
        rows += [csv_row(s, rel, args.out) for s in specs]
    return jobs, rows


def _settings(args: argparse.Namespace) -> dict:
    keep = ("dataset", "split", "mode", "fov", "seed", "pitch", "roll", "look", "aspect")
    return {k: getattr(args, k) for k in (*keep, "width", "jpeg_quality")} | {
        "data": str(args.data)
    }


def _prepare(args: argparse.Namespace) -> None:
    out = args.out
    if out.exists() and any(out.iterdir()):
        try:
            old = json.loads((out / INFO_NAME).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            old = None
        if old == _settings(args):
            logger.info("%s holds these same photos; regenerating them", out)
            return
        if not args.overwrite:
            raise OutputDirError(
                f"--out {out} is not empty and holds other photos ({old}); choose an empty "
                "directory or pass --overwrite"
            )
        for p in out.iterdir():
            if p.name.startswith("fov") and p.is_dir():
                shutil.rmtree(p)
            elif p.name in (CSV_NAME, INFO_NAME):
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.synth.photos", description=__doc__.split("\n\n")[1]
    )
    p.add_argument("--data", type=Path, required=True, help="a VIGOR- or CVUSA-layout dataset")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--fov", type=float, nargs="+", default=[90.0], help="horizontal FoVs (360: the panorama)"
    )
    p.add_argument("--seed", type=int, default=0, help="headings (and tilts, looks) seed")
    p.add_argument(
        "--dataset",
        choices=("vigor", "cvusa"),
        default=None,
        help="default: from synth_info.json, else vigor",
    )
    p.add_argument("--split", default="test")
    p.add_argument("--mode", default="cross", help="VIGOR protocol: cross (default) or same")
    p.add_argument(
        "--pitch", type=float, default=0.0, help="pitch within +-degrees (default level)"
    )
    p.add_argument("--roll", type=float, default=0.0, help="roll within +-degrees (default 0)")
    p.add_argument(
        "--look",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="a phone's exposure, blur and JPEG 70-95 (default: the exact view)",
    )
    p.add_argument("--aspect", type=float, default=4 / 3, help="width / height (default 4:3)")
    p.add_argument(
        "--width", type=int, default=0, help="photo width (0: the panorama's resolution)"
    )
    p.add_argument("--jpeg-quality", type=int, default=95, help="without --look")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--overwrite", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    from train.datasets import load

    parser = build_parser()
    args = parser.parse_args(argv)
    args.out = args.out.absolute()
    setup_logging()
    info = read_info(args.data) or {}
    args.dataset = args.dataset or info.get("layout", "vigor")
    if args.dataset not in ("vigor", "cvusa"):
        parser.error(f"--data {args.data} is a {args.dataset} dataset; vigor or cvusa only")
    if not all(0 < f <= 360 for f in args.fov) or len(set(args.fov)) != len(args.fov):
        parser.error(f"--fov values must be distinct, in (0, 360], got {args.fov}")
    if not (0 <= args.pitch <= 45 and 0 <= args.roll <= 45 and 50 <= args.jpeg_quality <= 100):
        parser.error("need --pitch, --roll in [0, 45] and --jpeg-quality in [50, 100]")
    mode = {"mode": args.mode} if args.dataset == "vigor" else {}
    split = load(args.dataset, args.data, args.split, **mode)
    vfov = info.get("settings", {}).get("pano_vfov") or LAYOUT_PANO_VFOV[args.dataset]
    with Image.open(split.query_paths[0]) as img:
        shape = (img.height, img.width)
    try:
        _prepare(args)
    except OutputDirError as err:
        logger.error("%s", err)
        return 2
    jobs, rows = plan(args, split, shape, (-vfov / 2.0, vfov / 2.0))
    run_jobs(jobs, workers=args.workers, desc="photos", render_fn=cut_photos)
    write_photos_csv(args.out / CSV_NAME, rows)
    atomic_write(args.out / INFO_NAME, json.dumps(_settings(args), indent=1) + "\n")
    logger.info("wrote %d photos of %d panoramas to %s", len(rows), len(jobs), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
