"""Torch datasets over a :class:`CrossViewSplit`: training pairs and single-view evaluation.

Images are decoded once, resized to the training resolution and kept in RAM as uint8
(``cache=True``), because on CPU decoding and resizing cost more than the small models'
forward pass. Call :meth:`PairDataset.preload` before building a multi-worker DataLoader:
the filled arrays are then shared copy-on-write by the forked workers instead of every
worker decoding its own copy.

Augmentation randomness is drawn from torch's generator, so ``torch.manual_seed`` makes a
run reproducible and each DataLoader worker/epoch gets fresh draws.

Usage::

    ds = PairDataset(split, sat_size=128, ground_size=(64, 256), augment=PairAugment())
    ds.preload()
    ground, sat, ref_id = ds[0]        # 3x64x256, 3x128x128 float32, int64
    view = ViewDataset(split.reference_paths, 128)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from d4g_edge.config import IMAGENET_MEAN, IMAGENET_STD
from d4g_edge.log import logger
from d4g_edge.polar import shift_tile
from d4g_edge.preprocess import crop_rows, resize_rgb

from ._files import read_image
from ._split import CrossViewSplit
from .augment import PairAugment, apply_variant

# A cache larger than this share of physical RAM (real VIGOR at paper resolution is ~90 GB)
# is not allocated: the dataset then decodes on every access instead of failing.
_CACHE_RAM_FRACTION = 0.4  # per cache: ground and satellite each


def _physical_ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume enough
        return 1 << 62


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


class _ImageCache:
    """Decoded, resized uint8 images, filled lazily or all at once by :meth:`fill`."""

    def __init__(
        self,
        paths: Sequence[Path],
        size: tuple[int, int],
        enabled: bool,
        rows: tuple[float, float] | None = None,
    ) -> None:
        self.paths, self.size, self.rows = tuple(paths), size, rows
        nbytes = len(self.paths) * size[0] * size[1] * 3
        if enabled and nbytes > _CACHE_RAM_FRACTION * _physical_ram():
            logger.warning(
                "not caching %d images of %dx%d: %.1f GB exceeds %.0f%% of RAM; decoding per step",
                len(self.paths),
                *size,
                nbytes / 1e9,
                100 * _CACHE_RAM_FRACTION,
            )
            enabled = False
        self.enabled = enabled
        # np.empty only reserves address space; pages are committed as images arrive.
        self._data = np.empty((len(self.paths), *size, 3), np.uint8) if enabled else None
        self._filled = np.zeros(len(self.paths), dtype=bool)

    def _read(self, i: int) -> np.ndarray:
        if self.rows is None:
            return read_image(self.paths[i], self.size)
        # crop, then resize exactly as the device does (d4g_edge.preprocess)
        return resize_rgb(crop_rows(read_image(self.paths[i]), self.rows), self.size)

    def __getitem__(self, i: int) -> np.ndarray:
        if self._data is None:
            return self._read(i)
        if not self._filled[i]:
            self._data[i] = self._read(i)
            self._filled[i] = True
        return self._data[i]

    def fill(self, threads: int, desc: str) -> None:
        if self._data is None:
            return
        todo = np.flatnonzero(~self._filled)
        # Pillow releases the GIL while decoding, so threads give a real speed-up.
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for _ in tqdm(
                pool.map(self.__getitem__, todo), total=len(todo), desc=desc, leave=False
            ):
                pass


def to_tensor(img: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """HWC uint8 or [0, 1] float -> CHW float32 normalised by (3, 1, 1) ``mean``/``std``."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    return x.sub_(mean).div_(std)


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean/std need 3 values each with std > 0, got {mean} / {std}")
    as_t = lambda v: torch.tensor(v, dtype=torch.float32).view(3, 1, 1)  # noqa: E731
    return as_t(mean), as_t(std)


def fill_colour(mean: Sequence[float]) -> np.ndarray:
    """uint8 colour of pixels a re-centred tile takes from outside itself: the normalisation
    mean, i.e. zero input (:func:`d4g_edge.preprocess.preprocess` does the same)."""
    return np.round(np.asarray(mean, np.float64) * 255).astype(np.uint8)


