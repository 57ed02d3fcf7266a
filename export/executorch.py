"""Export a student to ExecuTorch (XNNPACK): ``python -m export.executorch``.

``torch.export`` (dynamic batch up to :data:`MAX_BATCH`) -> ``to_edge_transform_and_lower``
with the XNNPACK partitioner -> ``OUT/{view}_{quant}.pte``. The encoder config is embedded as
the constant method ``encoder_config`` (a JSON string) and written next to the file as
``{view}_{quant}.pte.json``. Before it is renamed into place the ``.pte`` is loaded by
``executorch.runtime`` and run on held-out world images: float must match eager (every
cosine >= 0.999); int8 must keep each image's nearest fp32 embedding its own (top-1
agreement >= 0.9) at mean cosine >= 0.95. The operators the delegate did not take are
logged by count, and the p50 latency (1 thread) is measured.

``--quant``: ``fp32``; ``int8`` / ``pt2e-int8`` without ``--qat``: post-training PT2E with
the XNNPACK quantizer calibrated on world images (the config records ``pt2e-int8``);
with ``--qat RUN`` the quantized program of a ``quantize.qat`` run (its scheme, ``int8``
or ``int8-int4w``, is the default ``--quant``).

Usage::

    python -m export.executorch --view ground --out artifacts            # fp32
    python -m export.executorch --view ground --quant int8 --qat runs/qat_ground
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.export import Dim

from d4g_edge import logger
from d4g_edge.config import EncoderConfig
from export._et_runtime import (
    PteModel,
    VerificationError,
    check_float,
    check_int8,
    delegate_calls,
    undelegated_ops,
)
from quantize import linear_qat, pt2e
from quantize._shared import (
    CALIBRATION_SEED,
    VERIFY_SEED,
    UserError,
    atomic_write,
    config_json,
    file_sha256,
    run_cli,
    temp_path,
    world_images,
)
from quantize.artifact import load_quantized
from train.default_weights import default_student
from train.encoder_source import load_student

QUANTS = ("fp32", "int8", "pt2e-int8", "int8-int4w")
CONFIG_METHOD = "encoder_config"
# The memory plan is sized for the largest batch, so the bound is kept small (a device embeds
# one frame at a time; index building batches a few tiles).
MAX_BATCH = 8


@dataclass(frozen=True)
class ExecuTorchConfig:
    view: str = field(
        default="ground", metadata={"help": "which student", "choices": ("ground", "satellite")}
    )
    checkpoint: Path | None = field(
        default=None, metadata={"help": "fp32 student (default: the committed one)"}
    )
    quant: str | None = field(
        default=None,
        metadata={
            "help": "precision (default: fp32, or the --qat run's scheme)",
            "choices": QUANTS,
        },
    )
    qat: Path | None = field(
        default=None, metadata={"help": "quantize.qat run folder holding the quantized student"}
    )
    out: Path = field(default=Path("artifacts"), metadata={"help": "output folder"})
    calibration: int = field(default=64, metadata={"help": "world images calibrating PTQ int8"})
    verify_images: int = field(default=16, metadata={"help": "held-out world images verified"})
    bench_runs: int = field(default=50, metadata={"help": "timed runs for p50 (0: skip)"})
    threads: int = field(default=1, metadata={"help": "XNNPACK threads when timing"})

    def __post_init__(self) -> None:
        if self.verify_images < 2 or self.calibration < 1 or self.bench_runs < 0:
            raise UserError(
                "--verify-images must be >= 2, --calibration >= 1 and --bench-runs >= 0"
            )


@dataclass(frozen=True)
class ExportResult:
    path: Path
    bytes: int
    quantization: str
    agreement: dict
    undelegated: dict
    delegate_calls: int
    latency: dict

    def summary(self) -> str:
        lat = f", p50 {self.latency['p50_ms']:.1f} ms" if self.latency else ""
        return (
            f"{self.path} ({self.bytes / 1e6:.1f} MB, {self.quantization}){lat}; "
            f"vs eager {self.agreement}; undelegated ops {sum(self.undelegated.values())}"
        )


def _source(cfg: ExecuTorchConfig) -> tuple[torch.nn.Module, EncoderConfig]:
    """The fp32 student (the eager reference) and its config with the file's SHA-256."""
    path = Path(cfg.checkpoint) if cfg.checkpoint else default_student(cfg.view)
    if not path.is_file():
        raise UserError(f"--checkpoint {path}: no such file; pass a train.distill student_*.pt")
    try:
        model, enc = load_student(path, view=cfg.view)
    except ValueError as err:  # train.checkpoint.CheckpointError: wrong kind/view, bad sidecar
        raise UserError(str(err)) from err
    return model, enc.replace(weights_sha256=file_sha256(path))


