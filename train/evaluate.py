"""Retrieval evaluation: recall@k, R@1 %, VIGOR hit rate and metre errors.

Two mutually exclusive modes:

* ``--embeddings FILE.npz`` scores embeddings saved earlier (by ``--save-embeddings`` or any
  tool writing the format below), with no model and no images;
* ``--dataset … --data DIR --ground CKPT --satellite CKPT`` embeds a split with trained
  encoders first (model-driven; needs ``train.models``).

Embeddings file (``np.load(allow_pickle=False)``-safe ``.npz``): ``query`` (Q x D) and
``reference`` (R x D) float32 L2-normalised, ``query_ids`` (Q,) and ``reference_ids`` (R,)
int64 where query ``i``'s true reference has id ``query_ids[i]``; optional ``query_latlon``
(Q x 2) and ``reference_latlon`` (R x 2) float64 degrees, ``semi_positive_ids`` (Q x S) int64
(VIGOR). The numbers are those of Sample4Geo's ``calculate_scores`` (see
:mod:`train.metrics`).

Usage::

    python -m train.evaluate --embeddings runs/x/test_embeddings.npz --json runs/x/test.json

    from train.evaluate import evaluate_embeddings, save_embeddings
    save_embeddings("e.npz", q, r, query_ids, reference_ids)
    print(evaluate_embeddings("e.npz").format_table())
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import zipfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from d4g_edge.cli.args import config_from_args, dataclass_parser
from d4g_edge.config import ConfigError
from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger, setup_logging
from train.datasets import DATASETS  # numpy-only import: --embeddings stays light
from train.loop.arg_checks import check_output_file, user_message
from train.metrics import (
    DEFAULT_KS,
    RetrievalMetrics,
    class_retrieval_metrics,
    evaluate_retrieval,
    metrics_table,
)

REQUIRED = ("query", "reference", "query_ids", "reference_ids")
OPTIONAL = ("query_latlon", "reference_latlon", "semi_positive_ids")
_NORM_TOL = 1e-3  # |norm - 1| allowed in a file that promises L2-normalised vectors


class EmbeddingsFormatError(ValueError):
    """An embeddings file (or arrays about to be saved) does not follow the format."""

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = source
        super().__init__(f"{source}: {problem}")


@dataclass(frozen=True)
class EmbeddingSet:
    """Validated arrays of one embeddings file (see the module docstring for the format)."""

    query: np.ndarray
    reference: np.ndarray
    query_ids: np.ndarray
    reference_ids: np.ndarray
    query_latlon: np.ndarray | None = None
    reference_latlon: np.ndarray | None = None
    semi_positive_ids: np.ndarray | None = None

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str | Path = "<arrays>"):
        """Check shapes, dtypes and normalisation; cast to the file's dtypes."""
        missing = [k for k in REQUIRED if arrays.get(k) is None]
        if missing:
            raise EmbeddingsFormatError(
                source, f"missing arrays {missing}; found {sorted(arrays)}; need {list(REQUIRED)}"
            )
        out: dict[str, np.ndarray | None] = {}
        for name in REQUIRED + OPTIONAL:
            value = arrays.get(name)
            out[name] = None if value is None else np.asarray(value)
        q, r = out["query"], out["reference"]
        for name, x in (("query", q), ("reference", r)):
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating) or len(x) == 0:
                raise EmbeddingsFormatError(
                    source, f"{name} must be a non-empty 2-D float array, got {x.shape} {x.dtype}"
                )
            if not np.isfinite(x).all():
                raise EmbeddingsFormatError(source, f"{name} contains NaN or inf")
            norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
            if np.abs(norms - 1.0).max() > _NORM_TOL:
                raise EmbeddingsFormatError(
                    source,
                    f"{name} rows must be L2-normalised (norms {norms.min():.4g}.."
                    f"{norms.max():.4g}); normalise before saving (F.normalize(x, dim=-1))",
                )
        if q.shape[1] != r.shape[1]:
            raise EmbeddingsFormatError(
                source, f"query dim {q.shape[1]} != reference dim {r.shape[1]}"
            )
        shapes = {
            "query_ids": (len(q),),
            "reference_ids": (len(r),),
            "query_latlon": (len(q), 2),
            "reference_latlon": (len(r), 2),
        }
        for name, shape in shapes.items():
            x = out[name]
            if x is not None and x.shape != shape:
                raise EmbeddingsFormatError(
                    source, f"{name} must have shape {shape}, got {x.shape}"
                )
        semi = out["semi_positive_ids"]
        if semi is not None and (semi.ndim != 2 or len(semi) != len(q)):
            raise EmbeddingsFormatError(
                source, f"semi_positive_ids must have shape ({len(q)}, S), got {semi.shape}"
            )
        for name in ("query_ids", "reference_ids", "semi_positive_ids"):
            x = out[name]
            if x is not None and not np.issubdtype(x.dtype, np.integer):
                raise EmbeddingsFormatError(source, f"{name} must be integers, got {x.dtype}")
        return cls(
            query=q.astype(np.float32, copy=False),
            reference=r.astype(np.float32, copy=False),
            query_ids=out["query_ids"].astype(np.int64, copy=False),
            reference_ids=out["reference_ids"].astype(np.int64, copy=False),
            query_latlon=_cast(out["query_latlon"], np.float64),
            reference_latlon=_cast(out["reference_latlon"], np.float64),
            semi_positive_ids=_cast(semi, np.int64),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The non-empty fields, as saved in the file."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


def _cast(x: np.ndarray | None, dtype) -> np.ndarray | None:
    return None if x is None else x.astype(dtype, copy=False)


def save_embeddings(
    path: str | Path, query, reference, query_ids, reference_ids, **optional
) -> Path:
    """Validate and write an embeddings file atomically (temp file + rename); returns the path.

    ``optional``: ``query_latlon``, ``reference_latlon``, ``semi_positive_ids``.
    """
    unknown = sorted(set(optional) - set(OPTIONAL))
    if unknown:
        raise TypeError(f"unknown arrays {unknown}; optional ones are {list(OPTIONAL)}")
    path = Path(path)
    data = EmbeddingSet.from_arrays(
        dict(query=query, reference=reference, query_ids=query_ids, reference_ids=reference_ids)
        | optional,
        source=path,
    )
    buffer = io.BytesIO()  # a file object, so numpy does not append ".npz"
    np.savez(buffer, **data.arrays())
    return atomic_write(path, buffer.getvalue())


def load_embeddings(path: str | Path) -> EmbeddingSet:
    """Read and validate an embeddings file; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"embeddings file {path} does not exist (write one with "
            "--save-embeddings or train.evaluate.save_embeddings)"
        )
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # np.load would otherwise try .npy or pickle on it
        raise EmbeddingsFormatError(path, "not a readable .npz archive (no zip header)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise EmbeddingsFormatError(path, f"not a readable .npz archive ({e})") from e
    except ValueError as e:  # object arrays need pickle, which is refused for safety
        raise EmbeddingsFormatError(
            path, f"holds pickled object arrays, which are not loaded ({e}); save plain arrays"
        ) from e
    extra = sorted(set(arrays) - set(REQUIRED) - set(OPTIONAL))
    if extra:
        logger.warning("%s: ignoring unknown arrays %s", path, extra)
    return EmbeddingSet.from_arrays(arrays, source=path)


def evaluate_embeddings(
    source: str | Path | EmbeddingSet, *, ks: tuple[int, ...] = DEFAULT_KS, chunk: int | None = None
) -> RetrievalMetrics:
    """Metrics of an embeddings file (or an already loaded :class:`EmbeddingSet`)."""
    data = source if isinstance(source, EmbeddingSet) else load_embeddings(source)
    return evaluate_retrieval(
        data.query,
        data.reference,
        data.query_ids,
        data.reference_ids,
        semi_positive_ids=data.semi_positive_ids,
        query_latlon=data.query_latlon,
        reference_latlon=data.reference_latlon,
        ks=ks,
        chunk=chunk,
        progress=partial(tqdm, desc="ranking", unit="chunk", leave=False),
    )


_MODEL = "model-driven mode (with --dataset)"


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything ``python -m train.evaluate`` accepts (one field per flag)."""

    embeddings: Path | None = field(
        default=None,
        metadata={"one_of": "mode", "metavar": "FILE.npz", "help": "score saved embeddings"},
    )
    dataset: str | None = field(
        default=None,
        metadata={"one_of": "mode", "choices": DATASETS, "help": "embed this dataset's split"},
    )
    data: Path | None = field(
        default=None, metadata={"group": _MODEL, "metavar": "DIR", "help": "dataset root"}
    )
    ground: Path | None = field(
        default=None,
        metadata={
            "group": _MODEL,
            "metavar": "CKPT",
            "help": "ground encoder: a checkpoint, or an exported .onnx / .pte",
        },
    )
    drone: Path | None = field(
        default=None,
        metadata={
            "group": _MODEL,
            "metavar": "CKPT",
            "help": "drone encoder (University-1652 layout, instead of --ground): a "
            "checkpoint, or an exported .onnx / .pte",
        },
    )
    satellite: Path | None = field(
        default=None,
        metadata={
            "group": _MODEL,
            "metavar": "CKPT",
            "help": "satellite encoder: a checkpoint, or an exported .onnx / .pte",
        },
    )
    bundle: Path | None = field(
        default=None,
        metadata={
            "group": _MODEL,
            "metavar": "DIR",
            "help": "instead of --ground/--satellite: localize the queries through the "
            "device SDK (d4g_edge.Localizer, heading known) against this bundle of the "
            "split's tiles; reports R@k of the returned tiles and the position error",
        },
    )
    split: str = field(default="test", metadata={"group": _MODEL, "help": "split to embed"})
    vigor_mode: str = field(
        default="cross",
        metadata={
            "group": _MODEL,
            "choices": ("same", "cross"),
            "help": "VIGOR same-area or cross-area test set, as train.teacher/train.distill "
            "validate",
        },
    )
    centre_only: bool = field(
        default=False,
        metadata={
            "group": _MODEL,
            "help": "off-centre encoders: embed each reference tile around its centre only, "
            "not the config's grid of centres (the index ablation of the recipe)",
        },
    )
    centre_step: float | None = field(
        default=None,
        metadata={
            "group": _MODEL,
            "metavar": "STEP",
            "help": "off-centre encoders: embed each reference tile around a grid of centres "
            "STEP tile sides apart instead of the config's (the index density ablation; "
            "1/10 gives 5 x 5 centres on VIGOR's half-overlap grid)",
        },
    )
    save_embeddings: Path | None = field(
        default=None,
        metadata={
            "group": _MODEL,
            "metavar": "FILE.npz",
            "help": "also write the embeddings for later --embeddings runs",
        },
    )
    json: Path | None = field(
        default=None, metadata={"metavar": "FILE", "help": "write metrics as JSON here"}
    )
    ks: tuple[int, ...] = field(
        default=DEFAULT_KS,
        metadata={"metavar": "K", "help": "recall@k cut-offs (R@1%% is always added)"},
    )
    chunk: int | None = field(
        default=None, metadata={"help": "queries scored at once (default: ~256 MiB blocks)"}
    )


def _query_view(dataset: str | None) -> str:
    from train.presets import DRONE_DATASETS

    return "drone" if dataset in DRONE_DATASETS else "ground"


def _centre_step(cfg: EvaluateConfig, sat) -> float | None:
    """The grid of reference centres to embed: the satellite input's (a ``ViewInput``), or the
    ablation's, checked as the config checks its own."""
    if cfg.centre_step is None:
        return None if cfg.centre_only else sat.centre_step
    if cfg.centre_only:
        raise ValueError("--centre-only and --centre-step contradict each other: pass one")
    if sat.centre_step is None:
        raise ValueError(
            "--centre-step applies to off-centre satellite encoders (centre_step in their "
            "config); this one embeds each tile around its centre only"
        )
    try:
        return dataclasses.replace(sat, centre_step=cfg.centre_step).centre_step
    except ConfigError as err:
        raise ValueError(f"--centre-step: {err}") from None


def evaluate_model(cfg: EvaluateConfig) -> RetrievalMetrics | DroneMetrics:
    """Model-driven mode: embed ``cfg.split`` of ``cfg.dataset`` with the two encoders.

    Either side may be a teacher or a student checkpoint (its sidecar says which, and at
    which input size it embeds); a teacher given for both sides is loaded once. On a drone
    dataset (University-1652) the query side is ``--drone`` and both of the benchmark's
    directions are scored (:func:`evaluate_drone`).
    """
    if cfg.bundle is not None:
        return evaluate_bundle(cfg)
    qv = _query_view(cfg.dataset)
    other = "drone" if qv == "ground" else "ground"
    if getattr(cfg, other) is not None:
        raise ValueError(f"{cfg.dataset} queries are {qv} images: pass --{qv}, not --{other}")
    missing = [f"--{n}" for n in ("data", qv, "satellite") if getattr(cfg, n) is None]
    if missing:
        raise ValueError(f"model-driven evaluation needs {', '.join(missing)}")
    # torch and the model zoo are imported only in this mode: --embeddings stays light.
    from train.datasets import load
    from train.loop import load_encoder
    from train.loop.distributed import init_distributed
    from train.loop.evalsets import RetrievalSet

    # The data first (cheap, and what users get wrong), then the models; VIGOR in the area
    # protocol that train.teacher / train.distill validate with (cross-area by default).
    kw = {"mode": cfg.vigor_mode} if cfg.dataset == "vigor" else {}
    split = load(cfg.dataset, cfg.data, cfg.split, **kw)
    loaded: dict[Path, tuple] = {}  # one load when both sides are the same teacher
    encoders, inputs = {}, {}
    for view in (qv, "satellite"):
        path = getattr(cfg, view)
        if path not in loaded:
            exported = path.suffix.lower() in (".onnx", ".pte")
            loaded[path] = load_artifact(path) if exported else load_encoder(path)
        encoders[view], config, _ = loaded[path]
        if view not in config.inputs:
            raise ValueError(
                f"{path} is a {'/'.join(config.views)} {config.kind} encoder and "
                f"cannot embed {view} images; pass a {view} student or a teacher"
            )
        inputs[view] = config.input(view)
    info = init_distributed("auto")
    sat = inputs["satellite"]
    evalset = RetrievalSet(
        split,
        sat.size[0],
        inputs[qv].size,
        sat.polar,
        _centre_step(cfg, sat),
        inputs[qv].crop_rows,
    )
    if cfg.save_embeddings is not None and evalset.centres is not None:
        raise ValueError(
            "--save-embeddings stores one embedding per reference tile, but this satellite "
            f"encoder embeds each tile around {len(evalset.centres)} centres (off-centre "
            "recipe); evaluate without --save-embeddings"
        )
    query_path = getattr(cfg, qv)
    query, reference = evalset.embed(encoders[qv], encoders["satellite"], info, 64)
    # A student distilled on centred targets lives in the teacher's centred space: centre the
    # teacher's side the same way before comparing the two.
    query, reference = _align_spaces(
        query, reference, loaded[query_path][2], loaded[cfg.satellite][2]
    )
    if cfg.save_embeddings is not None:
        optional = {
            k: v
            for k, v in {
                "query_latlon": split.query_latlon,
                "reference_latlon": split.reference_latlon,
                "semi_positive_ids": split.semi_positive_ids,
            }.items()
            if v is not None
        }
        save_embeddings(
            cfg.save_embeddings,
            query,
            reference,
            split.query_ids,
            split.reference_ids,
            **optional,
        )
        logger.info("wrote embeddings to %s", cfg.save_embeddings)
    if qv == "drone":
        return evaluate_drone(cfg, split, query, reference, encoders, inputs, loaded)
    return evalset.score(query, reference)


def evaluate_drone(cfg, split, drone, satellite, encoders, inputs, loaded) -> DroneMetrics:
    """University-1652's numbers: Drone -> Satellite (query_drone against gallery_satellite,
    distractors included) from the embeddings already made, and Satellite -> Drone
    (query_satellite against gallery_drone, embedded from their own folders); R@k, R@1 % and AP
    as the benchmark's evaluate_gpu.py defines them (:func:`class_retrieval_metrics`)."""
    from train.datasets import load
    from train.loop.distributed import init_distributed
    from train.loop.evalsets import RetrievalSet

    d2s = class_retrieval_metrics(drone, split.query_ids, satellite, split.reference_ids, ks=cfg.ks)
    if cfg.split != "test":  # the release has one gallery per direction in test only
        return DroneMetrics(d2s.to_dict(), None)
    back = load(cfg.dataset, cfg.data, "test", mode="satellite")
    sat = inputs["satellite"]
    evalset = RetrievalSet(back, sat.size[0], inputs["drone"].size, sat.polar)
    gallery, queries = evalset.embed(
        encoders["drone"], encoders["satellite"], init_distributed("auto"), 64
    )
    gallery, queries = _align_spaces(
        gallery, queries, loaded[cfg.drone][2], loaded[cfg.satellite][2]
    )
    s2d = class_retrieval_metrics(queries, back.reference_ids, gallery, back.query_ids, ks=cfg.ks)
    return DroneMetrics(d2s.to_dict(), s2d.to_dict())


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


def load_artifact(path: Path):
    """An exported encoder as ``(module, config, sidecar)`` like :func:`load_encoder`: the
    module runs the artifact in its own runtime (onnxruntime / ExecuTorch) on the batches
    the training pipeline prepares."""
    import torch
    from torch import nn

    from d4g_edge.runtime import open_encoder

    encoder = open_encoder(path)

    class ArtifactModule(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.detach().cpu().numpy().astype(np.float32)
            return torch.from_numpy(encoder.embed_tensor(x))

    return ArtifactModule(), encoder.config, {"encoder": encoder.config.to_dict()}


def evaluate_bundle(cfg: EvaluateConfig) -> RetrievalMetrics:
    """Localize every query of the split with the SDK against ``cfg.bundle``; a query's rank is
    the position of its true tile among the returned candidates (top max(ks))."""
    from d4g_edge.localizer import Localizer
    from train.datasets import load
    from train.metrics import QueryRanks, position_error, summarize

    if cfg.data is None:
        raise ValueError("--bundle evaluation needs --data (the split's queries and truth)")
    if cfg.centre_only or cfg.centre_step is not None:
        raise ValueError(
            "a bundle's reference centres were fixed by build-index: drop --centre-only / "
            "--centre-step, or pass --ground/--satellite to embed the tiles here"
        )
    kw = {"mode": cfg.vigor_mode} if cfg.dataset == "vigor" else {}
    split = load(cfg.dataset, cfg.data, cfg.split, **kw)
    loc = Localizer(cfg.bundle)
    top_k = max(cfg.ks)
    rank = np.full(len(split), top_k, dtype=np.int64)
    top1 = np.zeros(len(split), dtype=np.int64)
    fixes = np.zeros((len(split), 2))
    row_of = {int(r): k for k, r in enumerate(split.reference_ids)}
    for start in tqdm(range(0, len(split), 16), desc="localize", leave=False):
        paths = split.query_paths[start : start + 16]
        found = loc.localize_batch(list(paths), top_k=top_k, heading=0.0)
        for j, fix in enumerate(found):
            i = start + j
            ids = [c.tile_id for c in fix.candidates]
            truth = int(split.query_ids[i])
            rank[i] = ids.index(truth) if truth in ids else top_k
            top1[i] = row_of[ids[0]]
            fixes[i] = fix.lat, fix.lon
    metrics = summarize(
        QueryRanks(rank=rank, top1=top1, hit=None),
        split.num_references,
        ks=tuple(k for k in cfg.ks if k <= top_k),
    )
    if split.query_latlon is not None:
        metrics = dataclasses.replace(metrics, position=position_error(split.query_latlon, fixes))
    return metrics


def _align_spaces(query, reference, ground_sidecar: dict, sat_sidecar: dict):
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


def run(cfg: EvaluateConfig) -> RetrievalMetrics:
    """Evaluate in the mode ``cfg`` selects and write ``cfg.json`` atomically if given."""
    check_output_file(cfg.json, "--json")  # before minutes of embedding, not after
    check_output_file(cfg.save_embeddings, "--save-embeddings")
    if cfg.embeddings is not None:
        metrics = evaluate_embeddings(cfg.embeddings, ks=cfg.ks, chunk=cfg.chunk)
        record: dict = {"mode": "embeddings", "embeddings": str(cfg.embeddings)}
    else:
        metrics = evaluate_model(cfg)
        record = {"mode": "model", "dataset": cfg.dataset, "split": cfg.split}
        if cfg.dataset == "vigor":
            record["vigor_mode"] = cfg.vigor_mode
    record["metrics"] = metrics.to_dict()
    if cfg.json is not None:
        atomic_write(cfg.json, json.dumps(record, indent=2) + "\n")
    return metrics


def build_parser() -> argparse.ArgumentParser:
    return dataclass_parser(
        EvaluateConfig, __doc__.split("Usage::")[0], prog="python -m train.evaluate"
    )


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.embeddings is not None:
        stray = [
            f"--{n.replace('_', '-')}"
            for n in ("data", "ground", "drone", "satellite", "save_embeddings")
            if getattr(args, n)
        ]
        if stray:
            parser.error(f"{', '.join(stray)} only apply with --dataset (model-driven mode)")
    cfg = config_from_args(EvaluateConfig, args)
    logger.info("train.evaluate %s", " ".join(sys.argv[1:] if argv is None else argv))
    try:
        metrics = run(cfg)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"error: {user_message(e)}\n")
    print(metrics.format_table())  # the result itself goes to stdout; logs go to stderr
    return 0


if __name__ == "__main__":
    sys.exit(main())
