"""Real, tiny encoder artifacts for the SDK tests.

``conv_onnx`` writes a small random ONNX network (conv -> relu -> average pool -> linear ->
L2 norm) with the onnx helper API: a real model run by the real onnxruntime, built in
milliseconds and without torch, so most SDK tests stay fast. ``fastervit_onnx`` exports a
tiny random ``fastervit_edge`` student with the project's own exporter, ``export.onnx``
(about a minute here, so its tests are ``slow``). Both embed the encoder config under the
contract's metadata key.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from d4g_edge.config import METADATA_KEY, EncoderConfig, ViewInput

GROUND_HW = (32, 128)
SAT_SIZE = 64
EMBED_DIM = 16
TEACHER_SHA = "ab" * 32


def student_config(view: str, **changes) -> EncoderConfig:
    spec = (
        ViewInput(size=(SAT_SIZE, SAT_SIZE), polar=GROUND_HW)
        if view == "satellite"
        else ViewInput(size=GROUND_HW)
    )
    cfg = EncoderConfig(
        model_id="fastervit_edge",
        kind="student",
        inputs={view: spec},
        embed_dim=EMBED_DIM,
        teacher_model="resnet18",
        teacher_sha256=TEACHER_SHA,
        weights_sha256=("cd" if view == "ground" else "ef") * 32,
    )
    return cfg.replace(**changes) if changes else cfg


def config_json(cfg: EncoderConfig) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))


def conv_onnx(path: Path, cfg: EncoderConfig, seed: int = 0, metadata: bool = True) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w = cfg.input().tensor_shape
    rng = np.random.default_rng(seed)
    ch, pool = 8, 4
    feat = ch * (h // pool) * (w // pool)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (ch, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (ch,)).astype(np.float32), "conv_b"),
        numpy_helper.from_array(
            rng.normal(0, 1 / np.sqrt(feat), (feat, cfg.embed_dim)).astype(np.float32), "fc_w"
        ),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node(
            "AveragePool", ["r"], ["p"], kernel_shape=[pool, pool], strides=[pool] * 2
        ),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "fc_w"], ["z"]),
        helper.make_node("ReduceL2", ["z"], ["n"], axes=[1], keepdims=1),
        helper.make_node("Div", ["z", "n"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_encoder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, h, w])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", cfg.embed_dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, {METADATA_KEY: config_json(cfg)})
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def fastervit_onnx(out_dir: Path) -> dict[str, Path]:
    """A tiny random fastervit_edge student, saved as both views' checkpoint (one seed: the
    same weights, so a panorama that is a tile's polar transform embeds like the tile), each
    exported and verified by the real exporter, ``export.onnx``'s ``export()``.

    Returns the artifacts ``{"ground": .onnx, "satellite": .onnx}`` and their sources
    ``{"ground_checkpoint": .pt, "satellite_checkpoint": .pt}``."""
    from export.onnx import OnnxConfig, export
    from tests.export.conftest import save_student

    paths = {}
    for view in ("ground", "satellite"):
        ckpt = save_student(out_dir, view, seed=0)
        cfg = OnnxConfig(view=view, checkpoint=ckpt, out=out_dir, verify_pairs=4)
        paths[view], paths[f"{view}_checkpoint"] = export(cfg), ckpt
    return paths


def degrees_world_file(path: Path, lat0: float, lon0: float, mpp: float) -> Path:
    """World file of an EPSG:4326 raster whose pixels are ``mpp`` metres at ``lat0``
    (the local equirectangular frame of :class:`d4g_edge.geo.GeoReference`)."""
    import math

    from d4g_edge.geo import EARTH_RADIUS_M

    a = math.degrees(mpp / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    e = -math.degrees(mpp / EARTH_RADIUS_M)
    path.write_text(f"{a!r}\n0\n0\n{e!r}\n{lon0 + a / 2!r}\n{lat0 + e / 2!r}\n")
    return path


def pano_of_tile(tile: np.ndarray) -> np.ndarray:
    """uint8 polar transform of a tile at the test ground shape (north at the centre)."""
    from d4g_edge.polar import polar_transform

    polar = polar_transform(tile.astype(np.float32) / 255.0, *GROUND_HW)
    return np.clip(np.round(polar * 255.0), 0, 255).astype(np.uint8)
