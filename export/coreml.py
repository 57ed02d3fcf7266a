"""Export a student to a Core ML ML Program (``.mlpackage``) whose input is an RGB image.

The deployed student, wrapped so that normalisation happens inside the model, goes through
``torch.export`` + ``run_decompositions({})`` into ``ct.convert`` (the ``torch.jit.trace``
path fails with numpy 2.x in coremltools 9.0). Minimum deployment target **iOS 16 / macOS
13**: the oldest that keeps an fp32 ``embedding`` output on an fp16 model and has per-channel
int8 weight constants.

Input ``image``: an RGB ``ImageType`` (iOS code passes a ``CVPixelBuffer``) of the tensor
size in the config, batch 1. Core ML's image preprocessing is ``scale * pixel + bias`` with
ONE scale for all channels and a bias per channel, so ImageNet's per-channel std cannot be
expressed there: the image input only scales pixels to [0, 1] (``scale = 1/255``) and the
graph applies ``(x - mean) / std``. A satellite model takes the *polar-transformed* tile
(``d4g_edge.polar``); the config under ``d4g_edge.encoder_config`` says so (``polar``).
Output ``embedding``: float32 (1, D), L2-normalised. ``fp16`` (default) computes in float16;
``int8`` stores weights as per-channel symmetric int8 (``coremltools.optimize.coreml``) and
computes in float16, so its config says ``int8-weights``.

Core ML runs only on Apple platforms. On Linux the exporter verifies what it can: it reloads
the saved package's spec and checks inputs, outputs, metadata and that every op exists at the
deployment target, and it runs the exact graph handed to ``ct.convert`` (normalisation
included) in torch against the eager student on world pixels. On macOS it also predicts with
the package itself and compares embeddings.

Usage::

    python -m export.coreml --view ground                 # artifacts/ground_fp16.mlpackage
    python -m export.coreml --view satellite --quant int8
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from d4g_edge.config import EncoderConfig
from d4g_edge.log import logger
from export._common import (
    METADATA_KEY,
    ExportConfig,
    VerificationError,
    artifact_config,
    artifact_path,
    atomic_artifact,
    config_json,
    flag,
    load_source,
    logged_export,
    run_cli,
)
from export._verify import model_inputs, pixel_inputs, verify, world_pairs
from export.formats import get_format

FORMAT = get_format("coreml")  # --quant choices and suffix: export/formats.py's table
SCHEME = {"fp16": "fp16", "fp32": "fp32", "int8": "int8-weights"}  # what the config records
MIN_TARGET = "iOS16"
INPUT, OUTPUT = "image", "embedding"
_WEIGHT_OPS = ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale")


@dataclass(frozen=True)
class CoreMLConfig(ExportConfig):
    quant: str = field(
        default="fp16",
        metadata=flag(
            "fp16 (float16 compute), fp32, or int8 (int8 weights, fp16 compute)", FORMAT.quants
        ),
    )


def pixel_model(model, cfg: EncoderConfig):
    """``model`` behind ``(x - mean) / std``: takes RGB in [0, 1] (N, 3, H, W)."""
    import torch
    from torch import nn

    class PixelInput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student = model
            self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1))
            self.register_buffer("inv_std", 1.0 / torch.tensor(cfg.std).view(1, 3, 1, 1))

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.student((image - self.mean) * self.inv_std)

    return PixelInput().eval()


@logged_export
def export(cfg: CoreMLConfig) -> Path:
    """Write, verify and return ``cfg.out/{view}_{quant}.mlpackage``."""
    import torch

    src = load_source(cfg.view, cfg.checkpoint)
    meta = artifact_config(src.cfg, SCHEME[cfg.quant])
    path = artifact_path(cfg.out, cfg.view, cfg.quant, FORMAT.ext)
    pairs = world_pairs(cfg.verify_pairs)
    h, w = src.cfg.input().tensor_shape
    wrapped = pixel_model(src.model, src.cfg)
    with torch.no_grad():
        program = torch.export.export(wrapped, (torch.rand(1, 3, h, w),)).run_decompositions({})
    # The graph Core ML receives (batch 1) must equal preprocess() + the student.
    x, pixels = model_inputs(pairs, src.cfg), pixel_inputs(pairs, src.cfg)
    graph = program.module()
    with torch.no_grad():
        verify(
            lambda p: np.concatenate([graph(torch.from_numpy(q[None] / 255.0)).numpy() for q in p]),
            src.model,
            x,
            "fp32",
            what=f"{path.name} graph (torch)",
            artifact_x=pixels,
        )
    with atomic_artifact(path) as tmp:
        mlmodel = convert(program, (h, w), cfg.quant)
        mlmodel.user_defined_metadata[METADATA_KEY] = config_json(meta)
        mlmodel.short_description = f"d4g-edge {meta.view} encoder ({meta.model_id}, {cfg.quant})"
        mlmodel.input_description[INPUT] = _input_note(meta)
        mlmodel.output_description[OUTPUT] = f"L2-normalised embedding (1, {meta.embed_dim})"
        mlmodel.save(str(tmp))
        check_package(tmp, meta, cfg.quant)
        if FORMAT.runs_here():
            verify(_predictor(tmp), src.model, x, cfg.quant, what=path.name, artifact_x=pixels)
        else:
            logger.info(
                "Core ML cannot predict on %s: checked the spec, not the numbers of %s",
                sys.platform,
                path.name,
            )
    return path


def convert(program, input_hw: tuple[int, int], quant: str):
    """``ct.convert`` the exported program into an ML Program of precision ``quant``."""
    import coremltools as ct

    mlmodel = ct.convert(
        program,
        inputs=[
            ct.ImageType(
                name=INPUT,
                shape=(1, 3, *input_hw),
                scale=1 / 255.0,
                bias=[0.0, 0.0, 0.0],
                color_layout=ct.colorlayout.RGB,
            )
        ],
        outputs=[ct.TensorType(name=OUTPUT, dtype=np.float32)],
        convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, MIN_TARGET),
        compute_precision=ct.precision.FLOAT32 if quant == "fp32" else ct.precision.FLOAT16,
    )
    if quant == "int8":
        from coremltools.optimize.coreml import (
            OpLinearQuantizerConfig,
            OptimizationConfig,
            linear_quantize_weights,
        )

        op = OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel"
        )
        mlmodel = linear_quantize_weights(mlmodel, OptimizationConfig(global_config=op))
    return mlmodel


def check_package(path: Path, meta: EncoderConfig, quant: str) -> None:
    """Reload ``path``'s spec: inputs, outputs, metadata and op types are what we wrote."""
    import coremltools as ct
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    spec = ct.utils.load_spec(str(path))
    h, w = meta.input().tensor_shape
    problems = []
    inputs, outputs = spec.description.input, spec.description.output
    if [i.name for i in inputs] != [INPUT] or inputs[0].type.WhichOneof("Type") != "imageType":
        problems.append(f"inputs {[i.name for i in inputs]}, expected one image {INPUT!r}")
    else:
        image = inputs[0].type.imageType
        if (image.height, image.width) != (h, w) or image.colorSpace != image.RGB:
            problems.append(
                f"image input {image.height}x{image.width} space {image.colorSpace}"
                f", expected {h}x{w} RGB"
            )
    array = outputs[0].type.multiArrayType if outputs else None
    if (
        [o.name for o in outputs] != [OUTPUT]
        or list(array.shape) != [1, meta.embed_dim]
        or (array.dataType != array.FLOAT32)
    ):
        problems.append(
            f"outputs {[o.name for o in outputs]}, expected {OUTPUT!r} float32 "
            f"(1, {meta.embed_dim})"
        )
    if spec.description.metadata.userDefined.get(METADATA_KEY) != config_json(meta):
        problems.append(f"metadata {METADATA_KEY} is missing or differs from the config")
    target = getattr(ct.target, MIN_TARGET)
    ops = op_types(spec)
    unknown = sorted(
        op for op in ops if not any(v <= target for v in SSAOpRegistry.core_ops.get(op, {}))
    )
    if unknown:
        problems.append(f"ops {unknown} do not exist at {MIN_TARGET}")
    if (quant == "int8") != any(op in ops for op in _WEIGHT_OPS):
        problems.append(
            f"int8 weight constants ({'/'.join(_WEIGHT_OPS)}) "
            f"{'missing' if quant == 'int8' else 'present'} in a {quant} model"
        )
    if problems:
        raise VerificationError(f"{path.name}: " + "; ".join(problems))
    logger.info(
        "checked %s: image %dx%d -> %s (1, %d), %d op types, metadata ok",
        path.name,
        h,
        w,
        OUTPUT,
        meta.embed_dim,
        len(ops),
    )


