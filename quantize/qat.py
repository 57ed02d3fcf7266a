"""Quantization-aware fine-tuning of a student: ``python -m quantize.qat``.

Schemes (``--scheme``):

* ``int8`` - torchao PT2E QAT with ExecuTorch's ``XNNPACKQuantizer``: int8 convolutions,
  linears and activations (static, per-tensor), int8 per-channel weights. The scheme that
  runs fully as XNNPACK int8 kernels; the shipped one.
* ``pt2e-int8`` - the same quantizer post-training: observers calibrated on training images,
  no fine-tuning (``--steps`` is ignored). The baseline that shows what QAT adds, and the
  artifact ``export.executorch --quant int8`` builds when no ``--qat`` run is given.
* ``int8-int4w`` - torchao ``quantize_(model, QATConfig(...))`` on the Linear layers only:
  int8 dynamic per-token activations, int4 weights in groups of 32; convolutions stay fp32.

The loss is distillation onto the fp32 student's *own* embeddings, ``1 - cos(q(x), f(x))``,
not onto the teacher: QAT's job is to keep the function the student already has (it scores
the teacher's R@1 or better), it runs on a fresh clone with only the committed student and a
dataset (no teacher, no cache), and it cannot drift towards the teacher's side of the gap.

Writes ``OUT/student_{view}_{scheme}.pt2`` (``torch.export`` program of the quantized model,
dynamic batch) + ``.pt2.json`` (EncoderConfig, ``quantization`` = scheme) and
``OUT/metrics.json`` (R@1 of the student against ``--partner`` before and after).

Usage::

    python -m quantize.qat --view ground --dataset cvusa --data data/cvusa --scheme int8 \\
        --out runs/qat_ground
    # the int8 pair: the satellite student against the quantized ground one
    python -m quantize.qat --view satellite --dataset cvusa --data data/cvusa --scheme int8 \\
        --partner runs/qat_ground --out runs/qat_satellite
    python -m quantize.qat --view drone --dataset university1652 --data data/u1652 \\
        --scheme int8 --out runs/qat_drone
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from d4g_edge.config import VIEWS, EncoderConfig
from d4g_edge.log import logger
from quantize import linear_qat, pt2e
from quantize._eval import embed_view, pair_recall, view_dataset, view_paths
from quantize.artifact import load_quantized, save_quantized
from quantize.common import UserError, atomic_write, run_cli, sha256_file
from quantize.default_weights import DRONE_WEIGHTS_DIR, default_student
from quantize.encoder_source import load_student
from train.datasets import DATASETS, load
from train.presets import DRONE_DATASETS

SCHEMES = ("int8", "int8-int4w", "pt2e-int8")


@dataclass(frozen=True)
class QuantizeConfig:
    data: Path = field(metadata={"help": "dataset root (official layout)"})
    out: Path = field(metadata={"help": "run folder for the .pt2, its .json and metrics.json"})
    dataset: str = field(default="cvusa", metadata={"help": "dataset", "choices": DATASETS})
    scheme: str = field(default="int8", metadata={"help": "quantization", "choices": SCHEMES})
    view: str = field(
        default="ground",
        metadata={
            "help": "view of the default student (checked against --student)",
            "choices": VIEWS,
        },
    )
    student: Path | None = field(
        default=None, metadata={"help": "student checkpoint (default: the committed one)"}
    )
    partner: Path | None = field(
        default=None,
        metadata={
            "help": "other view's encoder for R@1: a student checkpoint or a quantize.qat run "
            "folder (default: the committed student of the other view)"
        },
    )
    steps: int = field(default=300, metadata={"help": "fine-tuning steps (0: PTQ only)"})
    batch_size: int = field(default=32, metadata={"help": "training batch (>= 2)"})
    lr: float = field(default=1e-5, metadata={"help": "AdamW learning rate"})
    calibration: int = field(default=256, metadata={"help": "images calibrating pt2e-int8"})
    seed: int = field(default=0, metadata={"help": "random seed (image order)"})
    workers: int = field(default=0, metadata={"help": "DataLoader worker processes"})
    evaluate: bool = field(default=True, metadata={"help": "R@1 before/after on the test split"})

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise UserError(f"--view must be one of {VIEWS}, got {self.view!r}")
        if self.batch_size < 2:
            raise UserError(
                f"--batch-size must be >= 2 (BatchNorm batch statistics in PT2E QAT), "
                f"got {self.batch_size}"
            )
        if self.steps < 0 or self.calibration < 1 or self.lr <= 0:
            raise UserError("--steps must be >= 0, --calibration >= 1 and --lr > 0")
        if not Path(self.data).is_dir():
            raise UserError(f"--data {self.data}: no such folder; pass the dataset root")


def _family(cfg: QuantizeConfig) -> Path | None:
    """Where the committed defaults of this run live: the drone family has its own folder."""
    return DRONE_WEIGHTS_DIR if "drone" in (cfg.view, _other_view(cfg)) else None


def _student(path: Path | None, view: str, family: Path | None = None):
    path = Path(path) if path else default_student(view, family)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint; pass a train.distill student_*.pt")
    try:
        model, cfg = load_student(path, view=view)
    except ValueError as err:  # train.checkpoint.CheckpointError: wrong kind/view, bad sidecar
        raise UserError(str(err)) from err
    return model, cfg.replace(weights_sha256=sha256_file(path))


def _batches(ds, batch_size: int, seed: int, steps: int):
    """``steps`` shuffled batches, cycling over the dataset as often as needed."""
    gen = torch.Generator().manual_seed(seed)
    done = 0
    while True:
        loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, generator=gen)
        for x, _ in loader:
            if done == steps:
                return
            done += 1
            yield x


def fine_tune(model, prepared, ds, cfg: QuantizeConfig) -> list[float]:
    """``cfg.steps`` AdamW steps of ``1 - cos(prepared(x), model(x))``; returns the losses."""
    params = [p for p in prepared.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    losses: list[float] = []
    for step, x in enumerate(_batches(ds, cfg.batch_size, cfg.seed, cfg.steps), 1):
        with torch.no_grad():
            target = model(x)
        loss = (1 - F.cosine_similarity(prepared(x), target, dim=-1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step == 1 or step % 25 == 0 or step == cfg.steps:
            logger.info("step %d/%d  1 - cos %.5f", step, cfg.steps, losses[-1])
    return losses


def quantize_student(model, enc: EncoderConfig, ds, cfg: QuantizeConfig):
    """The quantized copy of ``model`` under ``cfg.scheme``, and its training losses."""
    shape = (cfg.batch_size, 3, *enc.input().tensor_shape)
    torch.manual_seed(cfg.seed)
    if cfg.scheme == "int8-int4w":
        prepared = linear_qat.prepare(copy.deepcopy(model)).eval()  # BN frozen, as for PT2E
        losses = fine_tune(model, prepared, ds, cfg)
        return linear_qat.convert(prepared), losses
    if cfg.scheme == "pt2e-int8":
        prepared = pt2e.prepare_ptq(model, shape)
        n = -(-cfg.calibration // cfg.batch_size)
        pt2e.calibrate(prepared, _batches(ds, cfg.batch_size, cfg.seed, n))
        return pt2e.convert(prepared), []
    prepared = pt2e.prepare_qat(model, shape)
    losses = fine_tune(model, prepared, ds, cfg)
    return pt2e.convert(prepared), losses


def _other_view(cfg: QuantizeConfig) -> str:
    """The view R@1 pairs ``cfg.view`` with: satellite for a query view, else the dataset's
    query view (drone frames on University-1652)."""
    if cfg.view != "satellite":
        return "satellite"
    return "drone" if cfg.dataset in DRONE_DATASETS else "ground"


def _partner_path(cfg: QuantizeConfig) -> Path:
    """The other view's encoder, resolved before any training (a typo fails in seconds)."""
    other = _other_view(cfg)
    path = Path(cfg.partner) if cfg.partner else default_student(other, _family(cfg))
    if not path.exists():
        raise UserError(
            f"--partner {path}: no such file or folder; pass the {other} student or a "
            f"quantize.qat run of it, or --no-evaluate"
        )
    return path


