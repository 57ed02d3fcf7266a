"""``python -m train.evaluate --dataset ... --ground/--drone CKPT --satellite CKPT``: embed a
split with two encoders (training checkpoints or exported ``.onnx`` / ``.pte`` artifacts),
then score it as training validates (:class:`train.loop.evalsets.RetrievalSet`).

torch and the model zoo are imported inside the functions: importing this module (as
``train.evaluate`` does for every mode) stays numpy-only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d4g_edge.config import ConfigError
from d4g_edge.log import logger
from train.datasets import CrossViewSplit
from train.evaluation.embeddings import save_embeddings
from train.metrics import DEFAULT_KS, RetrievalMetrics, class_retrieval_metrics, metrics_table

__all__ = ["DroneMetrics", "align_spaces", "evaluate_encoders", "load_artifact"]

_BATCH = 64  # images embedded at once


@dataclass(frozen=True)
class DroneMetrics:
    """Both directions of a University-1652 evaluation (``sat2drone`` only on ``test``)."""

    drone2sat: dict
    sat2drone: dict | None

    def to_dict(self) -> dict:
        return {"drone2sat": self.drone2sat, "sat2drone": self.sat2drone}

    def format_table(self) -> str:
        parts = (("drone->satellite", self.drone2sat), ("satellite->drone", self.sat2drone))
        return metrics_table({f"{n} {k}": v for n, part in parts for k, v in (part or {}).items()})


def evaluate_encoders(
    split: CrossViewSplit,
    query: Path,
    satellite: Path,
    *,
    ks: tuple[int, ...] = DEFAULT_KS,
    centre_only: bool = False,
    centre_step: float | None = None,
    save_to: Path | None = None,
) -> RetrievalMetrics | DroneMetrics:
    """Embed ``split`` with the ``query`` encoder (of the split's query view: ground or drone)
    and the ``satellite`` one, and score it.

    Either side may be a teacher or a student checkpoint (its sidecar says which, and at
    which input size it embeds) or an exported artifact; a teacher given for both sides is
    loaded once. ``centre_only`` / ``centre_step`` override an off-centre satellite encoder's
    grid of reference centres; ``save_to`` also writes the embeddings file. On a drone split
    (University-1652) both of the benchmark's directions are scored with ``ks``
    (:func:`_evaluate_drone`); a ground split's recall is reported at ``ks`` too.
    """
    from train.loop.distributed import init_distributed
    from train.loop.evalsets import RetrievalSet

    qv = split.query_view
    encoders, inputs, sidecars = _load_encoders({qv: query, "satellite": satellite})
    info = init_distributed("auto")
    sat = inputs["satellite"]
    evalset = RetrievalSet(
        split,
        sat.size[0],
        inputs[qv].size,
        sat.polar,
        _centre_step(sat, centre_only, centre_step),
        inputs[qv].crop_rows,
    )
    if save_to is not None and evalset.centres is not None:
        raise ValueError(
            "--save-embeddings stores one embedding per reference tile, but this satellite "
            f"encoder embeds each tile around {len(evalset.centres)} centres (off-centre "
            "recipe); evaluate without --save-embeddings"
        )
    q, r = evalset.embed(encoders[qv], encoders["satellite"], info, _BATCH)
    # A student distilled on centred targets lives in the teacher's centred space: centre the
    # teacher's side the same way before comparing the two.
    q, r = align_spaces(q, r, sidecars[qv], sidecars["satellite"])
    if save_to is not None:
        _save(save_to, split, q, r)
    if qv == "drone":
        return _evaluate_drone(split, q, r, encoders, inputs, sidecars, ks)
    return evalset.score(q, r, ks=ks)


def _load_encoders(paths: dict[str, Path]) -> tuple[dict, dict, dict]:
    """Per view: the encoder module, its input (a ``ViewInput``) and its sidecar; a path given
    for both views is loaded once."""
    from train.loop import load_encoder

    loaded: dict[Path, tuple] = {}
    encoders, inputs, sidecars = {}, {}, {}
    for view, path in paths.items():
        if path not in loaded:
            exported = path.suffix.lower() in (".onnx", ".pte")
            loaded[path] = load_artifact(path) if exported else load_encoder(path)
        encoders[view], config, sidecars[view] = loaded[path]
        if view not in config.inputs:
            raise ValueError(
                f"{path} is a {'/'.join(config.views)} {config.kind} encoder and "
                f"cannot embed {view} images; pass a {view} student or a teacher"
            )
        inputs[view] = config.input(view)
    return encoders, inputs, sidecars


def _centre_step(sat, centre_only: bool, centre_step: float | None) -> float | None:
    """The grid of reference centres to embed: the satellite input's (a ``ViewInput``), or the
    ablation's, checked as the config checks its own."""
    if centre_step is None:
        return None if centre_only else sat.centre_step
    if centre_only:
        raise ValueError("--centre-only and --centre-step contradict each other: pass one")
    if sat.centre_step is None:
        raise ValueError(
            "--centre-step applies to off-centre satellite encoders (centre_step in their "
            "config); this one embeds each tile around its centre only"
        )
    try:
        return dataclasses.replace(sat, centre_step=centre_step).centre_step
    except ConfigError as err:
        raise ValueError(f"--centre-step: {err}") from None


def _save(path: Path, split: CrossViewSplit, query: np.ndarray, reference: np.ndarray) -> None:
    """The split's embeddings and truth as an embeddings file (for later ``--embeddings``)."""
    optional = {
        k: v
        for k, v in {
            "query_latlon": split.query_latlon,
            "reference_latlon": split.reference_latlon,
            "semi_positive_ids": split.semi_positive_ids,
        }.items()
        if v is not None
    }
    save_embeddings(path, query, reference, split.query_ids, split.reference_ids, **optional)
    logger.info("wrote embeddings to %s", path)


def _evaluate_drone(split, drone, satellite, encoders, inputs, sidecars, ks) -> DroneMetrics:
    """University-1652's numbers: Drone -> Satellite (query_drone against gallery_satellite,
    distractors included) from the embeddings already made, and Satellite -> Drone
    (query_satellite against gallery_drone, embedded from their own folders); R@k, R@1 % and AP
    as the benchmark's evaluate_gpu.py defines them (:func:`class_retrieval_metrics`)."""
    from train.datasets import load
    from train.loop.distributed import init_distributed
    from train.loop.evalsets import RetrievalSet

    d2s = class_retrieval_metrics(drone, split.query_ids, satellite, split.reference_ids, ks=ks)
    if split.split != "test":  # the release has one gallery per direction in test only
        return DroneMetrics(d2s.to_dict(), None)
    back = load(split.dataset, split.root, "test", mode="satellite")
    sat = inputs["satellite"]
    evalset = RetrievalSet(back, sat.size[0], inputs["drone"].size, sat.polar)
    gallery, queries = evalset.embed(
        encoders["drone"], encoders["satellite"], init_distributed("auto"), _BATCH
    )
    gallery, queries = align_spaces(gallery, queries, sidecars["drone"], sidecars["satellite"])
    s2d = class_retrieval_metrics(queries, back.reference_ids, gallery, back.query_ids, ks=ks)
    return DroneMetrics(d2s.to_dict(), s2d.to_dict())


def load_artifact(path: Path):
    """An exported encoder as ``(module, config, sidecar)`` like
    :func:`train.loop.load_encoder`: the module runs the artifact in its own runtime
    (onnxruntime / ExecuTorch) on the batches the training pipeline prepares."""
    import torch
    from torch import nn

    from d4g_edge.runtime import open_encoder

    encoder = open_encoder(path)

    class ArtifactModule(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.detach().cpu().numpy().astype(np.float32)
            return torch.from_numpy(encoder.embed_tensor(x))

    return ArtifactModule(), encoder.config, {"encoder": encoder.config.to_dict()}


def align_spaces(query, reference, ground_sidecar: dict, sat_sidecar: dict):
    """Centre the teacher's side with the centres a centred student regressed against."""
    from train.loop.embed import centre

    def centres(sidecar):
        return sidecar.get("teacher_centres") if _kind(sidecar) == "student" else None

    if (c := centres(ground_sidecar)) and _kind(sat_sidecar) == "teacher":
        reference = centre(reference, np.asarray(c["satellite"], np.float32))
    if (c := centres(sat_sidecar)) and _kind(ground_sidecar) == "teacher":
        query = centre(query, np.asarray(c["ground"], np.float32))
    return query, reference


def _kind(sidecar: dict) -> str:
    return sidecar["encoder"]["kind"]
