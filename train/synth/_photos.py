"""Phone photos beside the panoramas of a CVUSA or VIGOR layout, with their poses in a CSV.

The layout extension (``python -m train.synth ... --photos N``; the loaders of the official
layout ignore it)::

    VIGOR official   {city}/photos/{id},{lat},{lon},.jpg     beside {city}/panorama/
    VIGOR alt        photos/{city}/{id},{lat},{lon},.jpg     beside ground/{city}/
    CVUSA            streetview/photos/0000001.jpg            beside streetview/panos/
    photos.csv       one row per photo (columns CSV_FIELDS), at the dataset root

A photo has its panorama's name (with ``N > 1``, the k-th photo's id or stem gets ``_p{k}``:
``{id}_p1,{lat},{lon},.jpg``, ``0000001_p1.jpg``). In ``photos.csv``, ``image`` and
``panorama`` are paths relative to the CSV's folder and the dataset root; ``fov_deg`` is the
horizontal field of view, ``heading_deg`` the azimuth of the optical axis (clockwise from
north), ``pitch_deg`` positive up, ``roll_deg`` positive clockwise as the photographer sees it,
``projection`` ``pinhole`` up to 120 degrees, ``cylindrical`` beyond, ``equirectangular`` for a
360-degree "photo" (the panorama rolled so that its centre column looks at ``heading_deg``);
``height``/``width`` in pixels; ``gain``, ``gamma``, ``blur_px``, ``jpeg_quality``: the phone
look applied (:class:`train.synth._phone.PhoneLook`; 1, 1, 0 when none). Geometry: see
:mod:`d4g_edge.photo`; the photo is exactly ``pano_to_pinhole`` of the full-sphere render of
its panorama at the recorded pose (a CVUSA panorama is that render's horizon band), then the
look, then JPEG.

Reading: :func:`photo_split` turns a loaded split (``train.datasets.load``) and a
``photos.csv`` into the same split with the photos as queries, plus their poses.

Usage::

    split = train.datasets.load("vigor", "data/vigor", "test", mode="cross")
    photos, poses = photo_split(split, "data/vigor/photos.csv")
    photos.query_paths[0], poses["heading_deg"][0]
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from d4g_edge.fileio import atomic_write
from d4g_edge.photo import FULL_SPHERE, PINHOLE_MAX_FOV_DEG, pano_to_pinhole
from train.datasets import CrossViewSplit, DatasetFormatError

from ._phone import NO_LOOK, PhoneLook
from ._render import ViewJob, render
from ._towns import derived_seed

CSV_NAME = "photos.csv"
CSV_FIELDS = (
    "image",
    "panorama",
    "fov_deg",
    "heading_deg",
    "pitch_deg",
    "roll_deg",
    "projection",
    "height",
    "width",
    "gain",
    "gamma",
    "blur_px",
    "jpeg_quality",
)
PROJECTIONS = ("pinhole", "cylindrical", "equirectangular")
STREAM_PHOTOS = 5  # after _pairs' STREAM_* (1..4): the photos' poses and looks
_FLOATS = ("fov_deg", "heading_deg", "pitch_deg", "roll_deg", "gain", "gamma", "blur_px")


@dataclass(frozen=True)
class PhotoSpec:
    """One photo to cut from a panorama and where it goes (all values as the CSV has them)."""

    path: str
    fov_deg: float
    heading_deg: float
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    size: tuple[int, int] = (96, 128)  # (height, width)
    look: PhoneLook = NO_LOOK
    projection: str = ""  # "" = by the FoV (pinhole up to 120 degrees)

    def __post_init__(self) -> None:
        if not self.projection:
            proj = "pinhole" if self.fov_deg <= PINHOLE_MAX_FOV_DEG else "cylindrical"
            object.__setattr__(self, "projection", proj)
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {self.projection!r}")


@dataclass(frozen=True)
class PanoPhotosJob:
    """A panorama job whose render also yields photos (written as a side effect)."""

    view: ViewJob
    photos: tuple[PhotoSpec, ...]

    @property
    def paths(self) -> tuple[str, ...]:
        return self.view.paths

    @property
    def jpeg_quality(self) -> int:
        return self.view.jpeg_quality


def photo_size(fov_deg: float, pano_width: int, aspect: float = 4 / 3, width: int = 0):
    """(height, width) of a photo: ``width``, or as many pixels across as keep the panorama's
    angular resolution at the photo's centre (a pinhole: ``W 2 tan(fov/2) / 2 pi``, at most
    twice the panorama's pixels over that FoV, so a wide view does not balloon)."""
    if width <= 0:
        across = pano_width * fov_deg / 360.0
        if fov_deg <= PINHOLE_MAX_FOV_DEG:
            centre = pano_width * math.tan(math.radians(fov_deg) / 2) / math.pi
            across = min(centre, 2.0 * across)
        width = max(32, round(across))
    return max(8, round(width / aspect)), int(width)


