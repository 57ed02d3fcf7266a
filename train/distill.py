"""Distil the frozen teacher into independent ground / satellite students (Distill4Geo).

Each student regresses the teacher's embedding of its own view with the cosine embedding
loss ``1 - cos(student, teacher)``; with ``--view both`` the two terms are summed with equal
weights (the dual loss), with ``--view ground`` (``drone`` on University-1652) or ``--view
satellite`` one student trains alone, so the two can run in separate processes or machines.
Teacher targets come from the memory-mapped cache (:mod:`train.method.teacher_cache`)
unless ``--online-teacher``.

Validation retrieval pairs each student with the teacher on the other side (or the two
students with ``--view both``); ``retention`` = student recall@1 / teacher recall@1.

Usage::

    python -m train.distill --dataset cvusa --data data/cvusa --teacher runs/teacher/teacher.pt \\
        --view ground --preset edge-s --out runs/student_ground
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from d4g_edge.config import ViewInput
from d4g_edge.log import logger
from train.datasets import DATASETS, PairDataset
from train.datasets.augment import NUM_VARIANTS
from train.datasets.perturb import MarginalPerturbation
from train.loop.checkpoint import config_for, save_checkpoint
from train.loop.cli import step_main
from train.loop.distributed import DistInfo, unwrap
from train.loop.embed import centre, embed_dataset
from train.loop.engine import run_task
from train.loop.evalsets import RetrievalSet
from train.loop.rebuild import init_student
from train.loop.setup import check_batch_size, load_splits
from train.method.distill_pairs import DistillPairs
from train.method.frozen_teacher import load_frozen_teacher
from train.method.losses import cosine_distillation_loss
from train.method.teacher_cache import TeacherCache
from train.models import create_model, list_models
from train.presets import DRONE_DATASETS, PRESETS, HParams, Preset

VIEW_CHOICES = ("ground", "drone", "satellite", "both")


def student_file(view: str) -> str:
    return f"student_{view}.pt"


@dataclass(frozen=True)
class DistillConfig:
    dataset: str = field(metadata={"choices": DATASETS, "help": "dataset layout"})
    data: Path = field(metadata={"help": "dataset root folder"})
    teacher: Path = field(metadata={"help": "teacher checkpoint (teacher.pt)"})
    out: Path = field(metadata={"help": "run folder"})
    view: str = field(
        default="both", metadata={"choices": VIEW_CHOICES, "help": "which student(s) to train"}
    )
    preset: str = field(default="edge-s", metadata={"choices": sorted(PRESETS), "help": "preset"})
    model: str | None = field(
        default=None, metadata={"help": "student registry name (default: the preset's)"}
    )
    sat_size: int | None = field(default=None, metadata={"help": "student satellite side"})
    ground_size: tuple[int, int] | None = field(
        default=None, metadata={"help": "student panorama (or drone frame) HxW"}
    )
    vigor_mode: str = field(
        default="cross", metadata={"choices": ("same", "cross"), "help": "VIGOR same/cross-area"}
    )
    perturb: bool = field(
        default=False,
        metadata={
            "help": "marginal perturbation of the student's input; off by default: on the "
            "world it cost 12.7 points of recall@1 in an 8-epoch ablation (README)"
        },
    )
    variants: int = field(
        default=NUM_VARIANTS,
        metadata={"help": "geometric variants (flip x quarter turns) in the cache"},
    )
    cache_dir: Path | None = field(
        default=None, metadata={"help": "teacher-embedding cache (default: OUT/teacher_cache)"}
    )
    online_teacher: bool = field(
        default=False, metadata={"help": "run the teacher every step instead of reading the cache"}
    )
    centre_targets: bool = field(
        default=True,
        metadata={
            "help": "regress the teacher embedding minus the teacher's mean embedding "
            "(re-normalised) instead of the raw one (--no-centre-targets: the paper's)"
        },
    )
    paper_head: bool = field(
        default=False,
        metadata={"help": "public code's Linear(1000, D) head, for fidelity comparisons"},
    )
    init: Path | None = field(
        default=None,
        metadata={
            "help": "start from earlier students of the same teacher: a student_<view>.pt, or a "
            "run folder holding one per view (a new schedule, unlike --resume)"
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue the run in --out"})
    overwrite: bool = field(
        default=False,
        metadata={"help": "replace the run in --out (removed only once the inputs check out)"},
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda"})

    @property
    def query_view(self) -> str:
        """The dataset's query view: drone frames (University-1652) or ground panoramas."""
        return "drone" if self.dataset in DRONE_DATASETS else "ground"

    @property
    def views(self) -> tuple[str, ...]:
        return (self.query_view, "satellite") if self.view == "both" else (self.view,)

    @property
    def roles(self) -> dict[str, str]:
        """view -> its side of a pair in the data pipeline ("ground": the query side)."""
        return {v: "satellite" if v == "satellite" else "ground" for v in self.views}


