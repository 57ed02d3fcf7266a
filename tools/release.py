"""Publish trained students as the repository's committed defaults (fp16, new-format sidecar).

The trained ``edge-s`` students live in run folders (fp32, ~12 MB each); the copies committed
under ``weights/edge-s/`` (see :mod:`quantize.default_weights`) are the same weights in fp16
(half the size; fp16 rounding moves the embeddings by < 1e-3 cosine, checked on write) with
a format-2 sidecar whose EncoderConfig the exporters embed in every artifact.

Usage::

    python -m tools.release --checkpoint runs/ground_single24/student_ground.pt \
        runs/satellite_single24/student_satellite.pt --out weights/edge-s
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from d4g_edge.cli.args import config_from_args, dataclass_parser
from d4g_edge.log import logger, setup_logging
from train.loop import CheckpointError, load_encoder, save_checkpoint
from train.loop.checkpoint import read_sidecar

# A released copy must embed like its source: fp16 rounding of these weights moves unit
# embeddings by ~1e-4 in cosine; anything near this bound means the cast broke something.
_MIN_COSINE = 0.999


@dataclass(frozen=True)
class ReleaseConfig:
    checkpoint: tuple[Path, ...] = field(
        metadata={"help": "trained student checkpoint(s): student_<view>.pt of train.distill"}
    )
    out: Path = field(
        default=Path("weights/edge-s"), metadata={"help": "folder of the committed defaults"}
    )


def release(source: Path, out_dir: Path) -> Path:
    """Write ``source``'s student as fp16 ``out_dir/student_<view>.pt`` (+ sidecar)."""
    model, cfg, sidecar = load_encoder(source)
    if cfg.kind != "student":
        raise CheckpointError(f"{source} holds a {cfg.kind}; only students are released")
    extra = {k: v for k, v in sidecar.items() if k not in ("format", "sha256", "encoder")}
    extra["released_from"] = {"file": str(source), "sha256": sidecar["sha256"], "dtype": "fp32"}
    half = model.half()
    dest = Path(out_dir) / f"student_{cfg.view}.pt"
    save_checkpoint(dest, half, cfg, extra=extra)
    _check_same_embeddings(source, dest, cfg.input().tensor_shape)
    return dest


def _check_same_embeddings(source: Path, dest: Path, shape: tuple[int, int]) -> None:
    x = torch.randn(4, 3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = load_encoder(source)[0](x)
        b = load_encoder(dest)[0](x)
    cos = float((a * b).sum(-1).min())
    if cos < _MIN_COSINE:
        raise CheckpointError(f"{dest}: fp16 copy embeds differently (min cosine {cos:.5f})")
    logger.info("released %s -> %s (min cosine to fp32 %.6f)", source, dest, cos)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = config_from_args(ReleaseConfig, dataclass_parser(ReleaseConfig, __doc__).parse_args(argv))
    try:
        for path in cfg.checkpoint:
            if read_sidecar(path) is None:
                raise CheckpointError(f"{path} has no .json sidecar; pass a train.distill output")
            print(release(Path(path), cfg.out))
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
