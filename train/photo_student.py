"""One ground student for panoramas AND phone photos of any FoV and unknown heading (issue 23).

The SDK feeds a phone photo to the ground encoder as a partial panorama canvas
(:func:`d4g_edge.photo.photo_to_pano`, :data:`~d4g_edge.photo.FILL_RGB` outside the photo,
then the usual crop/resize) and searches an unknown heading over N circular rolls of it. This
fine-tunes the released ground student to map north-up panoramas and photo canvases placed
at the true heading onto the place's satellite embedding, and to score wrong headings low;
the satellite student, and so every bundle's index, stay as they are.

A view of place ``i`` (in one of ``--variants`` flip / quarter-turn variants of the pair,
:func:`train.datasets.augment.apply_variant`) is its panorama (share ``--pano-share``) or a
photo cut from it: FoV log-uniform in ``--fov`` (pinhole up to 120 degrees, cylindrical
beyond), any heading, pitch +-10, roll +-3, a phone's look (:class:`train.synth._phone.
PhoneLook`), placed back at the true heading with pitch 0 and the FoV up to 5 % off (EXIF).

* distillation: ``1 - cos`` to the frozen initial student's embedding of the place's panorama
  (Distill4Geo; ``--w-pano`` times on panorama views: the space the index was built for);
* InfoNCE (symmetric, temperature 0.07) against the frozen satellite student's embeddings of
  the batch's tiles re-centred on the cameras; pairs sharing a tile are masked;
* heading-contrastive: ``--heading-views`` views per batch are also encoded at
  ``--heading-rolls`` wrong headings (10 to 350 degrees off, stratified); a softmax over
  {true, wrong} against the place's own satellite embedding (and, ``--heading-batch``, the
  wrong ones against every tile of the batch) must pick the true one.

Frozen embeddings are computed once (``OUT/teacher_cache``); every epoch is checkpointed
(``last.pt``) and kept as ``student_ground.pt`` (validated by :mod:`train.photo_eval`).

Usage (the released weights/edge-s-vigor-photo: 12 epochs, then 0.9 of the way from the old
student by :mod:`train.photo_mix`, which keeps panorama R@1 within a point)::

    python -m train.photo_student --data data/vigor --out runs/photo_student [--resume]
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm import tqdm

from d4g_edge.config import EncoderConfig
from d4g_edge.fileio import atomic_write
from d4g_edge.photo import pano_to_pinhole
from d4g_edge.preprocess import crop_rows
from train.datasets import PairAugment, PairDataset, read_image
from train.datasets.pairs import to_tensor
from train.loop.checkpoint import CheckpointError, config_for, read_sidecar, save_checkpoint
from train.loop.cli import step_main
from train.loop.distributed import DistInfo, unwrap
from train.loop.engine import run_task
from train.loop.rebuild import load_encoder
from train.loop.setup import load_splits
from train.photo_eval import evaluate_models, load_gallery, load_ground, photo_shape, place_photo
from train.photo_eval import subset as query_subset
from train.presets import PRESETS, HParams, Preset
from train.synth._phone import PhoneLook

# Fine-tuning: 1/20 of distillation's rate (2e-4 cost 13 points of panorama R@1 in an epoch)
PHOTO_HP = HParams(epochs=12, batch_size=32, lr=1e-4, warmup_epochs=0.3, workers=1)
TEMPERATURE = 0.07  # CLIP / Sample4Geo's initial temperature (the project's teachers start there)
PHOTO_BAND_DEG = 50.0  # panorama rows kept for photos: the +-32.5 band at pitch +-10, roll +-3
MIN_WRONG_DEG = 10.0  # nearest wrong heading trained against (N = 72 steps 5 degrees)


@dataclass(frozen=True)
class PhotoStudentConfig:
    data: Path = field(metadata={"help": "VIGOR-layout dataset root (cross-area)"})
    out: Path = field(metadata={"help": "run folder"})
    ground: Path = field(
        default=Path("weights/edge-s-vigor/student_ground.pt"),
        metadata={"help": "ground student to start from; a frozen copy is the panorama teacher"},
    )
    satellite: Path = field(
        default=Path("weights/edge-s-vigor/student_satellite.pt"),
        metadata={"help": "the frozen satellite student (the bundle's index side)"},
    )
    preset: str = field(default="edge-s", metadata={"choices": sorted(PRESETS), "help": "preset"})
    variants: int = field(default=2, metadata={"help": "flip / quarter-turn variants (1..8)"})
    pano_share: float = field(default=0.4, metadata={"help": "share of views that are panoramas"})
    fov: tuple[float, ...] = field(
        default=(45.0, 200.0), metadata={"help": "photo FoV range MIN MAX (log-uniform)"}
    )
    heading_views: int = field(default=8, metadata={"help": "views per batch in the heading term"})
    heading_rolls: int = field(default=7, metadata={"help": "wrong headings per such view"})
    heading_batch: bool = field(
        default=True, metadata={"help": "wrong headings vs all batch tiles"}
    )
    w_distill: float = field(default=1.0, metadata={"help": "weight of the distillation loss"})
    w_pano: float = field(default=16.0, metadata={"help": "its factor on panorama views"})
    w_nce: float = field(default=0.2, metadata={"help": "weight of the InfoNCE loss"})
    w_heading: float = field(default=0.3, metadata={"help": "weight of the heading loss"})
    val_queries: int = field(default=100, metadata={"help": "test queries validated per epoch"})
    val_unknown: int = field(default=30, metadata={"help": "of those, searched over 24 headings"})
    cache: Path | None = field(
        default=Path("runs/photo_eval_cache"),
        metadata={"help": "reference-embedding cache shared with train.photo_eval"},
    )
    threads: int = field(
        default=1, metadata={"help": "torch CPU threads (more on a shared machine spin-waits)"}
    )
    resume: bool = field(default=False, metadata={"help": "continue the run in --out"})
    overwrite: bool = field(default=False, metadata={"help": "replace the run in --out"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda"})


def check_config(cfg: PhotoStudentConfig) -> None:
    """Range checks (a ValueError naming the flag), before anything is loaded."""
    lo, hi = (*cfg.fov, 0, 0)[:2]
    checks = [
        (1 <= cfg.variants <= 8, f"--variants {cfg.variants}: expected 1..8"),
        (0 <= cfg.pano_share <= 1, f"--pano-share {cfg.pano_share}: expected 0..1"),
        (len(cfg.fov) == 2 and 0 < lo <= hi < 360, f"--fov {cfg.fov}: MIN MAX in (0, 360)"),
        (cfg.heading_views >= 0, f"--heading-views {cfg.heading_views}: expected >= 0"),
        (cfg.heading_rolls >= 1, f"--heading-rolls {cfg.heading_rolls}: expected >= 1"),
        (min(cfg.w_distill, cfg.w_pano, cfg.w_nce, cfg.w_heading) >= 0, "weights must be >= 0"),
        (cfg.threads >= 1, f"--threads {cfg.threads}: expected >= 1"),
        (cfg.val_queries >= 1, f"--val-queries {cfg.val_queries}: expected >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def variant_pano(pano: np.ndarray, variant: int) -> np.ndarray:
    """The panorama side of :func:`train.datasets.augment.apply_variant`: flip, then roll."""
    flip, k = divmod(variant, 4)
    pano = pano[:, ::-1] if flip else pano
    return np.roll(pano, -k * pano.shape[1] // 4, axis=1) if k else pano


class PhotoViews(Dataset):
    """Item ``i``: one view of place ``i`` (module docstring) as a normalised tensor, with
    its place and variant (which pick the frozen targets)."""

    def __init__(self, pairs: PairDataset, cfg: EncoderConfig, pc: PhotoStudentConfig):
        self.pairs, self.cfg, self.pc = pairs, cfg, pc
        self.photometric = PairAugment()
        # the panoramas' +-50 degree band, uint8 in RAM (shared by forked workers)
        paths = pairs.split.query_paths
        first = read_image(paths[0])
        h = first.shape[0]
        top, bottom = (90 - PHOTO_BAND_DEG) / 180, (90 + PHOTO_BAND_DEG) / 180
        rows = (round(top * h), round(bottom * h))
        self.band_deg = (90 - rows[1] * 180 / h, 90 - rows[0] * 180 / h)
        self.band = np.empty((len(paths), rows[1] - rows[0], first.shape[1], 3), np.uint8)
        for i, p in enumerate(tqdm(paths, desc="panoramas", leave=False)):
            self.band[i] = crop_rows(read_image(p), (rows[0] / h, rows[1] / h))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        variant = int(rng.integers(self.pc.variants))
        is_pano = bool(rng.random() < self.pc.pano_share)
        if is_pano:
            ground, _ = self.pairs.variant_pair(i, variant)
            img = ground if rng.random() < 0.5 else self.photometric.photometric(ground, rng)
            x = to_tensor(img, self.pairs.mean, self.pairs.std)
        else:
            x = torch.from_numpy(self.photo(variant_pano(self.band[i], variant), rng))
        return {"view": x, "place": i, "variant": variant, "pano": is_pano}

    def photo(self, pano: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A phone photo of ``pano`` at a random pose, placed back at its true heading."""
        lo, hi = self.pc.fov
        fov = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        heading = float(rng.uniform(0.0, 360.0))
        photo = pano_to_pinhole(
            pano,
            fov_deg=fov,
            heading_deg=heading,
            pitch_deg=float(rng.uniform(-10, 10)),
            roll_deg=float(rng.uniform(-3, 3)),
            size=photo_shape(fov, pano.shape[1]),
            vfov_band=self.band_deg,
        )
        look = PhoneLook.sample(rng)
        photo = read_jpeg(look.encode(look.apply(photo)))
        # the SDK knows the FoV from EXIF (a few % off) and not the pitch
        fov_seen = min(359.0, fov * float(rng.uniform(0.95, 1.05)))
        return place_photo(photo, fov_seen, heading, self.cfg)


