"""Named presets (hloc ``confs`` style, but frozen dataclasses keyed by name).

A preset fixes the model pair and input shapes and gives the default hyper-parameters of the
teacher and distillation runs; command-line flags override single fields (see
:func:`train.loop.cli.add_hparam_flags`). A misspelled preset name is an error listing the choices.

* ``paper`` — Sample4Geo ConvNeXt-B teacher (1024-d, 384² satellite / 140×768 panorama) and
  FasterViT-0 any-res students: the published recipe, for real datasets on a GPU.
* ``edge-s`` — CPU-trainable and the bundled default: small teacher and a reduced FasterViT at
  128² satellite / 64×256 panorama (the shapes the world is rendered at for training);
  University-1652 drone frames at 128² against plain (not polar) 128² tiles.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

# Datasets whose queries are drone camera frames, not street-level panoramas.
DRONE_DATASETS = ("university1652",)


@dataclass(frozen=True)
class HParams:
    """Optimisation settings of the one training loop, read by every step (distillation)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    grad_clip: float = 5.0
    eval_every: int = 1
    workers: int = 0
    amp: str = "auto"  # auto | none | bf16 | fp16 ("auto": bf16 on CUDA, none on CPU)
    seed: int = 1


@dataclass(frozen=True)
class TeacherHParams(HParams):
    """The loop's settings plus what only the contrastive teacher reads."""

    label_smoothing: float = 0.1  # InfoNCE
    gps_neighbours: int = 8  # GPS neighbours per anchor seeding batches
    sim_update_every: int = 0  # re-embed for similarity sampling (0 = never)
    sim_neighbours: int = 8  # hard negatives pulled per anchor


@dataclass(frozen=True)
class Preset:
    name: str
    teacher: str
    student: str
    sat_size: int
    ground_size: tuple[int, int]  # (height, width) of the panorama
    vigor_ground_size: tuple[int, int]
    teacher_hp: TeacherHParams
    distill_hp: HParams
    # Satellite input polar-transformed to the panorama's shape (d4g_edge.polar), so both
    # views line up column by column; see the edge-s preset for why.
    sat_polar: bool = False
    # The off-centre recipe (polar only): train on the positive tile re-centred on the camera
    # (VIGOR's offsets) with a uniform jitter of up to ``centre_jitter`` tile sides per axis,
    # and embed each reference tile around a grid of centres ``centre_step`` apart
    # (EncoderConfig ViewInput.centre_step, so build-index does the same without being told).
    recentre: bool = False
    # Full-sphere panoramas (VIGOR) are cut to this band of rows (fractions of the height)
    # before resizing: elevation +32.5 .. -32.5 degrees, what a CVUSA panorama shows.
    vigor_ground_rows: tuple[float, float] | None = None
    centre_jitter: float = 0.0
    centre_step: float | None = None
    # Drone camera frames (University-1652 layout): square, fed as they are; the satellite
    # tile of a drone teacher stays a plain tile (a polar transform lines up with panoramas
    # only), so a drone teacher's satellite index is not the ground teacher's.
    drone_size: tuple[int, int] = (128, 128)

    def ground_size_for(self, dataset: str) -> tuple[int, int]:
        """The query view's input (H, W): the panorama, or the drone frame."""
        if dataset in DRONE_DATASETS:
            return self.drone_size
        return self.vigor_ground_size if dataset == "vigor" else self.ground_size

    def sat_polar_for(self, dataset: str) -> bool:
        return self.sat_polar and dataset not in DRONE_DATASETS

    def ground_rows_for(self, dataset: str) -> tuple[float, float] | None:
        return self.vigor_ground_rows if dataset == "vigor" else None


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        teacher="convnext_base",
        student="fastervit_0",
        sat_size=384,
        ground_size=(140, 768),
        vigor_ground_size=(384, 768),
        drone_size=(384, 384),  # Sample4Geo's University-1652 input
        teacher_hp=TeacherHParams(
            epochs=40,
            batch_size=128,
            lr=1e-3,
            warmup_epochs=1.0,
            sim_update_every=4,
            sim_neighbours=64,
            gps_neighbours=64,
            amp="auto",
        ),
        distill_hp=HParams(epochs=40, batch_size=128, lr=1e-3, warmup_epochs=1.0, amp="auto"),
    ),
    "edge-s": Preset(
        name="edge-s",
        teacher="resnet18",
        student="fastervit_edge",
        sat_size=128,
        ground_size=(64, 256),
        # Nothing is pretrained here: a ResNet-18 shared by raw tiles and panoramas stayed near
        # chance for epochs on the world (see the README), while polar tiles line up with the
        # panorama column by column and share its shape, so one BatchNorm batch holds both.
        sat_polar=True,
        # A camera anywhere in a grid of tiles (VIGOR; every real bundle): polar around the
        # tile centre matched VIGOR cross-area at 1.8 % R@1; around the camera (known in
        # training, the nearest of a grid of centres per half-tile cell at index time) see
        # README. The grid is 5 x 5 (1/10 tile apart): on the same teacher 1, 3 x 3, 5 x 5 and
        # 8 x 8 centres gave 23.3, 45.3, 50.5 and 52.6 % R@1; 8 x 8 is 2.6x the index for 2
        # points.
        recentre=True,
        # ... and at 64 rows a full-sphere panorama gives the ground within 45 m about 8
        # rows below the horizon: the recipe keeps the 65-degree band around it (see README).
        vigor_ground_size=(64, 256),
        vigor_ground_rows=(57.5 / 180, 122.5 / 180),
        # Jitter = half the centre spacing: training sees exactly the offsets the index leaves
        # (a camera is within centre_step / 2 per axis of one centre). The VIGOR teacher was
        # trained at 1/12 (for 3 x 3 centres) and continued 3 epochs at 1/20: 50.5 -> 54.3 %
        # R@1 on the 5 x 5 index, where 3 more epochs at an unchanged jitter had given +0.6.
        centre_jitter=1 / 20,
        centre_step=1 / 10,
        # From scratch, easy (random) negatives come first: batches are seeded with only 2
        # GPS neighbours per anchor, and similarity sampling takes over every 4 epochs once
        # the embeddings mean something. bf16 autocast measured slower than fp32 on the
        # AVX512-BF16 CPUs here (22 vs 29 pairs/s), so amp stays "auto" (fp32 on CPU).
        teacher_hp=TeacherHParams(
            epochs=14,
            batch_size=64,
            lr=1e-3,
            warmup_epochs=1.0,
            sim_update_every=4,
            sim_neighbours=8,
            gps_neighbours=2,
        ),
        distill_hp=HParams(epochs=24, batch_size=64, lr=2e-3, warmup_epochs=0.5),
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown preset {name!r}.{hint} Choices: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
