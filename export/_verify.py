"""Verify an artifact in its own runtime against the eager student on held-out world images.

The verification set is a few cross-view pairs rendered from the procedural world with seeds
that training data never uses (the synthetic datasets seed their towns with 63-bit
``SeedSequence`` hashes; these towns use small fixed seeds), in the CVUSA world's geometry
(256-px tiles over 90 m, 96x512 panoramas cut to a 65-degree band around the horizon). They
are preprocessed with :func:`d4g_edge.preprocess.preprocess`, the device's own code.

Float artifacts must reproduce the eager embeddings (min cosine >= 0.999); int8 ones must
still retrieve: the R@1 of the artifact's embeddings against a gallery (by default the eager
embeddings of the same images, pair i matching i; the benchmark passes the other view's
embeddings) must keep ``min_r1_retention`` of the eager R@1, and their top-k neighbours are
reported as an agreement fraction.

The artifact runs through :func:`d4g_edge.runtime.open_encoder`, the path the device takes
(:func:`device_runner`): it reads the config the artifact carries, checks the input shape and
L2-normalises, so an artifact the SDK cannot open, or that carries another config, fails here.

Usage::

    pairs = world_pairs(32)                       # cached per (n, seed)
    x = model_inputs(pairs, cfg)                  # (32, 3, H, W) float32, as on the device
    report = verify(device_runner(path, expected=meta), model, x, quant="int8")
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d4g_edge.config import EncoderConfig
from d4g_edge.log import logger
from d4g_edge.polar import polar_transform
from d4g_edge.preprocess import preprocess, resize_rgb
from export._common import VerificationError

VERIFY_SEED = 90_210  # towns of the verification set
CALIBRATION_SEED = 90_211  # towns int8 calibration reads (never the verification towns)
TOWN_SIZE_M, PAIRS_PER_TOWN = 400.0, 8
SAT_PX, TILE_M = 256, 90.0
PANO_HW, PANO_VFOV_DEG = (96, 512), 65.0


@dataclass(frozen=True)
class WorldPairs:
    """``n`` pairs: panorama ``ground[i]`` was taken at the centre of tile ``satellite[i]``."""

    ground: np.ndarray  # (n, 96, 512, 3) uint8
    satellite: np.ndarray  # (n, 256, 256, 3) uint8
    seed: int

    def images(self, view: str) -> np.ndarray:
        if view == "drone":  # rendered on first use: ground/satellite exports never pay for it
            return drone_frames(len(self.ground), self.seed)
        if view not in ("ground", "satellite"):
            raise ValueError(
                f"the verification set has ground, satellite and drone images, not {view!r}"
            )
        return self.ground if view == "ground" else self.satellite


@functools.lru_cache(maxsize=4)
def world_pairs(n: int, seed: int = VERIFY_SEED) -> WorldPairs:
    """Render ``n`` held-out pairs (deterministic in ``seed``; ~0.2 s a pair)."""
    from train.world import TOWN_STYLES, DomainGap, World

    ground, satellite = [], []
    for town in range(math.ceil(n / PAIRS_PER_TOWN)):
        world = World.generate(
            seed * 100 + town, TOWN_STYLES[town % len(TOWN_STYLES)], size_m=TOWN_SIZE_M
        )
        rng = np.random.default_rng([seed, town])
        count = min(PAIRS_PER_TOWN, n - len(ground))
        for east_north in world.sample_street_points(count, rng, margin_m=0.75 * TILE_M):
            satellite.append(
                world.render_satellite(
                    east_north,
                    size_px=SAT_PX,
                    gsd_m=TILE_M / SAT_PX,
                    gap=DomainGap.sample(rng, 1.0),
                    rng=rng,
                )
            )
            # the 65-degree band of a taller full-sphere panorama, as the CVUSA world writes it
            full = round(PANO_HW[0] * 180.0 / PANO_VFOV_DEG)
            pano = world.render_panorama(
                east_north, height=full, width=PANO_HW[1], gap=DomainGap.sample(rng, 1.0), rng=rng
            )
            top = (full - PANO_HW[0]) // 2
            ground.append(pano[top : top + PANO_HW[0]])
    return WorldPairs(np.stack(ground), np.stack(satellite), seed)


@functools.lru_cache(maxsize=4)
def drone_frames(n: int, seed: int = VERIFY_SEED) -> np.ndarray:
    """``n`` held-out drone frames (n, 128, 128, 3) uint8 over the verification towns, as the
    University-1652 world writes them: 40-250 m up, nadir to 45 degrees, any heading."""
    from train.world import TOWN_STYLES, DomainGap, World

    frames = []
    for town in range(math.ceil(n / PAIRS_PER_TOWN)):
        world = World.generate(
            seed * 100 + town, TOWN_STYLES[town % len(TOWN_STYLES)], size_m=TOWN_SIZE_M
        )
        rng = np.random.default_rng([seed, town, 1652])
        count = min(PAIRS_PER_TOWN, n - len(frames))
        for east_north in world.sample_street_points(count, rng, margin_m=0.75 * TILE_M):
            frames.append(
                world.render_drone(
                    east_north,
                    altitude_m=float(np.exp(rng.uniform(np.log(40.0), np.log(250.0)))),
                    pitch_deg=float(rng.uniform(0.0, 45.0)),
                    heading_deg=float(rng.uniform(0.0, 360.0)),
                    gap=DomainGap.sample(rng, 1.0),
                    rng=rng,
                )
            )
    return np.stack(frames)


def model_inputs(pairs: WorldPairs, cfg: EncoderConfig, view: str | None = None) -> np.ndarray:
    """The encoder's input tensors (N, 3, H, W) float32, via the device's preprocessing."""
    view = cfg.view if view is None else view
    return np.concatenate([preprocess(img, cfg, view) for img in pairs.images(view)])


def pixel_inputs(pairs: WorldPairs, cfg: EncoderConfig, view: str | None = None) -> np.ndarray:
    """RGB pixels (N, 3, H, W) float32 in [0, 255], resized (and polar-transformed) but not
    normalised: what an artifact with normalisation inside (Core ML's image input) takes."""
    view = cfg.view if view is None else view
    spec = cfg.input(view)
    out = []
    for img in pairs.images(view):
        x = resize_rgb(img, spec.size).astype(np.float32)
        if spec.polar is not None:
            x = polar_transform(x / 255.0, *spec.polar) * 255.0
        out.append(x.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def device_runner(
    path: str | Path,
    threads: int | None = None,
    expected: EncoderConfig | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """``x (N, 3, H, W) -> embeddings (N, D)`` through :func:`d4g_edge.runtime.open_encoder`
    (the backend from the suffix: ``.onnx`` onnxruntime, ``.pte`` ExecuTorch).

    The SDK's errors become :class:`VerificationError` (the artifact is not kept), and so does
    a config other than ``expected``: what the device reads must be what the exporter meant.
    """
    from d4g_edge.errors import EncoderError
    from d4g_edge.runtime import open_encoder

    name = Path(path).name
    try:
        encoder = open_encoder(path, threads=threads)
    except EncoderError as err:
        raise VerificationError(f"{name}: the device runtime cannot open it: {err}") from None
    if expected is not None and encoder.config.to_dict() != expected.to_dict():
        raise VerificationError(
            f"{name}: the device reads the config {encoder.config.to_dict()}, "
            f"the exporter wrote {expected.to_dict()}"
        )

    def run(x: np.ndarray) -> np.ndarray:
        try:
            return encoder.embed_tensor(x)
        except EncoderError as err:
            raise VerificationError(f"{name}: the device runtime failed: {err}") from None

    return run


def eager_embed(model, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """The eager model's embeddings of ``x`` (N, 3, H, W) as float32 (N, D)."""
    import torch

    with torch.no_grad():
        return np.concatenate(
            [model(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)]
        ).astype(np.float32)


@dataclass(frozen=True)
class Parity:
    """How an artifact's embeddings compare with the eager model's on the same inputs."""

    n: int
    min_cosine: float
    mean_cosine: float
    r1: float  # artifact queries against the gallery, pair i matching gallery item i
    r1_eager: float  # eager queries against the same gallery
    topk_agreement: float  # mean overlap of the k nearest gallery items, artifact vs eager
    k: int

    @property
    def r1_retention(self) -> float:
        return self.r1 / self.r1_eager if self.r1_eager else float(self.r1 == self.r1_eager)

    def summary(self) -> str:
        return (
            f"n={self.n} cosine min {self.min_cosine:.5f} mean {self.mean_cosine:.5f}; "
            f"R@1 {100 * self.r1:.1f} % (eager {100 * self.r1_eager:.1f} %); "
            f"top-{self.k} agreement {100 * self.topk_agreement:.1f} %"
        )


def recall_at_1(queries: np.ndarray, gallery: np.ndarray) -> float:
    """Fraction of queries whose true match (gallery row i) has no strictly higher score."""
    scores = queries @ gallery.T
    true = np.diag(scores)[:, None]
    return float(np.mean((scores > true).sum(1) == 0))


def parity(
    eager: np.ndarray, got: np.ndarray, gallery: np.ndarray | None = None, k: int = 5
) -> Parity:
    """Compare artifact embeddings ``got`` with ``eager`` (both (N, D), row i = input i)."""
    gallery = eager if gallery is None else gallery
    cos = np.sum(_unit(eager) * _unit(got), axis=1)
    k = min(k, len(gallery))
    top_e = np.argsort(-(eager @ gallery.T), axis=1)[:, :k]
    top_g = np.argsort(-(got @ gallery.T), axis=1)[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top_e, top_g, strict=True)]
    return Parity(
        n=len(eager),
        min_cosine=float(cos.min()),
        mean_cosine=float(cos.mean()),
        r1=recall_at_1(got, gallery),
        r1_eager=recall_at_1(eager, gallery),
        topk_agreement=float(np.mean(overlap)),
        k=k,
    )


@dataclass(frozen=True)
class Criteria:
    """What an artifact of one precision must reach to be kept."""

    min_cosine: float
    min_r1_retention: float | None = None


# Float runtimes reorder sums only; fp16 compute rounds every activation to 11 bits; int8 is
# judged by retrieval (cosine only catches a broken graph).
CRITERIA = {
    "fp32": Criteria(min_cosine=0.999),
    "fp16": Criteria(min_cosine=0.995),
    "int8": Criteria(min_cosine=0.9, min_r1_retention=0.95),
}


def criteria_for(quant: str) -> Criteria:
    """Float schemes by cosine; every integer scheme (int8, int8-int4w, pt2e-int8, ...) as int8."""
    return CRITERIA.get(quant, CRITERIA["int8"])


def check(report: Parity, criteria: Criteria, eager: np.ndarray, got: np.ndarray, what: str):
    """Raise :class:`VerificationError` (with the first values) unless ``report`` passes."""
    failures = []
    if not report.min_cosine >= criteria.min_cosine:  # also catches NaN
        failures.append(f"min cosine {report.min_cosine:.5f} < {criteria.min_cosine}")
    if criteria.min_r1_retention is not None and report.r1_retention < criteria.min_r1_retention:
        failures.append(f"R@1 retention {report.r1_retention:.3f} < {criteria.min_r1_retention}")
    if failures:
        worst = int(np.argmin(np.sum(_unit(eager) * _unit(got), axis=1)))
        raise VerificationError(
            f"{what}: {'; '.join(failures)} ({report.summary()}); input {worst}: eager "
            f"{np.array2string(eager[worst, :5], precision=4)} vs artifact "
            f"{np.array2string(got[worst, :5], precision=4)}"
        )


def verify(
    run: Callable[[np.ndarray], np.ndarray],
    model,
    x: np.ndarray,
    quant: str,
    what: str = "artifact",
    gallery: np.ndarray | None = None,
    artifact_x: np.ndarray | None = None,
) -> Parity:
    """Run ``x`` through the eager ``model`` and the artifact (``run``; it gets ``artifact_x``
    instead where its input differs, e.g. raw pixels); check, log and return the report."""
    eager = eager_embed(model, x)
    got = np.asarray(run(x if artifact_x is None else artifact_x), dtype=np.float32)
    if got.shape != eager.shape:
        raise VerificationError(
            f"{what}: output shape {got.shape}, expected {eager.shape} (the eager model's)"
        )
    report = parity(eager, got, gallery)
    check(report, criteria_for(quant), eager, got, what)
    logger.info("verified %s (%s): %s", what, quant, report.summary())
    return report


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
