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
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from d4g_edge.cli.args import config_from_args, dataclass_parser
from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger, setup_logging
from train.datasets import DATASETS, CrossViewSplit  # numpy-only: --embeddings stays light
from train.evaluation.bundle import evaluate_bundle
from train.evaluation.embeddings import (  # noqa: F401  (the public API, importable from here)
    OPTIONAL,
    REQUIRED,
    EmbeddingSet,
    EmbeddingsFormatError,
    evaluate_embeddings,
    load_embeddings,
    save_embeddings,
)
from train.evaluation.encoders import DroneMetrics, evaluate_encoders, load_artifact  # noqa: F401
from train.loop.arg_checks import check_output_file, user_message
from train.metrics import DEFAULT_KS, RetrievalMetrics

# The three modes are small functions of train/evaluation/ (embeddings.py, encoders.py,
# bundle.py) over the one scorer of train.metrics; this module is the command line: one config
# field per flag, the flag checks, and the dispatch.

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


def _load_split(cfg: EvaluateConfig) -> CrossViewSplit:
    """``cfg.split`` of the dataset; VIGOR in the area protocol that train.teacher /
    train.distill validate with (cross-area by default)."""
    from train.datasets import load

    kw = {"mode": cfg.vigor_mode} if cfg.dataset == "vigor" else {}
    return load(cfg.dataset, cfg.data, cfg.split, **kw)


def evaluate_split(cfg: EvaluateConfig) -> RetrievalMetrics | DroneMetrics:
    """Model-driven modes (``--dataset``): the split localized through the SDK against
    ``--bundle``, or embedded by two encoders (:func:`evaluate_encoders`). The flags are
    checked first, then the data is loaded (cheap, and what users get wrong), then the models.
    """
    if cfg.bundle is not None:
        if cfg.data is None:
            raise ValueError("--bundle evaluation needs --data (the split's queries and truth)")
        if cfg.centre_only or cfg.centre_step is not None:
            raise ValueError(
                "a bundle's reference centres were fixed by build-index: drop --centre-only / "
                "--centre-step, or pass --ground/--satellite to embed the tiles here"
            )
        return evaluate_bundle(cfg.bundle, _load_split(cfg), ks=cfg.ks)
    qv = _query_view(cfg.dataset)
    other = "drone" if qv == "ground" else "ground"
    if getattr(cfg, other) is not None:
        raise ValueError(f"{cfg.dataset} queries are {qv} images: pass --{qv}, not --{other}")
    missing = [f"--{n}" for n in ("data", qv, "satellite") if getattr(cfg, n) is None]
    if missing:
        raise ValueError(f"model-driven evaluation needs {', '.join(missing)}")
    return evaluate_encoders(
        _load_split(cfg),
        getattr(cfg, qv),
        cfg.satellite,
        ks=cfg.ks,
        centre_only=cfg.centre_only,
        centre_step=cfg.centre_step,
        save_to=cfg.save_embeddings,
    )


def run(cfg: EvaluateConfig) -> RetrievalMetrics:
    """Evaluate in the mode ``cfg`` selects and write ``cfg.json`` atomically if given."""
    check_output_file(cfg.json, "--json")  # before minutes of embedding, not after
    check_output_file(cfg.save_embeddings, "--save-embeddings")
    if cfg.embeddings is not None:
        metrics = evaluate_embeddings(cfg.embeddings, ks=cfg.ks, chunk=cfg.chunk)
        record: dict = {"mode": "embeddings", "embeddings": str(cfg.embeddings)}
    else:
        metrics = evaluate_split(cfg)
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