def photo_path(pano: Path, k: int, n: int) -> Path:
    """Where the k-th of ``n`` photos of ``pano`` goes (module docstring)."""
    d = pano.parent
    if d.name == "panorama":  # VIGOR official: {city}/panorama
        folder = d.parent / "photos"
    elif d.parent.name == "ground":  # VIGOR alt: ground/{city}
        folder = d.parent.parent / "photos" / d.name
    elif d.name == "panos":  # CVUSA: streetview/panos
        folder = d.parent / "photos"
    else:
        raise ValueError(f"{pano} is not a VIGOR or CVUSA panorama path")
    name = pano.name
    if n > 1:
        head, sep, tail = name.partition(",")
        name = f"{head}_p{k}{sep}{tail}" if sep else f"{pano.stem}_p{k}{pano.suffix}"
    return folder / name


def draw_photo(
    rng: np.random.Generator,
    path: str,
    pano_width: int,
    *,
    fov: Sequence[float] = (45.0, 180.0),
    pitch: float = 10.0,
    roll: float = 3.0,
    aspect: float = 4 / 3,
    width: int = 0,
    look: bool = True,
    jpeg_quality: int = 92,
) -> PhotoSpec:
    """A random phone photo: FoV uniform in ``fov``, any heading, pitch within +-``pitch``,
    roll within +-``roll``; rounded as the CSV writes them, so the row is the truth."""
    fov_deg = round(float(rng.uniform(fov[0], fov[-1])), 2)
    heading = round(float(rng.uniform(0.0, 360.0)), 3)
    pitch_deg = round(float(rng.uniform(-pitch, pitch)), 3)
    roll_deg = round(float(rng.uniform(-roll, roll)), 3)
    style = (
        PhoneLook.sample(rng) if look else dataclasses.replace(NO_LOOK, jpeg_quality=jpeg_quality)
    )
    size = photo_size(fov_deg, pano_width, aspect, width)
    return PhotoSpec(path, fov_deg, heading, pitch_deg, roll_deg, size, style)


def cut(pano: np.ndarray, spec: PhotoSpec, band=FULL_SPHERE) -> np.ndarray:
    """The exact photo (before the look) of ``spec`` from ``pano`` covering ``band``."""
    if spec.projection == "equirectangular":
        # np.roll by -k: column c then shows what c + k showed, so the centre looks at k steps
        k = round(spec.heading_deg / 360.0 * pano.shape[1])
        return np.ascontiguousarray(np.roll(pano, -k, axis=1))
    return pano_to_pinhole(
        pano,
        fov_deg=spec.fov_deg,
        heading_deg=spec.heading_deg,
        pitch_deg=spec.pitch_deg,
        roll_deg=spec.roll_deg,
        size=spec.size,
        vfov_band=band,
        projection=spec.projection,
    )


def write_photo(spec: PhotoSpec, exact: np.ndarray) -> None:
    """The look, then JPEG at its quality (lossless PNG for a ``.png`` path: tests), written
    atomically to ``spec.path``."""
    path, photo = Path(spec.path), spec.look.apply(exact)
    if path.suffix.lower() == ".png":
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="PNG")
        atomic_write(path, buffer.getvalue())
    else:
        atomic_write(path, spec.look.encode(photo))


def full_sphere_job(view: ViewJob) -> tuple[ViewJob, int]:
    """The full-sphere panorama job that :func:`render` crops ``view``'s band from (same
    seed, same rows), and the row where that band starts."""
    h, w = view.size
    full = max(h, round(h * 180.0 / view.vfov_deg))
    return dataclasses.replace(view, size=(full, w), vfov_deg=180.0), (full - h) // 2


def render_with_photos(job) -> np.ndarray:
    """``render`` for every job; a :class:`PanoPhotosJob` also writes its photos, cut from the
    full-sphere render (a photo sees above and below a CVUSA panorama's band)."""
    if not isinstance(job, PanoPhotosJob):
        return render(job)
    full_job, top = full_sphere_job(job.view)
    full = render(full_job)
    for spec in job.photos:
        write_photo(spec, cut(full, spec))
    return np.ascontiguousarray(full[top : top + job.view.size[0]])