def op_types(spec) -> set[str]:
    """Every op type in an ML Program spec, nested blocks included."""
    found: set[str] = set()

    def visit(block) -> None:
        for op in block.operations:
            found.add(op.type)
            for inner in op.blocks:
                visit(inner)

    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            visit(block)
    return found


def _predictor(path: Path):  # pragma: no cover - Core ML predicts on macOS only
    """``pixels (N, 3, H, W) in [0, 255] -> embeddings (N, D)`` through the package."""
    import coremltools as ct
    from PIL import Image

    mlmodel = ct.models.MLModel(str(path))

    def run(pixels: np.ndarray) -> np.ndarray:
        out = []
        for x in pixels:
            rgb = np.clip(np.rint(x.transpose(1, 2, 0)), 0, 255).astype(np.uint8)
            out.append(mlmodel.predict({INPUT: Image.fromarray(rgb)})[OUTPUT].reshape(-1))
        return np.stack(out)

    return run


def _input_note(meta: EncoderConfig) -> str:
    spec = meta.input()
    what = (
        f"polar-transformed {spec.size[0]}px satellite tile"
        if spec.polar
        else f"{meta.view} image resized to {spec.size[0]}x{spec.size[1]}"
    )
    return f"RGB {what}; normalised inside the model (mean {meta.mean}, std {meta.std})"


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(CoreMLConfig, export, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