def _quantized(cfg: ExecuTorchConfig, model, enc: EncoderConfig, quant: str):
    """(module to export, its config): the QAT run's program, or post-training quantization."""
    if cfg.qat is not None:
        program, qcfg = load_quantized(cfg.qat, cfg.view)
        if qcfg.weights_sha256 != enc.weights_sha256:
            raise UserError(
                f"--qat {cfg.qat} was quantized from weights {qcfg.weights_sha256}, not from "
                f"the checkpoint {cfg.checkpoint or 'default'} ({enc.weights_sha256}); pass "
                "the --checkpoint that quantize.qat used"
            )
        if quant != qcfg.quantization:
            raise UserError(f"--quant {quant} but --qat {cfg.qat} holds {qcfg.quantization}")
        return program.module(), qcfg
    if quant == "int8-int4w":
        # no data needed: dynamic activations, weights quantized as they are
        import copy

        return linear_qat.convert(linear_qat.prepare(copy.deepcopy(model))), enc.replace(
            quantization=quant
        )
    shape = (2, 3, *enc.input().tensor_shape)
    prepared = pt2e.prepare_ptq(model, shape)
    images = torch.from_numpy(world_images(enc, cfg.calibration, CALIBRATION_SEED))
    pt2e.calibrate(prepared, images.split(8))
    return pt2e.convert(prepared), enc.replace(quantization="pt2e-int8")


def _partitioner(quantized: bool):
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    from executorch.backends.xnnpack.partition.config.generic_node_configs import (
        ConstantPadConfig,
    )
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    if not quantized:
        return XnnpackPartitioner()
    # A quantized constant_pad_nd inside the delegate builds a .pte that fails at load time
    # ("Failed to create StaticConstantPad node", probe on FasterViT-0): keep pad outside.
    configs = [c for c in ALL_PARTITIONER_CONFIGS if c is not ConstantPadConfig]
    return XnnpackPartitioner(configs=configs)


def lower(module, enc: EncoderConfig):
    """``module`` -> (ExecuTorch program manager, undelegated op counts, delegate calls)."""
    from executorch.exir import to_edge_transform_and_lower

    h, w = enc.input().tensor_shape
    program = torch.export.export(
        module,
        (torch.zeros(2, 3, h, w),),
        dynamic_shapes=({0: Dim("batch", min=1, max=MAX_BATCH)},),
    )
    edge = to_edge_transform_and_lower(
        program,
        partitioner=[_partitioner(enc.quantization != "fp32")],
        constant_methods={CONFIG_METHOD: config_json(enc)},
    )
    ops, calls = undelegated_ops(edge), delegate_calls(edge)
    logger.info(
        "XNNPACK took %d subgraphs; not delegated (%d nodes): %s", calls, sum(ops.values()), ops
    )
    return edge.to_executorch(), ops, calls


def _verify(pte: PteModel, model, enc: EncoderConfig, images: np.ndarray) -> dict:
    embedded = json.loads(pte.constant(CONFIG_METHOD))
    if embedded != enc.to_dict():
        raise VerificationError(f"embedded {CONFIG_METHOD} differs from the config written")
    with torch.no_grad():
        eager = np.concatenate(
            [model(x).numpy() for x in torch.from_numpy(images).split(MAX_BATCH)]
        )
    got = np.concatenate([pte(x) for x in np.array_split(images, -(-len(images) // MAX_BATCH))])
    if got.shape != eager.shape:
        raise VerificationError(f"artifact output {got.shape} != eager {eager.shape}")
    if enc.quantization == "fp32":
        return check_float(got, eager).to_dict()
    return check_int8(got, eager).to_dict()


def export(cfg: ExecuTorchConfig) -> ExportResult:
    """Write, verify and time ``{out}/{view}_{quant}.pte`` (+ ``.json``); returns what it did."""
    t0 = time.time()
    quant = cfg.quant or "fp32"
    model, enc = _source(cfg)
    if cfg.qat is not None and cfg.quant is None:
        quant = load_quantized(cfg.qat, cfg.view)[1].quantization
    if quant == "fp32" and cfg.qat is not None:
        raise UserError("--quant fp32 with --qat: drop --qat (it holds a quantized student)")
    module, qenc = (model, enc) if quant == "fp32" else _quantized(cfg, model, enc, quant)
    program, ops, calls = lower(module, qenc)
    path = Path(cfg.out) / f"{cfg.view}_{quant}.pte"
    tmp = temp_path(path, suffix=".pte")
    try:
        tmp.write_bytes(program.buffer)
        pte = PteModel(tmp, threads=cfg.threads)
        images = world_images(enc, cfg.verify_images, VERIFY_SEED)
        agreement = _verify(pte, model, qenc, images)
        latency = pte.latency_ms(images[:1], runs=cfg.bench_runs) if cfg.bench_runs else {}
        del pte
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed artifact is never left behind
    atomic_write(path.with_name(path.name + ".json"), json.dumps(qenc.to_dict(), indent=1))
    result = ExportResult(
        path, path.stat().st_size, qenc.quantization, agreement, ops, calls, latency
    )
    logger.info("%s in %.0f s", result.summary(), time.time() - t0)
    return result


def main(argv: list[str] | None = None) -> None:
    result = run_cli(ExecuTorchConfig, export, argv, __doc__, failures=(VerificationError,))
    print(result.summary())


if __name__ == "__main__":
    main()
