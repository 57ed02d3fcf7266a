"""Export a student to ExecuTorch (XNNPACK): ``python -m export.executorch``.

``torch.export`` (batch 1, see :data:`MAX_BATCH`) -> ``to_edge_transform_and_lower``
with the XNNPACK partitioner -> ``OUT/{view}_{quant}.pte``. The encoder config is embedded as
the constant method ``encoder_config`` (a JSON string) and written next to the file as
``{view}_{quant}.pte.json``. Before it is renamed into place the ``.pte`` (with that sidecar)
is opened by ``d4g_edge.runtime.open_encoder``, the device's path into ``executorch.runtime``,
and checked against eager on held-out world images by ``export/_verify.py``, with the
thresholds every format shares. The operators the delegate did not take are logged by count;
``export.bench`` measures latency.

``--quant``: ``fp32``; ``int8`` / ``pt2e-int8`` without ``--qat``: post-training PT2E with
the XNNPACK quantizer calibrated on world images (the config records ``pt2e-int8``);
``int8-int4w`` without ``--qat``: torchao's dynamic int8 activations / int4 weights on the
Linear layers; with ``--qat RUN`` the quantized program of a ``quantize.qat`` run (its
scheme is the default ``--quant``).

Usage::

    python -m export.executorch --view ground --out artifacts            # fp32
    python -m export.executorch --view ground --quant int8 --qat runs/qat_ground
"""

from __future__ import annotations

import collections
import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from d4g_edge.config import EncoderConfig
from d4g_edge.log import logger
from export._common import (
    ExportConfig,
    ExportError,
    Source,
    VerificationError,
    artifact_config,
    artifact_path,
    atomic_artifact,
    config_json,
    flag,
    load_source,
    logged_export,
    run_cli,
    write_config_sidecar,
)
from export._verify import CALIBRATION_SEED, device_runner, model_inputs, verify, world_pairs
from export.formats import get_format
from quantize import linear_qat, pt2e
from quantize.artifact import load_quantized

FORMAT = get_format("executorch")  # --quant choices, suffix, benchmarked ones: the table
CONFIG_METHOD = "encoder_config"
# The .pte is static at batch 1, which is what a device runs. A program exported with a dynamic
# batch (Dim 1..8) and lowered to XNNPACK ran only at the example's batch size for the
# deployed fastervit_edge (other sizes: "Error resizing tensor at input 0", error 0x10 in
# executorch 1.5.1), so the device runtime feeds one image at a time.
MAX_BATCH = 1
_CALIBRATION_CHUNK = 8
_NOT_OPS = {"executorch_call_delegate", "getitem"}


