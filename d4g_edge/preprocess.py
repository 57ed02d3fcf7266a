"""Preprocessing that travels with every encoder (timm ``PretrainedCfg`` style).

One frozen dataclass holds what a runtime needs to feed an encoder: view, input size,
mean/std, layout, embedding dim and the model id. Checkpoint sidecars, and later every
exported artifact, embed it; ``d4g_edge`` checks it when it loads a bundle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

VIEWS = ("ground", "satellite")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessConfig:
    """How to turn an RGB uint8 image into the encoder's input tensor."""

    view: str
    input_size: tuple[int, int]  # (height, width)
    embed_dim: int
    model_id: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {self.view!r}")
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise ValueError(f"input_size must be (height, width) > 0, got {self.input_size!r}")
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        missing = {"view", "input_size", "embed_dim", "model_id"} - set(known)
        if missing:
            raise ValueError(
                f"preprocessing metadata lacks {sorted(missing)}; got keys {sorted(d)}"
            )
        return cls(**known)

    def normalise(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 (already at ``input_size``) -> float32 1x3xHxW."""
        if rgb.shape[:2] != self.input_size or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(
                f"expected an RGB image of {self.input_size[0]}x{self.input_size[1]}x3, "
                f"got shape {rgb.shape}; resize it first"
            )
        x = rgb.astype(np.float32) / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