def csv_row(spec: PhotoSpec, panorama: str, csv_dir: Path) -> dict:
    image = Path(spec.path)
    return {
        "image": image.relative_to(csv_dir).as_posix() if image.is_absolute() else spec.path,
        "panorama": panorama,
        "fov_deg": spec.fov_deg,
        "heading_deg": spec.heading_deg,
        "pitch_deg": spec.pitch_deg,
        "roll_deg": spec.roll_deg,
        "projection": spec.projection,
        "height": spec.size[0],
        "width": spec.size[1],
        "gain": spec.look.gain,
        "gamma": spec.look.gamma,
        "blur_px": spec.look.blur_px,
        "jpeg_quality": spec.look.jpeg_quality,
    }


def with_photos(cfg, jobs: Sequence) -> tuple[list, list[dict]]:
    """``jobs`` with every panorama job given ``cfg.photos`` photos, and their CSV rows."""
    out, rows = [], []
    root = Path(cfg.out).absolute()
    for job in jobs:
        if getattr(job, "kind", None) != "panorama":
            out.append(job)
            continue
        rng = np.random.default_rng(derived_seed(job.seed, STREAM_PHOTOS))
        pano = Path(job.paths[0]).absolute()
        specs = tuple(
            draw_photo(
                rng,
                str(photo_path(pano, k, cfg.photos)),
                job.size[1],
                fov=cfg.photo_fov,
                pitch=cfg.photo_pitch,
                roll=cfg.photo_roll,
                aspect=cfg.photo_aspect,
                width=cfg.photo_width,
                look=cfg.photo_look,
                jpeg_quality=cfg.jpeg_quality,
            )
            for k in range(cfg.photos)
        )
        out.append(PanoPhotosJob(job, specs))
        rows += [csv_row(s, pano.relative_to(root).as_posix(), root) for s in specs]
    return out, rows


def write_photos_csv(path: Path, rows: Sequence[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue())


def read_photos_csv(path: str | Path) -> list[dict]:
    """The rows of a ``photos.csv`` with typed values (DatasetFormatError names the line)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(path, "photos CSV not found", hint="write it with --photos")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_FIELDS if c not in (reader.fieldnames or ())]
        if missing:
            raise DatasetFormatError(path, f"missing columns {missing}", line=1)
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                typed = {**row, **{k: float(row[k]) for k in _FLOATS}}
                typed |= {k: int(row[k]) for k in ("height", "width", "jpeg_quality")}
            except (TypeError, ValueError) as err:
                raise DatasetFormatError(path, f"not a number: {err}", line=line) from None
            if typed["projection"] not in PROJECTIONS:
                raise DatasetFormatError(path, f"projection {row['projection']!r}", line=line)
            rows.append(typed)
    return rows


def photo_split(
    split: CrossViewSplit, csv_path: str | Path, *, fov_deg: float | None = None
) -> tuple[CrossViewSplit, dict[str, np.ndarray]]:
    """``split`` with its queries replaced by the photos of ``csv_path`` cut from them (rows of
    other splits are skipped; ``fov_deg`` keeps one FoV), and the photos' poses: arrays
    ``fov_deg``, ``heading_deg``, ``pitch_deg``, ``roll_deg``, ``projection``."""
    csv_path = Path(csv_path)
    where = {Path(p).relative_to(split.root).as_posix(): i for i, p in enumerate(split.query_paths)}
    rows = [
        r
        for r in read_photos_csv(csv_path)
        if r["panorama"] in where and (fov_deg is None or r["fov_deg"] == float(fov_deg))
    ]
    if not rows:
        raise DatasetFormatError(
            csv_path, f"no photo of the {split.dataset} {split.split} split at {split.root}"
        )
    idx = np.array([where[r["panorama"]] for r in rows], dtype=np.int64)
    take = lambda a: None if a is None else np.asarray(a)[idx]  # noqa: E731
    photos = dataclasses.replace(
        split,
        query_paths=tuple(csv_path.parent / r["image"] for r in rows),
        query_names=tuple(Path(r["image"]).name for r in rows),
        query_ids=take(split.query_ids),
        positive_index=take(split.positive_index),
        semi_positive_ids=take(split.semi_positive_ids),
        query_latlon=take(split.query_latlon),
        positive_offsets_px=take(split.positive_offsets_px),
    )
    poses = {k: np.array([r[k] for r in rows]) for k in (*_FLOATS[:4], "projection")}
    return photos, poses


def run_with_photos(cfg, run, jobs: Sequence) -> None:
    """``run(jobs)``; with ``cfg.photos``, the panoramas' photos too, then ``photos.csv``."""
    if not cfg.photos:
        run(jobs)
        return
    jobs, rows = with_photos(cfg, jobs)
    run(jobs, render_fn=render_with_photos)
    write_photos_csv(Path(cfg.out) / CSV_NAME, rows)
