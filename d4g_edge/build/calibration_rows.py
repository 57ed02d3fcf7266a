"""The rows ``d4g-edge calibrate`` fits on (:mod:`d4g_edge.build.calibrate`): geotagged frames
and their sidecars, each localized as a device would see it (heading given, searched on a
randomly turned copy, searched under a random prior), phone photos cut from the panoramas
(ground bundles), and synthetic frames that show nothing; every row's features
(:data:`d4g_edge.trust.FEATURES`), error, kind and, for a searched heading whose truth is
known, its heading error.

Usage::

    col = Collector(Localizer(bundle, threads=1), seed=0)
    rows = col.folder(Path("geotagged_frames"))
    col.synthetic(rows, 120)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from d4g_edge import photo as photos
from d4g_edge import trust
from d4g_edge.errors import D4GEdgeError
from d4g_edge.geo import haversine_m, offset_latlon
from d4g_edge.ground_query import PANORAMA_ASPECT, circular_error
from d4g_edge.image import load_rgb
from d4g_edge.log import logger

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
PRIOR_RADII_M = (150.0, 3000.0)  # log-uniform radius of the simulated priors
PHOTO_FOV_DEG = (60.0, 180.0)  # uniform FoV of the photos cut from calibration panoramas
PHOTO_ASPECT = 0.75  # height / width of those photos (4:3 landscape)


@dataclass
class Rows:
    """Feature rows of a query set and what is true of each."""

    features: np.ndarray  # (N, len(FEATURES))
    error_m: np.ndarray  # (N,) inf where not in the map
    in_map: np.ndarray  # (N,) bool
    prior: np.ndarray  # (N,) bool
    kind: list[str]
    photo: np.ndarray | None = None  # (N,) bool; None: no photo rows
    heading_error_deg: np.ndarray | None = None  # (N,) of a searched heading; NaN: unknown

    def __post_init__(self) -> None:
        n = len(self.error_m)
        if self.photo is None:
            self.photo = np.zeros(n, bool)
        if self.heading_error_deg is None:
            self.heading_error_deg = np.full(n, np.nan)

    @classmethod
    def empty(cls) -> Rows:
        return cls(np.zeros((0, len(trust.FEATURES))), np.zeros(0), np.zeros(0, bool),
                   np.zeros(0, bool), [])  # fmt: skip

    def add(self, f, err, in_map, prior, kind, photo=False, heading_error_deg=np.nan) -> None:
        self.features = np.vstack([self.features, f[None]])
        self.error_m = np.append(self.error_m, err)
        self.in_map = np.append(self.in_map, in_map)
        self.prior = np.append(self.prior, prior)
        self.kind.append(kind)
        self.photo = np.append(self.photo, bool(photo))
        self.heading_error_deg = np.append(self.heading_error_deg, heading_error_deg)

    def take(self, sel: np.ndarray) -> Rows:
        """The rows where ``sel`` (a boolean mask)."""
        return Rows(self.features[sel], self.error_m[sel], self.in_map[sel], self.prior[sel],
                    [k for k, s in zip(self.kind, sel, strict=True) if s], self.photo[sel],
                    self.heading_error_deg[sel])  # fmt: skip


def read_sidecar(image: Path) -> dict:
    """The frame's truth: {"lat", "lon", "heading_deg"?} or {"in_map": False}."""
    path = image.with_name(image.name + ".json")
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise D4GEdgeError(
            f"{image} has no sidecar {path.name}: calibration needs each frame's true "
            '{"lat": .., "lon": ..} (or {"in_map": false})'
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise D4GEdgeError(f"{path}: not a JSON object ({err})") from None
    if not isinstance(meta, dict):
        raise D4GEdgeError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("in_map") is False:
        return {"in_map": False, "kind": str(meta.get("kind", "out of map"))}
    try:
        lat, lon = float(meta["lat"]), float(meta["lon"])
        extra = {
            k: None if meta.get(k) is None else float(meta[k])
            for k in ("heading_deg", "altitude_m", "pitch_deg")
        }
    except (KeyError, TypeError, ValueError):
        raise D4GEdgeError(
            f'{path}: expected {{"lat": deg, "lon": deg, "heading_deg"?: deg}} or '
            f'{{"in_map": false}}, got {meta!r}'
        ) from None
    finite = all(v is None or np.isfinite(v) for v in extra.values())
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not finite:
        raise D4GEdgeError(f"{path}: lat/lon/heading out of range: {meta!r}")
    return {"lat": lat, "lon": lon, **extra, "kind": "geotagged"}


def query_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise D4GEdgeError(f"--queries {folder} is not a folder of geotagged frames")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in FRAME_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise D4GEdgeError(f"{folder} holds no .jpg/.jpeg/.png frames")
    return files


def turn_frame(rgb: np.ndarray, view: str, rng) -> np.ndarray:
    """What a device without a compass sees: a random turn of the frame."""
    return turn_frame_by(rgb, view, rng)[0]


def turn_frame_by(rgb: np.ndarray, view: str, rng) -> tuple[np.ndarray, float]:
    """:func:`turn_frame` and the degrees its heading moved by: a panorama rolled by ``k``
    columns looks ``k * 360 / W`` degrees further anticlockwise (its centre column shows what
    column ``W/2 - k`` showed), a drone frame turned ``k`` quarters anticlockwise ``-90 k``."""
    if view == "drone":
        k = int(rng.integers(4))
        return np.ascontiguousarray(np.rot90(rgb, k)), -90.0 * k
    k = int(rng.integers(rgb.shape[1]))
    return np.roll(rgb, k, axis=1), -k * 360.0 / rgb.shape[1]


def cut_photo(pano: np.ndarray, rng, band=photos.FULL_SPHERE) -> tuple[np.ndarray, float, float]:
    """A level 4:3 photo of a panorama at a seeded random FoV (:data:`PHOTO_FOV_DEG`) and
    heading (relative to the panorama's centre column): (photo, fov_deg, heading_deg)."""
    fov = float(rng.uniform(*PHOTO_FOV_DEG))
    heading = float(rng.uniform(0.0, 360.0))
    width = max(64, round(pano.shape[1] * fov / 360.0))  # the panorama's columns per degree
    size = (max(48, round(width * PHOTO_ASPECT)), width)
    return (
        photos.pano_to_pinhole(pano, fov_deg=fov, heading_deg=heading, size=size, vfov_band=band),
        fov,
        heading,
    )


def random_prior(rng, lat, lon) -> tuple[float, float, float]:
    radius = float(np.exp(rng.uniform(*np.log(PRIOR_RADII_M))))
    r, a = 0.7 * radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
    plat, plon = offset_latlon(lat, lon, r * np.sin(a), r * np.cos(a))
    return float(plat), float(plon), radius


def photos_band(loc) -> tuple[float, float]:
    """The elevations the encoder's panoramas cover (:func:`d4g_edge.photo.canvas_for`)."""
    return photos.canvas_for(loc.encoder.config)[1]


class Collector:
    """Feature rows of frames through one :class:`~d4g_edge.localizer.Localizer`; ``photos``:
    also photos cut from the panoramas (ground bundles)."""

    def __init__(self, loc, seed: int = 0, photos: bool = True) -> None:
        self.loc = loc
        self.rng = np.random.default_rng(seed)
        t = loc.bundle.tiles
        self.tiles = t
        # a point is in the map when a tile centre lies within 3/4 of a tile side of it
        self.in_map_m = 0.75 * float(np.nanmedian(t.footprint_m))
        self.photos = photos and loc.view != "drone"
        # the band of the encoder's panorama canvas (the full sphere for VIGOR encoders)
        self.band = photos_band(loc)

    def truth_in_map(self, lat: float, lon: float) -> bool:
        d = haversine_m(lat, lon, self.tiles.lat, self.tiles.lon)
        return bool(np.nanmin(d) <= self.in_map_m)

    def _row(
        self, rows: Rows, rgb, truth, heading, prior, kind, flight=None, fov=None, true_heading=None
    ) -> None:
        obs = self._observe(rgb, heading, [prior], flight, fov)[0]
        self._add(rows, obs, truth, heading, prior, kind, fov, true_heading)

    def _observe(self, rgb, heading, priors, flight, fov) -> list:
        """The frame's observations under each of ``priors``, encoded once."""
        extra = dict(flight or {})
        if fov is not None:
            extra["fov_deg"] = fov
        return self.loc.observe_priors(rgb, priors, top_k=1, heading=heading, **extra)

    def _add(self, rows: Rows, obs, truth, heading, prior, kind, fov, true_heading) -> None:
        if obs.features is None:  # a degenerate image: not_in_map by rule, nothing to fit
            return
        in_map = truth is not None and self.truth_in_map(*truth)
        err = float(haversine_m(obs.fix.lat, obs.fix.lon, *truth)) if in_map else np.inf
        h_err = np.nan
        if heading is None and true_heading is not None:
            h_err = float(circular_error(obs.heading_deg, true_heading))
        rows.add(obs.features, err, in_map, prior is not None, kind, fov is not None, h_err)

    def _prior(self, truth):
        if truth is not None and self.truth_in_map(*truth):
            return random_prior(self.rng, *truth)
        # the user believes they are somewhere in the map; they are not
        i = int(self.rng.integers(len(self.tiles)))
        return random_prior(self.rng, float(self.tiles.lat[i]), float(self.tiles.lon[i]))

    def _searched(self, rows, rgb, truth, kind, flight=None, fov=None, true_heading=None):
        """The rows of a frame whose heading is searched: alone, and under a prior (one
        encoding of its rolls for both)."""
        priors = [None, self._prior(truth)]
        try:
            obs = self._observe(rgb, None, priors, flight, fov)
        except D4GEdgeError:  # no tile within a prior drawn at the map's edge
            priors = [None]
            obs = self._observe(rgb, None, priors, flight, fov)
        for o, prior in zip(obs, priors, strict=True):
            self._add(rows, o, truth, None, prior, kind, fov, true_heading)

    def frame(self, rows: Rows, rgb: np.ndarray, meta: dict, kind: str | None = None) -> None:
        kind = kind or meta.get("kind", "geotagged")
        truth = (meta["lat"], meta["lon"]) if "lat" in meta else None
        heading = meta.get("heading_deg")
        flight = None
        if self.loc.view == "drone" and meta.get("altitude_m") is not None:
            # the drone's position: the answer is moved back from what the frame shows
            flight = {"altitude_m": meta["altitude_m"], "pitch_deg": meta.get("pitch_deg")}
        if heading is not None:
            self._row(rows, rgb, truth, heading, None, kind, flight)
        # an oblique drone frame cannot be turned (its offset follows the heading): the
        # device without a compass sees it as it is, heading searched
        oblique = flight is not None and bool(flight["pitch_deg"])
        turned, moved = (rgb, 0.0) if oblique else turn_frame_by(rgb, self.loc.view, self.rng)
        true_heading = None if heading is None else (heading + moved) % 360.0
        self._searched(rows, turned, truth, kind, flight, true_heading=true_heading)
        if self.photos and max(rgb.shape[:2]) >= PANORAMA_ASPECT * min(rgb.shape[:2]):
            shot, fov, rel = cut_photo(rgb, self.rng, self.band)
            true_heading = None if heading is None else (heading + rel) % 360.0
            if true_heading is not None:
                self._row(rows, shot, truth, true_heading, None, kind, fov=fov)
            self._searched(rows, shot, truth, kind, fov=fov, true_heading=true_heading)

    def folder(self, folder: Path, rows: Rows | None = None) -> Rows:
        rows = rows or Rows.empty()
        for path in query_files(folder):
            meta = read_sidecar(path)
            try:
                rgb = load_rgb(path)
            except D4GEdgeError as err:
                logger.warning("skipping %s: %s", path, err)
                continue
            self.frame(rows, rgb, meta)
        return rows

    def synthetic(self, rows: Rows, n: int = 120, shape=(128, 512)) -> Rows:
        """Out-of-map rows from frames that show nothing yet pass the degenerate-image rules."""
        h, w = shape
        for i in range(n):
            kind = ("blurred noise", "smooth field", "gradient")[i % 3]
            if kind == "gradient":
                a, b = self.rng.integers(0, 256, 3), self.rng.integers(0, 256, 3)
                t = np.linspace(0, 1, w)[None, :, None] * self.rng.uniform(0.3, 1)
                img = np.broadcast_to(a + (b - a) * t, (h, w, 3)).astype(np.uint8)
                img = np.clip(img + self.rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
            else:
                small = (4, 16) if kind == "smooth field" else (h, w)
                noise = self.rng.integers(0, 256, (*small, 3), dtype=np.uint8)
                pil = Image.fromarray(noise).resize((w, h), Image.Resampling.BICUBIC)
                img = np.asarray(pil.filter(ImageFilter.GaussianBlur(self.rng.uniform(1, 6))))
            self.frame(rows, img, {"in_map": False}, kind)
        return rows
