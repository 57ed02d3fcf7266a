"""A classical, non-learned cross-view baseline: polar-transformed tiles vs panoramas.

Each satellite tile is resampled by the standard CVGL polar transform (Shi et al., SAFA):
the tile centre is the camera, the radius runs from the tile's inscribed circle (panorama
row at the horizon) to its centre (the last row, straight down), and the angle becomes the
panorama column under this project's convention (north at ``x = W/2``, azimuth clockwise).
A band of panorama rows below the horizon is block-averaged to the same small grid and both
are compared by normalised cross-correlation (NCC) of zero-mean colour or gradient
descriptors:

* ``aligned``: north-aligned views (CVUSA-style), NCC is a dot product of descriptors, so
  they are embeddings and can be saved for ``python -m train.evaluate --embeddings``;
* ``any``: orientation unknown, score = max NCC over every circular column shift (FFT).

This is a floor a learned model must clear, not a method: the polar transform maps radius
linearly onto panorama rows, which is only roughly what a camera at eye height sees. From
2 m, everything farther than ~6 m is imaged within ~18 degrees of the horizon and the rest
of the lower half is the road under the camera, so pairing the tile with the *whole* lower
half (``--pano-bottom 1.0``, the textbook choice) scores at chance on the synthetic world.
The default band (rows 0.5-0.6 of a full-sphere panorama, horizon to 18 degrees below) and
grid were chosen on the synthetic world's train split; real datasets crop panoramas
differently (CVUSA keeps ~65 degrees around the horizon), so set the band per dataset.

Usage::

    python -m train.baseline --dataset cvusa --data DIR --split test --json baseline.json

    from d4g_edge.polar import polar_transform
    polar = polar_transform(tile, height=16, width=64)  # (16, 64, 3) float32
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from d4g_edge.cli.args import config_from_args, dataclass_parser
from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger, setup_logging
from d4g_edge.polar import polar_transform
from train.loop.arg_checks import check_output_file, user_message
from train.metrics import RetrievalMetrics, evaluate_retrieval, evaluate_scores

FEATURES = ("colour", "gradient")
ORIENTATIONS = ("aligned", "any")
_OVERSAMPLE = 4  # sample 4x finer than the descriptor grid, then block-average (anti-alias)


def block_mean(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Average ``img`` (H x W x C, H and W multiples of the target) down to ``height x width``."""
    h, w, c = img.shape
    if h % height or w % width:
        raise ValueError(f"cannot block-average {h}x{w} to {height}x{width}")
    return img.reshape(height, h // height, width, w // width, c).mean(axis=(1, 3))


def describe(img: np.ndarray, features: str) -> np.ndarray:
    """Zero-mean, unit-norm descriptor (flattened) of a small H x W x 3 float image.

    ``colour``: RGB minus each channel's mean (removes a global colour cast / exposure);
    ``gradient``: circular column and row differences of grey, robust to colour shifts.
    """
    if features == "colour":
        x = img - img.mean(axis=(0, 1), keepdims=True)
    elif features == "gradient":
        grey = img.mean(axis=2)
        gx = np.roll(grey, -1, axis=1) - grey  # azimuth wraps around
        gy = np.diff(grey, axis=0, append=grey[-1:])
        x = np.stack([gx, gy], axis=-1)
        x = x - x.mean(axis=(0, 1), keepdims=True)
    else:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    norm = np.linalg.norm(x)
    return (x / norm if norm > 0 else x).astype(np.float32)  # a flat image describes nothing


def tile_descriptor(tile: np.ndarray, size: tuple[int, int], features: str) -> np.ndarray:
    h, w = size
    polar = polar_transform(tile, h * _OVERSAMPLE, w * _OVERSAMPLE)
    return describe(block_mean(polar, h, w), features)


def pano_descriptor(
    pano: np.ndarray,
    size: tuple[int, int],
    features: str,
    rows: tuple[float, float] = (0.5, 1.0),
) -> np.ndarray:
    """Descriptor of the panorama rows between fractions ``rows`` of its height.

    The default is the whole lower half (horizon to nadir), the standard pairing with the
    polar transform.
    """
    h, w = size
    top, bottom = (round(f * pano.shape[0]) for f in rows)
    if not 0 <= top < bottom <= pano.shape[0]:
        raise ValueError(f"panorama rows {rows} must satisfy 0 <= top < bottom <= 1")
    lower = pano[top:bottom].astype(np.float32)
    # nearest-row/column resampling to a multiple of the grid, then an exact block mean
    rows = (np.arange(h * _OVERSAMPLE) + 0.5) * lower.shape[0] / (h * _OVERSAMPLE)
    cols = (np.arange(w * _OVERSAMPLE) + 0.5) * lower.shape[1] / (w * _OVERSAMPLE)
    sampled = lower[rows.astype(np.int64)][:, cols.astype(np.int64)]
    return describe(block_mean(sampled, h, w), features)


def shift_invariant_scores(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Max over circular column shifts of the correlation of (N, h, w, c) descriptors.

    By the correlation theorem, all ``w`` shifts of every pair cost one FFT per descriptor
    plus a complex matrix product per frequency, instead of ``w`` dot products per pair.
    """
    w = query.shape[2]
    fq = np.fft.rfft(query, axis=2).transpose(2, 0, 1, 3).reshape(w // 2 + 1, len(query), -1)
    fr = (
        np.fft.rfft(reference, axis=2).transpose(2, 0, 1, 3).reshape(w // 2 + 1, len(reference), -1)
    )
    cross = fq @ fr.conj().transpose(0, 2, 1)  # (freq, Q, R)
    return np.fft.irfft(cross, n=w, axis=0).max(axis=0)


@dataclass(frozen=True)
class BaselineConfig:
    """``python -m train.baseline`` options (the parser is built from these fields)."""

    dataset: str = field(
        metadata={"help": "dataset layout", "choices": ("cvact", "cvusa", "vigor")}
    )
    data: Path = field(metadata={"help": "dataset root directory"})
    split: str = field(default="test", metadata={"help": "split to evaluate"})
    size: tuple[int, int] = field(
        default=(4, 64), metadata={"help": "descriptor grid ROWSxCOLS (rows below the horizon)"}
    )
    pano_top: float = field(
        default=0.5, metadata={"help": "first panorama row used, as a fraction of its height"}
    )
    pano_bottom: float = field(
        default=0.6,
        metadata={"help": "end of the panorama rows used (fraction; 1.0 = whole lower half)"},
    )
    features: str = field(default="colour", metadata={"help": "descriptor", "choices": FEATURES})
    orientation: str = field(
        default="aligned",
        metadata={"help": "aligned: north-aligned panoramas; any: max over rotations",
                  "choices": ORIENTATIONS},
    )  # fmt: skip
    json: Path | None = field(default=None, metadata={"help": "write metrics as JSON here"})
    save_embeddings: Path | None = field(
        default=None, metadata={"help": "write descriptors as an embeddings .npz (aligned only)"}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.pano_top < self.pano_bottom <= 1.0:
            raise ValueError(
                f"need 0 <= pano_top < pano_bottom <= 1, got {self.pano_top}, {self.pano_bottom}"
            )
        if self.features not in FEATURES or self.orientation not in ORIENTATIONS:
            raise ValueError(
                f"features must be one of {FEATURES} and orientation one of {ORIENTATIONS}, "
                f"got {self.features!r}, {self.orientation!r}"
            )
        if min(self.size) < 1:
            raise ValueError(f"size must be positive ROWSxCOLS, got {self.size}")
        if self.save_embeddings is not None and self.orientation != "aligned":
            raise ValueError(
                "--save-embeddings needs --orientation aligned (max-over-shifts scores are "
                "not dot products of embeddings)"
            )


def describe_split(split, cfg: BaselineConfig) -> tuple[np.ndarray, np.ndarray]:
    """(Q, h, w, c) panorama and (R, h, w, c) tile descriptors of a loaded split."""
    from train.datasets import read_image

    h, w = cfg.size
    rows = (cfg.pano_top, cfg.pano_bottom)
    q = [pano_descriptor(read_image(p), (h, w), cfg.features, rows)
         for p in tqdm(split.query_paths, desc="panoramas", leave=False)]  # fmt: skip
    r = [tile_descriptor(read_image(p), (h, w), cfg.features)
         for p in tqdm(split.reference_paths, desc="tiles", leave=False)]  # fmt: skip
    return np.stack(q), np.stack(r)


def run(cfg: BaselineConfig) -> RetrievalMetrics:
    from train.datasets import load

    split = load(cfg.dataset, cfg.data, cfg.split)
    logger.info("baseline on %s/%s: %d queries, %d references", cfg.dataset, cfg.split,
                len(split), split.num_references)  # fmt: skip
    q, r = describe_split(split, cfg)
    common = dict(
        semi_positive_ids=split.semi_positive_ids,
        query_latlon=split.query_latlon,
        reference_latlon=split.reference_latlon,
    )
    if cfg.orientation == "aligned":
        qf, rf = q.reshape(len(q), -1), r.reshape(len(r), -1)
        metrics = evaluate_retrieval(qf, rf, split.query_ids, split.reference_ids, **common)
        if cfg.save_embeddings is not None:
            from train.evaluate import save_embeddings

            extra = {k: v for k, v in common.items() if v is not None}
            save_embeddings(cfg.save_embeddings, qf, rf, split.query_ids, split.reference_ids,
                            **extra)  # fmt: skip
    else:
        metrics = evaluate_scores(
            lambda a, b: shift_invariant_scores(q[a:b], r),
            split.query_ids,
            split.reference_ids,
            chunk=max(1, 2**22 // (len(r) * (cfg.size[1] // 2 + 1))),  # complex block ~64 MiB
            **common,
        )
    if cfg.json is not None:
        record = {"config": {k: str(v) for k, v in dataclasses.asdict(cfg).items()},
                  "metrics": metrics.to_dict()}  # fmt: skip
        atomic_write(cfg.json, json.dumps(record, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = dataclass_parser(BaselineConfig, description=__doc__.split("Usage::")[0])
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(BaselineConfig, args)
        logger.info("train.baseline %s", cfg)
        check_output_file(cfg.json, "--json")  # before the work, not after
        check_output_file(cfg.save_embeddings, "--save-embeddings")
        metrics = run(cfg)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"error: {user_message(e)}\n")
    print(metrics.format_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
