"""Train the Sample4Geo-style weight-sharing contrastive teacher.

One backbone embeds both views (weight sharing: ground panoramas or, on University-1652,
drone frames, and satellite tiles); symmetric InfoNCE with label smoothing over
batches built from GPS neighbours and, every ``--sim-update-every`` epochs, from the most
similar non-matching references (dynamic similarity sampling). The best epoch by test
recall@1 is saved as ``teacher.pt`` in Sample4Geo's key format (+ a JSON sidecar).

Usage::

    python -m train.teacher --dataset cvusa --data data/cvusa --preset edge-s --out runs/teacher
    python -m train.teacher --dataset university1652 --data data/u1652 --out runs/teacher_drone
    torchrun --nproc-per-node 2 -m train.teacher ... # DDP (gloo on CPU, nccl on GPU)
    python -m train.teacher ... --out runs/teacher --resume   # continue a killed run
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn
from torch.utils.data import DataLoader

from d4g_edge.config import ViewInput
from d4g_edge.log import logger
from train.datasets import DATASETS, PairAugment, PairDataset
from train.datasets.sampler import HardNegativeSampler
from train.loop.checkpoint import config_for, save_checkpoint
from train.loop.cli import step_main
from train.loop.distributed import DistInfo, unwrap
from train.loop.engine import run_task
from train.loop.evalsets import RetrievalSet
from train.loop.setup import check_batch_size, load_splits
from train.method.losses import InfoNCE
from train.models import create_model, list_models
from train.models.dual_view import DualView
from train.presets import DRONE_DATASETS, PRESETS, Preset, TeacherHParams

TEACHER_FILE = "teacher.pt"


@dataclass(frozen=True)
class TeacherConfig:
    dataset: str = field(metadata={"choices": DATASETS, "help": "dataset layout"})
    data: Path = field(metadata={"help": "dataset root folder"})
    out: Path = field(metadata={"help": "run folder (config, log, curves, checkpoints)"})
    preset: str = field(
        default="edge-s", metadata={"choices": sorted(PRESETS), "help": "model/input/recipe preset"}
    )
    model: str | None = field(
        default=None, metadata={"help": "teacher registry name (default: the preset's)"}
    )
    sat_size: int | None = field(default=None, metadata={"help": "satellite side in pixels"})
    ground_size: tuple[int, int] | None = field(
        default=None, metadata={"help": "panorama (or drone frame) HxW, e.g. 64x256"}
    )
    sat_polar: bool | None = field(
        default=None,
        metadata={
            "help": "polar-transform satellite tiles to the panorama shape "
            "(default: the preset's choice)"
        },
    )
    recentre: bool | None = field(
        default=None,
        metadata={
            "help": "off-centre recipe: train on tiles re-centred on the camera and embed "
            "references around several centres (default: the preset's choice)"
        },
    )
    centre_jitter: float | None = field(
        default=None,
        metadata={
            "help": "off-centre recipe: uniform jitter of the re-centred tile, in tile sides "
            "per axis (default: the preset's, half its index centre spacing)"
        },
    )
    full_panorama: bool = field(
        default=False,
        metadata={
            "help": "feed full-sphere panoramas (VIGOR) whole instead of the preset's band "
            "around the horizon"
        },
    )
    vigor_mode: str = field(
        default="cross",
        metadata={"choices": ("same", "cross"), "help": "VIGOR same-area or cross-area"},
    )
    init: Path | None = field(
        default=None,
        metadata={"help": "initial weights: a teacher.pt or a published Sample4Geo .pth"},
    )
    resume: bool = field(default=False, metadata={"help": "continue the run in --out"})
    overwrite: bool = field(
        default=False,
        metadata={"help": "replace the run in --out (removed only once the inputs check out)"},
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda"})


class TeacherTask:
    monitor = "recall@1"

    def __init__(
        self, cfg: TeacherConfig, preset: Preset, hp: TeacherHParams, info: DistInfo
    ) -> None:
        self.cfg, self.hp, self.info = cfg, hp, info
        self.model_name = cfg.model or preset.teacher
        self.sat_size = cfg.sat_size or preset.sat_size
        self.ground_size = cfg.ground_size or preset.ground_size_for(cfg.dataset)
        polar = preset.sat_polar_for(cfg.dataset) if cfg.sat_polar is None else cfg.sat_polar
        if polar and cfg.dataset in DRONE_DATASETS:
            raise ValueError(
                f"--sat-polar lines tiles up with panoramas; {cfg.dataset} queries are drone "
                "frames: drop --sat-polar"
            )
        self.sat_polar = self.ground_size if polar else None
        recentre = preset.recentre if cfg.recentre is None else cfg.recentre
        self.recentre = bool(recentre and self.sat_polar)
        self.centre_step = preset.centre_step if self.recentre else None
        jitter = preset.centre_jitter if cfg.centre_jitter is None else cfg.centre_jitter
        if not 0 <= jitter < 0.5:
            raise ValueError(f"--centre-jitter is a fraction of the tile in [0, 0.5), got {jitter}")
        if cfg.centre_jitter is not None and not self.recentre:
            raise ValueError("--centre-jitter applies to the off-centre recipe (--recentre)")
        self.centre_jitter = float(jitter) if self.recentre else 0.0
        self.ground_rows = None if cfg.full_panorama else preset.ground_rows_for(cfg.dataset)
        check_batch_size(hp.batch_size, info)
        train_split, test_split = load_splits(cfg.dataset, cfg.data, vigor_mode=cfg.vigor_mode)
        # the query view: street-level panoramas, or drone frames (University-1652)
        self.query_view = getattr(train_split, "query_view", "ground")
        self.train_pairs = PairDataset(
            train_split,
            self.sat_size,
            self.ground_size,
            augment=PairAugment(),
            sat_polar=self.sat_polar,
            recentre=self.recentre,
            centre_jitter=self.centre_jitter,
            ground_rows=self.ground_rows,
        ).preload()
        self.train_views = RetrievalSet(
            train_split, self.sat_size, self.ground_size, self.sat_polar, None, self.ground_rows
        )
        # every test image decoded now: a corrupt one fails before training
        self.test = RetrievalSet(
            test_split,
            self.sat_size,
            self.ground_size,
            self.sat_polar,
            self.centre_step,
            self.ground_rows,
        ).preload()
        self.sampler = HardNegativeSampler(
            train_split,
            batch_size=hp.batch_size,
            gps_neighbours=hp.gps_neighbours,
            sim_neighbours=hp.sim_neighbours,
            seed=hp.seed,
        )
        self.loss = InfoNCE(label_smoothing=hp.label_smoothing, gather=info.enabled)
        teacher = create_model("teacher", self.model_name)
        if cfg.init:
            from train.loop.rebuild import load_teacher

            teacher.load_state_dict(load_teacher(cfg.init, name=self.model_name)[0].state_dict())
        self.net = DualView(teacher)
        logger.info(
            "teacher %s: %.2fM params, sat %d², %s %s, %d train pairs, "
            "%d test queries / %d references",
            self.model_name,
            sum(p.numel() for p in teacher.parameters()) / 1e6,
            self.sat_size,
            self.query_view,
            self.ground_size,
            len(train_split),
            len(self.test.split),
            self.test.split.num_references,
        )

    # -- Task protocol -------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"teacher": self.net}

    def steps_per_epoch(self) -> int:
        return len(self.train_pairs) // self.hp.batch_size

    def on_epoch_start(self, epoch: int, models: dict[str, nn.Module]) -> None:
        every = self.hp.sim_update_every
        if every and epoch > 1 and (epoch - 1) % every == 0:
            teacher = unwrap(models["teacher"]).teacher
            q, r = self.train_views.embed(teacher, None, self.info, self.hp.batch_size)
            self.sampler.update_similarity(q, r)

    def train_batches(self, epoch: int):
        batches = self.sampler.epoch_batches(epoch)
        mine = self.sampler.rank_slice(batches, self.info.rank, self.info.world_size)
        return DataLoader(self.train_pairs, batch_sampler=mine, num_workers=self.hp.workers)

    def training_step(self, batch, models):
        ground, sat, _ = batch
        dev = self.info.device
        g, s, scale = models["teacher"](ground.to(dev), sat.to(dev))
        loss = self.loss(g.float(), s.float(), scale.float())
        return loss, {"logit_scale": float(scale.detach().exp())}

    def evaluate(self, models, epoch: int) -> dict[str, float]:
        teacher = unwrap(models["teacher"]).teacher
        return self.test.evaluate(teacher, teacher, self.info, self.hp.batch_size)

    def save_best(self, run_dir: Path, models, record: dict) -> None:
        teacher = unwrap(models["teacher"]).teacher
        inputs = {
            self.query_view: ViewInput(self.ground_size, crop_rows=self.ground_rows),
            "satellite": ViewInput(
                (self.sat_size, self.sat_size), polar=self.sat_polar, centre_step=self.centre_step
            ),
        }
        extra = {
            "preset": self.cfg.preset,
            "dataset": self.cfg.dataset,
            "data": str(self.cfg.data),
            "epoch": record.get("epoch"),
            "metrics": record,
        }
        config = config_for(teacher, kind="teacher", inputs=inputs)
        save_checkpoint(run_dir / TEACHER_FILE, teacher, config, extra=extra)

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])


def run(cfg: TeacherConfig, hp: TeacherHParams | None = None) -> dict:
    """Train a teacher; returns the best epoch's record."""
    return run_task(TeacherTask, cfg, hp, lambda p: p.teacher_hp)


def main(argv: list[str] | None = None) -> int:
    return step_main(
        TeacherConfig,
        run,
        lambda p: p.teacher_hp,
        argv,
        description=__doc__,
        epilog="teacher models: " + ", ".join(list_models("teacher")),
        hparams=TeacherHParams,
    )


if __name__ == "__main__":
    sys.exit(main())
