"""Distillation throughput: pairs/s with the teacher-embedding cache vs an online teacher.

Not a test: prints a table and writes JSON. Both modes run the real training step of
``train.distill`` (DataLoader over :class:`train.distill.DistillPairs`, student forward +
backward + AdamW) on the same world-written CVUSA data in one process, alternating, so the
ratio is measured under the same machine load. The cache is built once beforehand (its
cost is reported separately: it is paid once per teacher and dataset, not per epoch).

Usage::

    OMP_NUM_THREADS=2 python -m benchmarks.bench_distill --json /tmp/bench_distill.json
    python -m benchmarks.bench_distill --data data/cvusa --steps 20 --view both
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from d4g_edge.log import logger, setup_logging
from train.datasets import PairDataset, load
from train.datasets.augment import NUM_VARIANTS
from train.loop.distributed import DistInfo
from train.method.distill_pairs import DistillPairs
from train.method.losses import cosine_distillation_loss
from train.method.teacher_cache import TeacherCache
from train.models import create_model
from train.presets import get_preset
from train.synth import SynthConfig, synthesize


def _steps(loader, students, teacher, steps: int, online: bool) -> float:
    """Seconds per pair over ``steps`` training steps (after one warm-up step)."""
    opt = torch.optim.AdamW([p for s in students.values() for p in s.parameters()], 1e-4)
    it = iter(loader)
    t0, n = None, 0
    for step in range(steps + 1):
        if step == 1:
            t0, n = time.perf_counter(), 0
        batch = next(it)
        loss = 0.0
        for view, student in students.items():
            if online:
                with torch.no_grad():
                    target = teacher(batch[f"teacher_{view}"])
            else:
                target = batch[f"target_{view}"]
            loss = loss + cosine_distillation_loss(student(batch[view]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(batch[next(iter(students))])
    return (time.perf_counter() - t0) / n


def run(data: Path | None, preset_name: str, view: str, steps: int, batch: int) -> dict:
    preset = get_preset(preset_name)
    tmp = None
    if data is None:
        tmp = tempfile.TemporaryDirectory()
        data = Path(tmp.name) / "cvusa"
        synthesize(
            SynthConfig(
                layout="cvusa",
                out=data,
                train=batch * (steps + 2),
                test=8,
                sat_size=preset.sat_size,
                pano_size=preset.ground_size,
            )
        )
    split = load("cvusa", data, "train")
    views = ("ground", "satellite") if view == "both" else (view,)
    pairs = PairDataset(split, preset.sat_size, preset.ground_size).preload()
    teacher = create_model("teacher", preset.teacher).eval().requires_grad_(False)
    sizes = {"ground": preset.ground_size, "satellite": (preset.sat_size,) * 2}
    students = {
        v: create_model("student", preset.student, embed_dim=teacher.embed_dim, input_size=sizes[v])
        for v in views
    }
    info = DistInfo(0, 1, 0, torch.device("cpu"))
    with tempfile.TemporaryDirectory() as cache_dir:
        t0 = time.perf_counter()
        cache = TeacherCache.build(
            Path(cache_dir), teacher, {"bench": 1}, pairs, views=views, info=info, batch_size=batch
        )
        cache_s = time.perf_counter() - t0
        loaders = {
            "cache": DataLoader(
                DistillPairs(pairs, views, NUM_VARIANTS, None, cache, None),
                batch_size=batch,
                shuffle=True,
                drop_last=True,
            ),
            "online": DataLoader(
                DistillPairs(pairs, views, NUM_VARIANTS, None, None, pairs),
                batch_size=batch,
                shuffle=True,
                drop_last=True,
            ),
        }
        s_per_pair = {k: [] for k in loaders}
        for _ in range(2):  # alternate so drift in machine speed hits both modes alike
            for mode, loader in loaders.items():
                s_per_pair[mode].append(
                    _steps(loader, students, teacher, steps, online=mode == "online")
                )
    if tmp is not None:
        tmp.cleanup()
    best = {k: min(v) for k, v in s_per_pair.items()}
    return {
        "preset": preset_name,
        "teacher": preset.teacher,
        "student": preset.student,
        "views": list(views),
        "batch": batch,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "pairs_per_s_cache": 1 / best["cache"],
        "pairs_per_s_online": 1 / best["online"],
        "speedup": best["online"] / best["cache"],
        "cache_build_s": cache_s,
        "cache_pairs": len(pairs),
        "cache_variants": NUM_VARIANTS,
    }


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0])
    p.add_argument("--data", type=Path, help="CVUSA-layout root (default: a small world)")
    p.add_argument("--preset", default="edge-s")
    p.add_argument("--view", default="ground", choices=("ground", "satellite", "both"))
    p.add_argument("--steps", type=int, default=8, help="timed steps per mode and round")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--json", type=Path, help="write the result here")
    args = p.parse_args(argv)
    r = run(args.data, args.preset, args.view, args.steps, args.batch)
    rows = [
        ("mode", "pairs/s"),
        ("cached teacher", f"{r['pairs_per_s_cache']:.1f}"),
        ("online teacher", f"{r['pairs_per_s_online']:.1f}"),
        ("speed-up", f"{r['speedup']:.2f}x"),
        (
            "cache build (once)",
            f"{r['cache_build_s']:.1f} s for {r['cache_pairs']} pairs "
            f"x {r['cache_variants']} variants",
        ),
    ]
    print("\n".join(f"{a:<20} {b}" for a, b in rows))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
        logger.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