def polar01(tile: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Polar transform (:mod:`d4g_edge.polar`) of a uint8 or [0, 1] tile, as [0, 1] float."""
    from d4g_edge.polar import polar_transform

    x = tile.astype(np.float32) / 255.0 if tile.dtype == np.uint8 else tile
    return polar_transform(x, *size)


class PairDataset(Dataset):
    """One (ground, positive satellite, reference id) training pair per query."""

    def __init__(
        self,
        split: CrossViewSplit,
        sat_size: int,
        ground_size: tuple[int, int],
        augment: PairAugment | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        cache: bool = True,
        sat_polar: tuple[int, int] | None = None,
        recentre: bool = False,
        centre_jitter: float = 0.0,
        ground_rows: tuple[float, float] | None = None,
    ) -> None:
        """``sat_polar``: feed the satellite view polar-transformed to this (H, W), after the
        geometric augmentation (which acts on the square tile).

        ``recentre`` (the off-centre recipe): shift the positive tile so the camera's true
        position (VIGOR's pixel offsets; the centre elsewhere) is at its centre, plus a uniform
        jitter of up to ``centre_jitter`` tile sides per axis when augmenting, because at index
        time the nearest of a grid of centres is that far from the camera.
        """
        if not split.all_matched:
            raise ValueError(
                f"{split.dataset} {split.split}: {int((~split.has_reference).sum())} queries "
                "have no reference in this split (University-1652's satellite-mode test); "
                "training pairs need a reference for every query"
            )
        self.split, self.augment, self.sat_polar = split, augment, sat_polar
        # a drone camera frame turns with the tile instead of rolling like a panorama
        self.frame = getattr(split, "query_view", "ground") == "drone"
        self.recentre, self.centre_jitter = recentre, float(centre_jitter)
        self.mean, self.std = _check_stats(mean, std)
        self.fill = fill_colour(mean)
        self._ground = _ImageCache(split.query_paths, _hw(ground_size), cache, ground_rows)
        self._sat = _ImageCache(split.reference_paths, _hw(sat_size), cache)
        self._native_side: int | None = None

    def __len__(self) -> int:
        return len(self.split)

    def preload(self, threads: int = 4) -> PairDataset:
        """Decode every image of the split now (see module docstring); returns self."""
        self._ground.fill(threads, "decode ground")
        needed = np.unique(self.split.positive_index)
        if len(needed) == len(self._sat.paths):
            self._sat.fill(threads, "decode satellite")
        else:  # VIGOR: only positives are trained on, not all tiles
            with ThreadPoolExecutor(max(1, threads)) as pool:
                list(pool.map(self._sat.__getitem__, needed))
        return self

    def raw_pair(
        self, i: int, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The cached uint8 (ground, satellite) of pair ``i`` before augmentation; the tile
        re-centred on the camera when ``recentre`` (jittered when ``rng`` is given)."""
        ground, sat = self._ground[i], self._sat[int(self.split.positive_index[i])]
        if self.recentre:
            east, north = self.camera_offset(i)
            if rng is not None and self.centre_jitter:
                east, north = np.array([east, north]) + rng.uniform(-1, 1, 2) * self.centre_jitter
            side = sat.shape[1]
            sat = shift_tile(sat, east * side, north * side, self.fill)
        return ground, sat

    def variant_pair(self, i: int, variant: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`raw_pair` in geometric variant ``variant`` (:func:`apply_variant`)."""
        return apply_variant(*self.raw_pair(i), variant, frame=self.frame)

    def camera_offset(self, i: int) -> tuple[float, float]:
        """(east, north) of query ``i`` from its positive tile's centre, in tile sides."""
        offsets = self.split.positive_offsets_px
        if offsets is None:
            return 0.0, 0.0
        if self._native_side is None:  # offsets are in the release's own tile pixels
            from PIL import Image

            with Image.open(self.split.reference_paths[int(self.split.positive_index[i])]) as im:
                self._native_side = im.size[0]
        d_lat, d_lon = offsets[i, 0]  # tile centre minus camera, north and east
        return -float(d_lon) / self._native_side, -float(d_lat) / self._native_side

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        ground, sat = self.raw_pair(i, rng if self.augment is not None else None)
        if self.augment is not None:
            ground, sat = self.augment(ground, sat, rng, frame=self.frame)
        ref_id = torch.tensor(int(self.split.query_ids[i]), dtype=torch.int64)
        return self.tensor("ground", ground), self.tensor("satellite", sat), ref_id

    def tensor(self, view: str, img: np.ndarray) -> torch.Tensor:
        """The model input of one (augmented) view image: polar transform where configured,
        then normalisation."""
        if view == "satellite" and self.sat_polar is not None:
            img = polar01(img, self.sat_polar)
        return to_tensor(img, self.mean, self.std)


class ViewDataset(Dataset):
    """Images of one view for embedding at evaluation time: ``(tensor, index)``."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        size: int | tuple[int, int],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        cache: bool = False,
        polar: tuple[int, int] | None = None,
        centres: np.ndarray | None = None,
        rows: tuple[float, float] | None = None,
    ) -> None:
        """``polar``: polar-transform each (square, satellite) image to this (H, W);
        ``centres``: ``(C, 2)`` (east, north) points in tile sides to look around instead of
        the tile centre (:func:`d4g_edge.polar.cell_centres`): item ``k`` is image ``k // C``
        around centre ``k % C``."""
        self.mean, self.std, self.polar = *_check_stats(mean, std), polar
        self.centres = None if centres is None else np.asarray(centres, np.float64).reshape(-1, 2)
        self.fill = fill_colour(mean)
        self._images = _ImageCache([Path(p) for p in paths], _hw(size), cache, rows)

    @property
    def num_centres(self) -> int:
        return 1 if self.centres is None else len(self.centres)

    def __len__(self) -> int:
        return len(self._images.paths) * self.num_centres

    def preload(self, threads: int = 4) -> ViewDataset:
        """Decode every image into the cache now (see :meth:`PairDataset.preload`)."""
        self._images.fill(threads, "decode view")
        return self

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self._images[i // self.num_centres]
        if self.centres is not None:
            east, north = self.centres[i % self.num_centres] * img.shape[1]
            img = shift_tile(img, east, north, self.fill)
        if self.polar is not None:
            img = polar01(img, self.polar)
        return to_tensor(img, self.mean, self.std), i