def _partner(cfg: QuantizeConfig, other: str):
    """(encoder, EncoderConfig) of the other view: a checkpoint or a quantize.qat run."""
    path = _partner_path(cfg)
    if path.is_dir() or path.suffix == ".pt2":
        program, pcfg = load_quantized(path, other)
        return program.module(), pcfg
    return _student(path, other)


def run(cfg: QuantizeConfig) -> dict:
    """Quantize, save, evaluate; returns what ``metrics.json`` holds."""
    t0 = time.time()
    model, enc = _student(cfg.student, cfg.view, _family(cfg))
    if cfg.evaluate:
        _partner_path(cfg)
    train_split = load(cfg.dataset, cfg.data, "train")
    ds = view_dataset(enc, view_paths(train_split, cfg.view), cfg.view)
    quantized, losses = quantize_student(model, enc, ds, cfg)
    qcfg = enc.replace(quantization=cfg.scheme)
    path = save_quantized(cfg.out, quantized, qcfg)
    result: dict = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "artifact": path.name,
        "artifact_bytes": path.stat().st_size,
        "losses": {"first": losses[:1], "last": losses[-5:], "steps": len(losses)},
    }
    if cfg.evaluate:
        result.update(_evaluate(cfg, model, quantized, enc))
    result["seconds"] = round(time.time() - t0, 1)
    atomic_write(Path(cfg.out) / "metrics.json", json.dumps(result, indent=1))
    logger.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return result


def _evaluate(cfg: QuantizeConfig, model, quantized, enc: EncoderConfig) -> dict:
    other = _other_view(cfg)
    partner, pcfg = _partner(cfg, other)
    test = load(cfg.dataset, cfg.data, "test")
    fixed = embed_view(partner, pcfg, test, other, workers=cfg.workers)
    out = {"partner": pcfg.quantization}
    for name, encoder in (("fp32", model), (cfg.scheme, quantized)):
        mine = embed_view(encoder, enc, test, cfg.view, workers=cfg.workers)
        q, r = (fixed, mine) if cfg.view == "satellite" else (mine, fixed)
        out[f"recall_{name}"] = pair_recall(q, r, test).to_dict()
    before, after = out["recall_fp32"]["recall@1"], out[f"recall_{cfg.scheme}"]["recall@1"]
    out["retention"] = after / before if before else None
    logger.info(
        "R@1 fp32 %.2f -> %s %.2f (partner %s)", before, cfg.scheme, after, pcfg.quantization
    )
    return out


def main(argv: list[str] | None = None) -> None:
    result = run_cli(QuantizeConfig, run, argv, __doc__)
    if result and "retention" in result:
        s = result["config"]["scheme"]
        print(
            f"R@1 fp32 {result['recall_fp32']['recall@1']:.2f} -> {s} "
            f"{result[f'recall_{s}']['recall@1']:.2f} (retention {result['retention']:.3f}); "
            f"{result['artifact']} {result['artifact_bytes'] / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