@dataclass(frozen=True)
class ExecuTorchConfig(ExportConfig):
    quant: str | None = field(
        default=None,
        metadata=flag("precision (default: fp32, or the --qat run's scheme)", FORMAT.quants),
    )
    qat: Path | None = field(
        default=None, metadata=flag("quantize.qat run folder holding the quantized student")
    )
    calibration_pairs: int = field(
        default=32, metadata=flag("held-out world images post-training int8 calibration reads")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calibration_pairs < 1:
            raise ExportError(f"calibration_pairs must be >= 1, got {self.calibration_pairs}")
        if self.qat is not None and not isinstance(self.qat, Path):
            object.__setattr__(self, "qat", Path(self.qat))


def _resolve_quant(cfg: ExecuTorchConfig) -> str:
    if cfg.qat is None:
        return cfg.quant or "fp32"
    if cfg.quant == "fp32":
        raise ExportError("--quant fp32 with --qat: drop --qat (it holds a quantized student)")
    return cfg.quant or load_quantized(cfg.qat, cfg.view)[1].quantization


def _quantized(cfg: ExecuTorchConfig, src: Source, quant: str):
    """(module to export, its config): the QAT run's program, or post-training quantization."""
    if cfg.qat is not None:
        program, qcfg = load_quantized(cfg.qat, cfg.view)
        if qcfg.weights_sha256 != src.cfg.weights_sha256:
            raise ExportError(
                f"--qat {cfg.qat} was quantized from weights {qcfg.weights_sha256}, not from "
                f"the checkpoint {cfg.checkpoint or 'default'} ({src.cfg.weights_sha256}); "
                "pass the --checkpoint that quantize.qat used"
            )
        if quant != qcfg.quantization:
            raise ExportError(f"--quant {quant} but --qat {cfg.qat} holds {qcfg.quantization}")
        return program.module(), qcfg
    if quant == "int8-int4w":  # no data needed: dynamic activations, weights as they are
        module = linear_qat.convert(linear_qat.prepare(copy.deepcopy(src.model)))
        return module, src.cfg.replace(quantization=quant)
    prepared = pt2e.prepare_ptq(src.model, (2, 3, *src.cfg.input().tensor_shape))
    calib = model_inputs(world_pairs(cfg.calibration_pairs, CALIBRATION_SEED), src.cfg)
    pt2e.calibrate(prepared, torch.from_numpy(calib).split(_CALIBRATION_CHUNK))
    return pt2e.convert(prepared), src.cfg.replace(quantization="pt2e-int8")


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


def undelegated_ops(edge_manager) -> dict[str, int]:
    """Operator -> count of the nodes the XNNPACK delegate did not take (run by the portable
    CPU kernels instead), most frequent first."""
    graph = edge_manager.exported_program().graph_module.graph
    counts = collections.Counter(
        getattr(n.target, "__name__", str(n.target)) for n in graph.nodes if n.op == "call_function"
    )
    return {k: v for k, v in counts.most_common() if k not in _NOT_OPS}


def delegate_calls(edge_manager) -> int:
    """How many subgraphs the XNNPACK delegate took."""
    graph = edge_manager.exported_program().graph_module.graph
    return sum(
        1
        for n in graph.nodes
        if n.op == "call_function"
        and getattr(n.target, "__name__", "") == "executorch_call_delegate"
    )


def lower(module, enc: EncoderConfig):
    """``module`` -> (ExecuTorch program manager, undelegated op counts, delegate calls)."""
    from executorch.exir import to_edge_transform_and_lower

    h, w = enc.input().tensor_shape
    program = torch.export.export(
        module,
        (torch.zeros(MAX_BATCH, 3, h, w),),
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


def runner(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """``x (N, 3, H, W) -> embeddings (N, D)`` as the device runs ``path`` (it needs its
    ``.pte.json`` sidecar): ``d4g_edge.runtime.open_encoder``, one image at a time
    (:data:`MAX_BATCH`), on an XNNPACK thread pool of ``threads`` (which the SDK sizes:
    :func:`d4g_edge.runtime.set_executorch_threads`)."""
    return _in_batches(device_runner(path, threads))


def _in_batches(run: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``run`` fed :data:`MAX_BATCH` images at a time, as the SDK ends up feeding a static
    program (it tries the whole batch first, which makes the runtime print an error line)."""
    return lambda x: np.concatenate(
        [run(x[i : i + MAX_BATCH]) for i in range(0, len(x), MAX_BATCH)]
    )


def embedded_config(path: Path) -> str:
    """The JSON string the program's :data:`CONFIG_METHOD` constant method returns."""
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(Path(path))
    if CONFIG_METHOD not in program.method_names:
        raise VerificationError(
            f"{Path(path).name} has no {CONFIG_METHOD!r} method ({sorted(program.method_names)})"
        )
    return program.load_method(CONFIG_METHOD).execute([])[0]


@logged_export
def export(cfg: ExecuTorchConfig) -> Path:
    """Write, verify and return ``cfg.out/{view}_{quant}.pte`` (+ its ``.json`` sidecar)."""
    quant = _resolve_quant(cfg)
    src = load_source(cfg.view, cfg.checkpoint)
    if quant == "fp32":
        module, qenc = src.model, artifact_config(src.cfg, quant)
    else:
        module, qenc = _quantized(cfg, src, quant)
    program, _, _ = lower(module, qenc)
    path = artifact_path(cfg.out, cfg.view, quant, FORMAT.ext)
    x = model_inputs(world_pairs(cfg.verify_pairs), src.cfg)
    with atomic_artifact(path) as tmp:
        tmp.write_bytes(program.buffer)
        embedded = json.loads(embedded_config(tmp))
        if embedded != qenc.to_dict():
            raise VerificationError(f"{path.name}: embedded {CONFIG_METHOD} differs from {qenc}")
        # the device reads the config from the sidecar: give the temporary file one
        sidecar = write_config_sidecar(tmp, qenc)
        try:
            run = _in_batches(device_runner(tmp, expected=qenc))
            verify(run, src.model, x, qenc.quantization, what=path.name)
        finally:
            sidecar.unlink(missing_ok=True)
    write_config_sidecar(path, qenc)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(ExecuTorchConfig, export, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
