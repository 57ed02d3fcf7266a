"""Distill4Geo's marginal-perturbation augmentation, as interpreted here.

The paper describes "data augmentation with marginal perturbations" that improves pair-wise
generalisation, but the module was never published. Our reading: the teacher and the
student see the *same* geometric variant of a pair (flip / quarter turn, applied to both views
consistently), and on top of it the student alone gets a small perturbation inside margins
that do not change what the image shows:

* satellite: a random crop keeping 92–100 % of the side at a random offset, resized back
  (a few metres of translation and ~±4 % scale);
* panorama: a circular roll of up to ±2 % of the width (±7° of heading) and a crop of up to
  3 % of the rows at the top or bottom (pitch), resized back;
* both: mild colour jitter (±10 % brightness / contrast / saturation).

The student must then map a slightly different image onto the unperturbed teacher target,
which regularises it towards the teacher's invariances instead of pixel-exact copying.

Measured on the world (``python -m train.distill ... --perturb`` against the default), it does
not help there: an ``edge-s`` ground student distilled for 8 epochs reached recall@1 65.0 %
with it and 77.7 % without (against the teacher's satellite side). Those students underfit
(their 1 - cos on training and test pairs differ by ~0.01), so the regulariser only adds an
irreducible error: a perturbed input must map to the unperturbed target. It is kept, off by
default, for data where students overfit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from train.datasets.augment import PairAugment


def _resize(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if img.shape[:2] == hw:
        return img
    return np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.BILINEAR))


@dataclass(frozen=True)
class MarginalPerturbation:
    sat_keep: float = 0.92  # smallest kept fraction of the tile side
    pano_roll: float = 0.02  # largest heading roll as a fraction of the width
    pano_rows: float = 0.03  # largest fraction of rows cropped at top or bottom
    colour: float = 0.10

    def __post_init__(self) -> None:
        if not 0.5 <= self.sat_keep <= 1.0:
            raise ValueError(f"sat_keep must be in [0.5, 1], got {self.sat_keep}")
        for name in ("pano_roll", "pano_rows", "colour"):
            if not 0.0 <= getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in [0, 0.5), got {getattr(self, name)}")

    @property
    def _jitter(self) -> PairAugment:
        c = self.colour
        return PairAugment(flip_p=0, rotate_p=0, brightness=c, contrast=c, saturation=c)

    def satellite(self, sat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 HxWx3 -> perturbed uint8 of the same shape."""
        h, w = sat.shape[:2]
        side = rng.uniform(self.sat_keep, 1.0)
        ch, cw = max(1, round(h * side)), max(1, round(w * side))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out = _resize(np.ascontiguousarray(sat[y : y + ch, x : x + cw]), (h, w))
        return self._colour(out, rng)

    def ground(self, pano: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = pano.shape[:2]
        shift = round(rng.uniform(-self.pano_roll, self.pano_roll) * w)
        out = np.roll(pano, shift, axis=1)
        cut = round(rng.uniform(0, self.pano_rows) * h)
        if cut:
            out = out[cut:] if rng.random() < 0.5 else out[: h - cut]
            out = _resize(np.ascontiguousarray(out), (h, w))
        return self._colour(out, rng)

    def _colour(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.colour == 0:
            return img
        return (self._jitter.photometric(img, rng) * 255.0 + 0.5).astype(np.uint8)