class DistillTask:
    monitor = "recall@1"

    def __init__(self, cfg: DistillConfig, preset: Preset, hp: HParams, info: DistInfo) -> None:
        self.cfg, self.hp, self.info = cfg, hp, info
        if cfg.view not in ("both", "satellite", cfg.query_view):
            raise ValueError(
                f"--view {cfg.view}: {cfg.dataset} queries are {cfg.query_view} images; "
                f"choose --view {cfg.query_view}, satellite or both"
            )
        self.roles = cfg.roles
        check_batch_size(hp.batch_size, info)
        t = self.frozen = load_frozen_teacher(cfg.teacher, cfg.query_view, cfg.dataset, preset)
        self.teacher = t.model  # the module itself: moved to the device below, run online
        self.centre_step, self.ground_rows = t.centre_step, t.ground_rows
        self.sat_size = cfg.sat_size or preset.sat_size
        self.ground_size = cfg.ground_size or preset.ground_size_for(cfg.dataset)
        # A student sees its view the way the teacher did: polar tiles for a polar teacher.
        self.sat_polar = self.ground_size if t.polar else None
        self.sizes = {
            "ground": self.ground_size,
            "satellite": self.sat_polar or (self.sat_size, self.sat_size),
        }
        train_split, test_split = load_splits(cfg.dataset, cfg.data, vigor_mode=cfg.vigor_mode)
        # every input checked before the long teacher-cache pass: a corrupt test image fails now
        self.test_teacher = RetrievalSet(
            test_split, t.sat_size, t.ground_size, t.polar, self.centre_step, self.ground_rows
        ).preload()
        # An off-centre teacher saw tiles re-centred on the camera: so do its cache and the
        # students (exactly, no jitter: the cache holds one target per pair and variant).
        teacher_pairs = PairDataset(
            train_split,
            t.sat_size,
            t.ground_size,
            sat_polar=t.polar,
            recentre=self.centre_step is not None,
            ground_rows=self.ground_rows,
        ).preload()
        student_pairs = PairDataset(
            train_split,
            self.sat_size,
            self.ground_size,
            sat_polar=self.sat_polar,
            recentre=self.centre_step is not None,
            ground_rows=self.ground_rows,
        ).preload()
        cache = None
        if not cfg.online_teacher:
            cache = t.build_cache(
                cfg.cache_dir or cfg.out / "teacher_cache",
                cfg.dataset,
                cfg.data,
                teacher_pairs,
                len(train_split),
                views=tuple(self.roles.values()),
                info=info,
                batch_size=hp.batch_size,
                variants=cfg.variants,
            )
        self.train_set = DistillPairs(
            student_pairs,
            tuple(self.roles.values()),
            cfg.variants,
            MarginalPerturbation() if cfg.perturb else None,
            cache,
            teacher_pairs if cfg.online_teacher else None,
        )
        self._create_students(preset)
        self.teacher.to(info.device)
        self._embed_test(test_split, train_split, cache)

    def _create_students(self, preset: Preset) -> None:
        """One student per view, fresh or from ``--init``."""
        cfg = self.cfg
        self.students = {
            view: create_model(
                "student",
                cfg.model or preset.student,
                embed_dim=self.teacher.embed_dim,
                input_size=self.sizes[self.roles[view]],
                **({"paper_head": True} if cfg.paper_head else {}),
            )
            for view in cfg.views
        }
        if cfg.init is not None:
            for view, student in self.students.items():
                init_student(
                    student,
                    cfg.init / student_file(view) if cfg.init.is_dir() else cfg.init,
                    view=view,
                    teacher_sha256=self.frozen.sha256,
                )

    def _embed_test(self, test_split, train_split, cache: TeacherCache | None) -> None:
        """Validation: each student against the teacher's other view (or the other student)."""
        info, hp, teacher = self.info, self.hp, self.teacher
        self.test_student = RetrievalSet(
            test_split,
            self.sat_size,
            self.ground_size,
            self.sat_polar,
            self.centre_step,
            self.ground_rows,
        )
        q, r = self.test_teacher.embed(teacher, None, info, hp.batch_size)
        # retention is relative to the teacher as it is used: raw embeddings, both views
        self.teacher_metrics = self.test_teacher.scores(q, r)
        # The teacher's embeddings share a large common direction (mean cosine to their centroid
        # ~0.73 on the world): regressing them raw, a student first learns that centroid and
        # stalls there (1 - cos ~0.27, recall at chance). Centred targets carry only the
        # per-place part; the centre travels in the sidecar to compare with teacher embeddings.
        self.centres = None
        if self.cfg.centre_targets:
            self.centres = self.frozen.centres(cache, train_split, info, hp.batch_size)
            q, r = (centre(x, self.centres.get(v)) for x, v in ((q, "ground"), (r, "satellite")))
        self.teacher_embeddings = {"ground": q, "satellite": r}
        logger.info("teacher on test: recall@1 %.2f", self.teacher_metrics["recall@1"])

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.students)

    def _per_rank_batch(self) -> int:
        return self.hp.batch_size // self.info.world_size

    def steps_per_epoch(self) -> int:
        return len(self.train_set) // self.info.world_size // self._per_rank_batch()

    def on_epoch_start(self, epoch: int, models) -> None:
        pass

    def train_batches(self, epoch: int):
        sampler = DistributedSampler(
            self.train_set,
            num_replicas=self.info.world_size,
            rank=self.info.rank,
            shuffle=True,
            seed=self.hp.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        return DataLoader(
            self.train_set,
            batch_size=self._per_rank_batch(),
            sampler=sampler,
            drop_last=True,
            num_workers=self.hp.workers,
        )

    def training_step(self, batch, models):
        dev, total, logs = self.info.device, 0.0, {}
        for view, role in self.roles.items():
            if self.cfg.online_teacher:
                with torch.no_grad():
                    target = self.teacher(batch[f"teacher_{role}"].to(dev))
            else:
                target = batch[f"target_{role}"].to(dev)
            if self.centres is not None:
                target = centre(target.float(), self.centres[role].to(dev))
            loss = cosine_distillation_loss(
                models[view](batch[role].to(dev)).float(), target.float()
            )
            total = total + loss
            logs[f"loss_{view}"] = float(loss.detach())
        return total, logs

    def evaluate(self, models, epoch: int) -> dict[str, float]:
        emb = dict(self.teacher_embeddings)
        sets = {"ground": self.test_student.queries, "satellite": self.test_student.references}
        for view, role in self.roles.items():
            emb[role] = embed_dataset(
                unwrap(models[view]),
                sets[role],
                self.info,
                batch_size=self.hp.batch_size,
                desc=f"test {view}",
            )
        out = self.test_student.scores(emb["ground"], emb["satellite"])
        out["teacher_recall@1"] = self.teacher_metrics["recall@1"]
        if "ap" in self.teacher_metrics:  # University-1652 reports AP too
            out["teacher_ap"] = self.teacher_metrics["ap"]
        if self.teacher_metrics["recall@1"] > 0:  # undefined for a teacher that finds nothing
            out["retention"] = out["recall@1"] / self.teacher_metrics["recall@1"]
        return out

    def save_best(self, run_dir: Path, models, record: dict) -> None:
        centres = None if self.centres is None else {v: c.tolist() for v, c in self.centres.items()}
        for view, role in self.roles.items():
            student = unwrap(models[view])
            if role == "satellite":  # the tile side read from disk, and its polar shape
                spec = ViewInput(
                    (self.sat_size, self.sat_size),
                    polar=self.sat_polar,
                    centre_step=self.centre_step,
                )
            else:
                spec = ViewInput(self.ground_size, crop_rows=self.ground_rows)
            config = config_for(
                student,
                kind="student",
                inputs={view: spec},
                teacher_centre=centres[role] if centres else None,
                teacher_model=self.frozen.config.model_id,
                teacher_sha256=self.frozen.sha256,
            )
            extra = {
                "preset": self.cfg.preset,
                "dataset": self.cfg.dataset,
                "data": str(self.cfg.data),
                "perturb": self.cfg.perturb,
                # both views' centres: comparing with the teacher's other view needs its centre
                "teacher_centres": centres,
                "epoch": record.get("epoch"),
                "metrics": record,
            }
            save_checkpoint(run_dir / student_file(view), student, config, extra=extra)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def run(cfg: DistillConfig, hp: HParams | None = None) -> dict:
    """Train the student(s) of ``cfg.view``; returns the best epoch's record."""
    return run_task(DistillTask, cfg, hp, lambda p: p.distill_hp)


def main(argv: list[str] | None = None) -> int:
    return step_main(
        DistillConfig,
        run,
        lambda p: p.distill_hp,
        argv,
        description=__doc__,
        epilog="student models: " + ", ".join(list_models("student")),
    )


if __name__ == "__main__":
    sys.exit(main())
