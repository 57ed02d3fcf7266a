"""Export a student to ONNX (one self-contained file, dynamic batch), verified in onnxruntime
through ``d4g_edge.runtime.open_encoder``, as the device opens it.

``torch.onnx.export(dynamo=True)`` traces the deployed student; the weights are written into
the ``.onnx`` file itself (no ``.onnx.data``: these models are far below protobuf's 2 GB) and
the encoder config goes into ``metadata_props`` under ``d4g_edge.encoder_config``. ``int8`` is
onnxruntime's *static* QDQ quantization (per-channel int8 weights, uint8 activations)
calibrated on held-out world images: its dynamic quantization measured about 2x slower than
fp32 here, because it re-derives activation scales on every call.

Input ``image`` float32 (N, 3, H, W) preprocessed by ``d4g_edge.preprocess``; output
``embedding`` float32 (N, D), L2-normalised.

Usage::

    python -m export.onnx --view ground                     # artifacts/ground_fp32.onnx
    python -m export.onnx --view satellite --quant int8 --checkpoint runs/s/student_satellite.pt
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export._common import (
    METADATA_KEY,
    ExportConfig,
    Source,
    artifact_config,
    artifact_path,
    atomic_artifact,
    config_json,
    flag,
    load_source,
    logged_export,
    run_cli,
)
from export._verify import CALIBRATION_SEED, device_runner, model_inputs, verify, world_pairs
from export.formats import get_format

FORMAT = get_format("onnx")  # --quant choices and suffix: export/formats.py's table
INPUT, OUTPUT = "image", "embedding"
# fp32 graphs traced in this process, by (weights SHA-256, input H, W): tracing a FasterViT
# takes ~20 s, and the benchmark (and tests) export fp32 and int8 of the same student.
_TRACED: dict[tuple[str | None, tuple[int, int]], bytes] = {}


@dataclass(frozen=True)
class OnnxConfig(ExportConfig):
    quant: str = field(
        default="fp32",
        metadata=flag(
            "fp32, or int8 (onnxruntime static QDQ calibrated on world images)", FORMAT.quants
        ),
    )
    calibration_pairs: int = field(
        default=32, metadata=flag("held-out world images int8 calibration reads")
    )
    calibration_images: Path | None = field(
        default=None,
        metadata=flag(
            "int8: calibrate on images of this view found under this folder (e.g. the "
            "training split of the student's own dataset) instead of world renders in the "
            "CVUSA geometry; --calibration-pairs of them, evenly spaced"
        ),
    )


@logged_export
def export(cfg: OnnxConfig) -> Path:
    """Write, verify and return ``cfg.out/{view}_{quant}.onnx``."""
    src = load_source(cfg.view, cfg.checkpoint)
    path = artifact_path(cfg.out, cfg.view, cfg.quant, FORMAT.ext)
    meta = artifact_config(src.cfg, cfg.quant)
    x = model_inputs(world_pairs(cfg.verify_pairs), src.cfg)
    with tempfile.TemporaryDirectory() as work, atomic_artifact(path) as tmp:
        float_path = tmp if cfg.quant == "fp32" else Path(work) / "fp32.onnx"
        float_path.write_bytes(traced(src))
        if cfg.quant == "int8":
            calib = (
                folder_inputs(cfg.calibration_images, src.cfg, cfg.calibration_pairs)
                if cfg.calibration_images is not None
                else model_inputs(world_pairs(cfg.calibration_pairs, CALIBRATION_SEED), src.cfg)
            )
            quantize_int8(float_path, tmp, calib)
        embed_config(tmp, config_json(meta))
        # opened as the device opens it: onnxruntime through d4g_edge.runtime.open_encoder
        verify(device_runner(tmp, expected=meta), src.model, x, cfg.quant, what=path.name)
    return path


def traced(src: Source) -> bytes:
    """The fp32 ONNX file of ``src``'s student, traced once per process (per weights and input
    shape): the exporter, and export.bench's FLOP count of the graph, share it."""
    key = (src.cfg.weights_sha256, src.cfg.input().tensor_shape)
    if key not in _TRACED:
        with tempfile.TemporaryDirectory() as work:
            _TRACED[key] = to_onnx(src.model, key[1], Path(work) / "fp32.onnx").read_bytes()
    return _TRACED[key]


def folder_inputs(folder: Path, cfg, n: int) -> np.ndarray:
    """Inputs of ``n`` images evenly spaced among the sorted images under ``folder``."""
    from d4g_edge.image import load_rgb
    from d4g_edge.preprocess import preprocess

    files = sorted(
        p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    if not files:
        raise ValueError(f"--calibration-images {folder} holds no .jpg/.png images")
    picks = [files[int(i)] for i in np.linspace(0, len(files) - 1, min(n, len(files)))]
    return np.concatenate([preprocess(load_rgb(p), cfg) for p in picks])


def to_onnx(model, input_hw: tuple[int, int], path: Path) -> Path:
    """Trace ``model`` with a dynamic batch into ONE file at ``path`` (weights inside)."""
    import onnx
    import torch

    example = torch.zeros(2, 3, *input_hw)  # batch 2: torch.export specialises a batch of 1
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        optimize=True,
        verbose=False,
    )
    # ONNXProgram.save() defaults to external data for large graphs; write the proto whole.
    onnx.save_model(program.model_proto, str(path), save_as_external_data=False)
    return path


def quantize_int8(float_path: Path, out: Path, calibration: np.ndarray) -> Path:
    """Static QDQ int8 of ``float_path`` into ``out``, activations calibrated on ``calibration``
    (N, 3, H, W) by min/max (per-channel int8 weights, uint8 activations: onnxruntime's
    recommended x86 pairing)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [{INPUT: calibration[i : i + 8]} for i in range(0, len(calibration), 8)]
            )

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    quantize_static(
        str(float_path),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        use_external_data_format=False,
    )
    return out


def embed_config(path: Path, text: str) -> None:
    """Put ``text`` into the model's ``metadata_props`` under :data:`METADATA_KEY`."""
    import onnx

    model = onnx.load(str(path))
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    model.metadata_props.add(key=METADATA_KEY, value=text)
    onnx.save_model(model, str(path), save_as_external_data=False)


def runner(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """``x (N, 3, H, W) -> embeddings (N, D)`` as the device runs ``path``: onnxruntime's CPU
    session at ``threads`` intra-op threads, via :func:`d4g_edge.runtime.open_encoder`."""
    return device_runner(path, threads)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(OnnxConfig, export, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