def read_jpeg(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def heading_offsets(n: int, k: int, width: int, rng: torch.Generator | None) -> torch.Tensor:
    """(n, k) column shifts of ``k`` wrong headings per view, one uniform draw in each of ``k``
    strata of [MIN_WRONG_DEG, 360 - MIN_WRONG_DEG]: near misses and far ones."""
    span = 360.0 - 2 * MIN_WRONG_DEG
    deg = MIN_WRONG_DEG + (torch.arange(k) + torch.rand(n, k, generator=rng)) * span / k
    return (deg * width / 360.0).round().long() % width


def info_nce(views: torch.Tensor, sats: torch.Tensor, tiles: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of views against their places' satellite embeddings; two places of
    one tile are not each other's negatives."""
    logits = views @ sats.T / TEMPERATURE
    same = (tiles[:, None] == tiles[None, :]) & ~torch.eye(len(tiles), dtype=torch.bool)
    logits = logits.masked_fill(same, -1e4)  # a pair sharing a tile is not a negative
    labels = torch.arange(len(views))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def heading_loss(true, wrong, sats, batch_sats=None) -> torch.Tensor:
    """Cross-entropy of the true heading (``true`` (n, D)) among the wrong ones (``wrong``
    (n, k, D)) against each view's own satellite embedding; with ``batch_sats`` (B, D) also
    against every tile of the batch (an unknown heading is searched over all tiles)."""
    neg = [torch.einsum("nkd,nd->nk", wrong, sats)]
    if batch_sats is not None:
        neg.append(torch.einsum("nkd,bd->nkb", wrong, batch_sats).flatten(1))
    logits = torch.cat([(true * sats).sum(-1, keepdim=True), *neg], dim=1) / TEMPERATURE
    return F.cross_entropy(logits, torch.zeros(len(true), dtype=torch.long))


def freeze_norm_stats(model: nn.Module) -> None:
    """BatchNorm in eval mode: canvases (mostly fill) would drag the running statistics away
    from what the panoramas, and so the deployed encoder, use."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@torch.no_grad()
def frozen_targets(
    pairs: PairDataset, ground: nn.Module, satellite: nn.Module, variants: int, path: Path
) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, N, D) embeddings of every place's panorama (frozen ground student) and re-centred
    tile (frozen satellite student) in each variant, computed once and cached at ``path``."""
    if path.is_file():
        with np.load(path) as z:
            return torch.from_numpy(z["ground"]), torch.from_numpy(z["satellite"])
    n, batch = len(pairs), 64
    out = {"ground": [], "satellite": []}
    for v in range(variants):
        for start in tqdm(range(0, n, batch), desc=f"targets variant {v}", leave=False):
            views = [pairs.variant_pair(i, v) for i in range(start, min(n, start + batch))]
            for k, (role, model) in enumerate((("ground", ground), ("satellite", satellite))):
                x = torch.stack([pairs.tensor(role, view[k]) for view in views])
                out[role].append(model(x).float().numpy())
    arrays = {k: np.concatenate(v).reshape(variants, n, -1) for k, v in out.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())
    return torch.from_numpy(arrays["ground"]), torch.from_numpy(arrays["satellite"])


class PhotoStudentTask:
    """The :class:`train.loop.engine.Task` of this step (module docstring)."""

    # The last epoch is kept: "epoch" always improves (no model selection on test data).
    monitor = "epoch"

    def __init__(self, cfg: PhotoStudentConfig, preset: Preset, hp: HParams, info: DistInfo):
        check_config(cfg)
        torch.set_num_threads(cfg.threads)
        self.cfg, self.hp, self.info = cfg, hp, info
        self.student, self.gcfg = load_ground(cfg.ground)
        self.g_sidecar = read_sidecar(cfg.ground) or {}
        teacher, _ = load_ground(cfg.ground)
        satellite, scfg, s_sidecar = load_encoder(cfg.satellite)
        if scfg.view != "satellite":
            raise CheckpointError(f"--satellite {cfg.satellite} holds a {scfg.view} encoder")
        gspec, sspec = self.gcfg.input("ground"), scfg.input("satellite")
        train_split, test_split = load_splits("vigor", cfg.data, vigor_mode="cross")
        pairs = PairDataset(
            train_split,
            sspec.size[0],
            gspec.size,
            sat_polar=sspec.polar,
            recentre=sspec.centre_step is not None,
            ground_rows=gspec.crop_rows,
        ).preload(threads=cfg.threads)
        key = [self.g_sidecar.get("sha256"), s_sidecar.get("sha256"), str(cfg.data.resolve())]
        key = hashlib.sha256(json.dumps([*key, len(pairs), cfg.variants]).encode()).hexdigest()
        cache = cfg.out / "teacher_cache" / f"photo-targets-{key[:16]}.npz"
        self.targets = frozen_targets(pairs, teacher, satellite, cfg.variants, cache)
        self.tiles = torch.from_numpy(np.asarray(train_split.positive_index, np.int64))
        self.train_set = PhotoViews(pairs, self.gcfg, cfg)
        self.gallery = load_gallery(test_split, cfg.satellite, cache=cfg.cache)
        self.val = query_subset(len(test_split.query_paths), cfg.val_queries, 0)
        self.val_unknown = self.val[query_subset(len(self.val), cfg.val_unknown, 1)]

    def modules(self) -> dict[str, nn.Module]:
        return {"ground": self.student}

    def steps_per_epoch(self) -> int:
        return len(self.train_set) // self.hp.batch_size

    def on_epoch_start(self, epoch: int, models) -> None:
        pass

    def train_batches(self, epoch: int):
        order = torch.Generator().manual_seed(self.hp.seed * 100_003 + epoch)
        return DataLoader(
            self.train_set,
            batch_size=self.hp.batch_size,
            sampler=RandomSampler(self.train_set, generator=order),
            drop_last=True,
            num_workers=self.hp.workers,
        )

    def training_step(self, batch, models):
        cfg, model = self.cfg, models["ground"]
        freeze_norm_stats(model)
        x, place, variant = batch["view"], batch["place"], batch["variant"]
        g_target, s_target = (t[variant, place] for t in self.targets)
        emb = model(x.to(self.info.device)).float().cpu()
        weight = 1 + (cfg.w_pano - 1) * batch["pano"].float()  # panoramas: the index's space
        loss_d = ((1 - F.cosine_similarity(emb, g_target, dim=-1)) * weight).mean()
        loss_n = info_nce(emb, s_target, self.tiles[place])
        total = cfg.w_distill * loss_d + cfg.w_nce * loss_n
        logs = {"loss_distill": float(loss_d.detach()), "loss_nce": float(loss_n.detach())}
        h, k = min(cfg.heading_views, len(x)), cfg.heading_rolls
        if h and cfg.w_heading:
            shifts = heading_offsets(h, k, x.shape[-1], None).tolist()
            rolled = torch.stack(
                [torch.roll(x[j], s, dims=-1) for j in range(h) for s in shifts[j]]
            )
            wrong = model(rolled.to(self.info.device)).float().cpu().view(h, k, -1)
            others = s_target if cfg.heading_batch else None
            loss_h = heading_loss(emb[:h], wrong, s_target[:h], others)
            total = total + cfg.w_heading * loss_h
            beaten = torch.einsum("nkd,nd->nk", wrong, s_target[:h]).max(1).values
            logs["heading_acc"] = float(((emb[:h] * s_target[:h]).sum(-1) > beaten).float().mean())
            logs["loss_heading"] = float(loss_h.detach())
        return total, logs

    def evaluate(self, models, epoch: int) -> dict[str, float]:
        res = evaluate_models(
            {"student": unwrap(models["ground"])},
            self.gcfg,
            self.gallery,
            fovs=(360.0, 90.0),
            headings=(24,),
            queries=self.val,
            unknown=self.val_unknown,
        )["student"]
        out = {}
        for fk, modes in res.items():
            for mode, m in modes.items():
                if mode != "known_subset":
                    out[f"{fk}_{mode}_r1"] = m["recall@1"]
                    out[f"{fk}_{mode}_25m"] = m["within_25m"]
                    if "heading_err_median" in m:
                        out[f"{fk}_{mode}_heading"] = m["heading_err_median"]
        return out

    def save_best(self, run_dir: Path, models, record: dict) -> None:
        cfg, g, student = self.cfg, self.gcfg, unwrap(models["ground"])
        teacher = {f: getattr(g, f) for f in ("teacher_centre", "teacher_model", "teacher_sha256")}
        config = config_for(
            student, kind="student", inputs={"ground": g.input("ground")}, **teacher
        )
        extra = {
            "preset": cfg.preset,
            "dataset": "vigor",
            "data": str(cfg.data),
            # the bundle pairs this student with that satellite student's index
            "init": {"file": str(cfg.ground), "sha256": self.g_sidecar.get("sha256")},
            "satellite": str(cfg.satellite),
            "teacher_centres": self.g_sidecar.get("teacher_centres"),
            "photos": {"fov": list(cfg.fov), "pano_share": cfg.pano_share},
            "epoch": record.get("epoch"),
            "metrics": record,
        }
        save_checkpoint(run_dir / "student_ground.pt", student, config, extra=extra)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def run(cfg: PhotoStudentConfig, hp: HParams | None = None) -> dict:
    """Fine-tune; returns the last epoch's record."""
    return run_task(PhotoStudentTask, cfg, hp, lambda p: PHOTO_HP)


def main(argv: list[str] | None = None) -> int:
    return step_main(PhotoStudentConfig, run, lambda p: PHOTO_HP, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
