"""Configuration of one synthetic dataset: :class:`SynthConfig` (frozen, validated).

The command line is built from this dataclass (see ``__main__``), so the CLI and
:func:`train.synth.synthesize` cannot drift apart.

Usage::

    cfg = SynthConfig(layout="cvusa", out=Path("data/cvusa"), train=200, test=50, seed=1)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAYOUTS = ("cvact", "cvusa", "university1652", "vigor")
VIGOR_LAYOUTS = ("official", "alt")
# Vertical field of view of each release's panoramas: CVUSA's 1232x224 panoramas span about
# 65 degrees around the horizon (224 / 1232 * 360); CVACT and VIGOR keep the full sphere.
LAYOUT_PANO_VFOV = {"cvusa": 65.0, "cvact": 180.0, "vigor": 180.0, "university1652": 180.0}
_U1652 = ("university1652",)  # fields only that layout reads (left out of other fingerprints)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the files written (plus how to run: workers, preview)."""

    layout: str = field(metadata={"choices": LAYOUTS, "help": "dataset layout to write"})
    out: Path = field(metadata={"help": "output directory"})
    train: int = field(
        default=1000, metadata={"help": "training pairs (panoramas; University-1652: locations)"}
    )
    test: int = field(
        default=200, metadata={"help": "test pairs (panoramas; University-1652: locations)"}
    )
    seed: int = field(default=0, metadata={"help": "master seed; same seed, same bytes"})
    sat_size: int = field(default=256, metadata={"help": "satellite tile side in pixels"})
    pano_size: tuple[int, int] = field(
        default=(128, 512), metadata={"help": "panorama HEIGHTxWIDTH (width a multiple of 4)"}
    )
    pano_vfov: float = field(
        default=0.0,
        metadata={
            "help": "vertical field of view of the panoramas in degrees, centred on the "
            "horizon; 0 = the layout's own: CVUSA 65 (its panoramas are cropped around the "
            "horizon), CVACT and VIGOR 180 (full sphere)"
        },
    )
    tile_m: float = field(
        default=90.0,
        metadata={"help": "ground footprint of a tile side in metres (GSD = tile_m / sat_size)"},
    )
    gap_strength: float = field(
        default=1.0, metadata={"help": "scale of the per-view domain gap, 0 (none) .. 2"}
    )
    pairs_per_town: int = field(
        default=250, metadata={"help": "CVUSA/CVACT: pairs drawn from one town before the next"}
    )
    town_size_m: float = field(default=1200.0, metadata={"help": "side of each town in metres"})
    vigor_districts: int = field(
        default=4,
        metadata={
            "help": "VIGOR: towns (districts) per city, side by side, each of another style "
            "(every city then has every style, as VIGOR's four cities are all dense US cities); "
            "1 = one town per city, its style differing from city to city"
        },
    )
    vigor_layout: str = field(
        default="official",
        metadata={
            "choices": VIGOR_LAYOUTS,
            "help": "VIGOR folders: official ({city}/satellite) or alt (satellite/{city})",
        },
    )
    drone_per_location: int = field(
        default=12,
        metadata={
            "layouts": _U1652,
            "help": "University-1652: drone frames per location (the release has 54)",
        },
    )
    drone_altitude_min_m: float = field(
        default=40.0,
        metadata={
            "layouts": _U1652,
            "help": "University-1652: lowest drone height above ground (log-uniform up to the "
            "highest; the release's orbits descend from 256 to 121.5 m)",
        },
    )
    drone_altitude_max_m: float = field(
        default=250.0,
        metadata={"layouts": _U1652, "help": "University-1652: highest drone height (<= 300 m)"},
    )
    drone_px: int = field(
        default=128,
        metadata={"layouts": _U1652, "help": "University-1652: side of the square drone frames"},
    )
    street_per_location: int = field(
        default=2,
        metadata={"layouts": _U1652, "help": "University-1652: street photos per location"},
    )
    distractors: int = field(
        default=-1,
        metadata={
            "layouts": _U1652,
            "help": "University-1652: extra gallery satellite tiles without a drone query, "
            "from the test towns (the release has 250); -1 = a third of --test",
        },
    )
    jpeg_quality: int = field(default=92, metadata={"help": "JPEG quality of written images"})
    # Phone photos (CVUSA, VIGOR; see train.synth._photos): left out of the fingerprint while
    # at their defaults, so datasets written before they existed keep their fingerprint.
    photos: int = field(
        default=0,
        metadata={
            "omit_default": True,
            "help": "CVUSA/VIGOR: phone photos per panorama, written beside the panoramas "
            "(streetview/photos, {city}/photos) with photos.csv (their poses); 0 = none",
        },
    )
    photo_fov: tuple[float, ...] = field(
        default=(45.0, 180.0),
        metadata={
            "omit_default": True,
            "metavar": "DEG",
            "help": "photos: horizontal field of view, MIN MAX degrees (uniform; pinhole up to "
            "120, cylindrical beyond) or one value",
        },
    )
    photo_pitch: float = field(
        default=10.0, metadata={"omit_default": True, "help": "photos: pitch within +-degrees"}
    )
    photo_roll: float = field(
        default=3.0, metadata={"omit_default": True, "help": "photos: roll within +-degrees"}
    )
    photo_aspect: float = field(
        default=4 / 3,
        metadata={"omit_default": True, "help": "photos: width / height (< 1: portrait)"},
    )
    photo_width: int = field(
        default=0,
        metadata={
            "omit_default": True,
            "help": "photos: width in pixels; 0 = the panorama's angular resolution",
        },
    )
    photo_look: bool = field(
        default=True,
        metadata={
            "omit_default": True,
            "help": "photos: a phone's exposure error, tone curve, blur and JPEG quality "
            "(70-95); --no-photo-look writes the exact view at --jpeg-quality",
        },
    )
    workers: int = field(default=1, metadata={"help": "rendering processes", "run": True})
    preview: Path | None = field(
        default=None,
        metadata={
            "help": "also write a contact sheet PNG here",
            "metavar": "FILE.png",
            "run": True,
        },
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "replace a different dataset already in --out", "run": True},
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.preview is not None:
            object.__setattr__(self, "preview", Path(self.preview))
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if not 1 <= self.vigor_districts <= 16:
            raise ValueError(f"vigor_districts must be in [1, 16], got {self.vigor_districts}")
        if self.vigor_layout not in VIGOR_LAYOUTS:
            raise ValueError(
                f"vigor_layout must be one of {VIGOR_LAYOUTS}, got {self.vigor_layout!r}"
            )
        if self.train < 1 or self.test < 1:
            raise ValueError(
                f"train and test need at least 1 pair each, got {self.train}/{self.test}"
            )
        if self.layout == "vigor" and (self.train < 2 or self.test < 2):
            raise ValueError("VIGOR spreads pairs over two cities per split: train and test >= 2")
        h, w = self.pano_size
        if h < 8 or w < 16 or w % 4:
            raise ValueError(
                f"pano_size {h}x{w}: need height >= 8 and a width >= 16 divisible by 4 "
                "(90-degree rotation augmentation rolls the panorama by width/4)"
            )
        if self.pano_vfov and not 10.0 <= self.pano_vfov <= 180.0:
            raise ValueError(f"pano_vfov must be 0 or in [10, 180] degrees, got {self.pano_vfov}")
        if self.sat_size < 8:
            raise ValueError(f"sat_size must be >= 8 pixels, got {self.sat_size}")
        if not 10.0 <= self.tile_m <= 1000.0:
            raise ValueError(f"tile_m must be in [10, 1000] metres, got {self.tile_m}")
        if self.town_size_m < 6 * self.tile_m:
            raise ValueError(
                f"town_size_m ({self.town_size_m}) must be at least 6 tiles ({6 * self.tile_m} m)"
            )
        if not 0.0 <= self.gap_strength <= 2.0:
            raise ValueError(f"gap_strength must be in [0, 2], got {self.gap_strength}")
        if self.pairs_per_town < 1 or self.workers < 1:
            raise ValueError("pairs_per_town and workers must be >= 1")
        if not 100.0 <= self.town_size_m <= 10_000.0:
            raise ValueError(f"town_size_m must be in [100, 10000], got {self.town_size_m}")
        if not 1 <= self.drone_per_location <= 99:
            raise ValueError(
                f"drone_per_location must be in [1, 99] (names image-01..image-99), "
                f"got {self.drone_per_location}"
            )
        if not 30.0 <= self.drone_altitude_min_m <= self.drone_altitude_max_m <= 300.0:
            raise ValueError(
                "drone heights need 30 <= drone_altitude_min_m <= drone_altitude_max_m <= 300 m, "
                f"got {self.drone_altitude_min_m}, {self.drone_altitude_max_m}"
            )
        if self.drone_px < 8 or self.street_per_location < 0 or self.distractors < -1:
            raise ValueError(
                f"need drone_px >= 8, street_per_location >= 0 and distractors >= -1 (auto), got "
                f"{self.drone_px}, {self.street_per_location}, {self.distractors}"
            )
        if self.layout == "university1652" and self.train + self.test + self.n_distractors > 10_000:
            raise ValueError("University-1652 ids have 4 digits: at most 10000 locations in all")
        if not 50 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [50, 100], got {self.jpeg_quality}")
        self._check_photos()

    def _check_photos(self) -> None:
        object.__setattr__(self, "photo_fov", tuple(float(v) for v in self.photo_fov))
        if self.photos and self.layout not in ("cvusa", "vigor"):
            raise ValueError(
                f"photos are written for the cvusa and vigor layouts, not {self.layout}"
            )
        fov = self.photo_fov
        if not 0 <= self.photos <= 99 or not 1 <= len(fov) <= 2:
            raise ValueError(
                f"need 0 <= photos <= 99 and photo_fov as MIN MAX or one value, got "
                f"{self.photos}, {fov}"
            )
        if not 10.0 <= fov[0] <= fov[-1] <= 180.0:
            raise ValueError(f"photo_fov must lie in [10, 180] degrees, MIN <= MAX, got {fov}")
        if not (0 <= self.photo_pitch <= 45 and 0 <= self.photo_roll <= 45):
            raise ValueError(
                f"photo_pitch and photo_roll must be in [0, 45], got {self.photo_pitch}, "
                f"{self.photo_roll}"
            )
        if not 0.25 <= self.photo_aspect <= 4 or not 0 <= self.photo_width <= 8192:
            raise ValueError(
                f"need photo_aspect in [0.25, 4] and photo_width in [0, 8192], got "
                f"{self.photo_aspect}, {self.photo_width}"
            )

    @property
    def n_distractors(self) -> int:
        """University-1652: gallery-only satellite tiles (``distractors``, or a third of test)."""
        return self.test // 3 if self.distractors < 0 else self.distractors

    @property
    def gsd_m(self) -> float:
        """Metres per satellite pixel."""
        return self.tile_m / self.sat_size

    def fingerprint(self) -> dict[str, Any]:
        """The fields that determine the bytes written (not how the run is executed)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "out" or f.metadata.get("run"):
                continue
            if self.layout not in f.metadata.get("layouts", (self.layout,)):
                continue  # a setting this layout ignores (keeps older fingerprints valid)
            value = getattr(self, f.name)
            if f.metadata.get("omit_default") and value == f.default:
                continue  # a later addition at its default: older fingerprints stay valid
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @property
    def pano_vfov_deg(self) -> float:
        """The panoramas' vertical field of view: ``pano_vfov`` or the layout's convention."""
        return self.pano_vfov or LAYOUT_PANO_VFOV[self.layout]
