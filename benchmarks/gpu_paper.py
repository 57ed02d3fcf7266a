"""The `paper` preset on one lent GPU: a larger world, a short training, recall and images/s.

One prepared script for one device call (docs/gpu_paper.md holds the command, how it was
sized and what it measures). It chains the repository's own steps as subprocesses, each
under a deadline so the whole fits the call, and times the preset's encoders besides:

1. ``train.synth`` renders a CVUSA-layout world at the preset's input sizes (384² tiles,
   140x768 panoramas) on the CPU cores, while
2. ``--models-json`` mode (this module, a subprocess) times the encoders on the GPU with
   random inputs: the teacher's and the students' training steps (as ``train.loop.engine``
   runs them: autocast, backward, clipping, AdamW) and inference images/s per batch size in
   bf16 autocast and in fp32;
3. ``train.teacher --preset paper`` trains the ConvNeXt-B teacher from scratch for as many
   epochs as the time left allows (``--teacher-epochs`` fixes it);
4. ``train.distill --preset paper --view both`` distils the FasterViT-0 students from it;
5. ``train.evaluate`` scores the saved student pair.

``summary.json`` in ``--out`` is rewritten after every phase, so a call cut short still
returns what it measured; the runs' logs, metrics and curves are copied next to it.

Usage::

    # the device call (docs/gpu_paper.md): fastervit travels as a wheel in .whl/
    python3 -m benchmarks.gpu_paper --out $OUT
    # dry run on a CPU: a tiny world, two steps per epoch, one timing per model
    python -m benchmarks.gpu_paper --out /tmp/gp --work /tmp/gp_work --device cpu \\
        --train 16 --test 12 --batch 8 --teacher-epochs 1 --distill-epochs 1 \\
        --bench-batches 1 --bench-train-batch 2 --bench-iters 1 --bench-precisions fp32
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks._gpu_paper_models import PAPER_GROUND, PAPER_SAT, bench_models, write_json
from benchmarks._gpu_paper_report import collect

# The model benchmark (``--models-json``, a subprocess) is in benchmarks/_gpu_paper_models.py,
# the summary's last numbers and the printed table in benchmarks/_gpu_paper_report.py; here:
# the orchestration.


class Run:
    """Phases as subprocesses with deadlines; the summary rewritten after each one."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.t0 = args, time.time()
        self.deadline = self.t0 + args.budget_s
        self.out, self.work = Path(args.out), Path(args.work)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.summary: dict = {"args": vars(args), "phases": {}}
        self.logs: list[Path] = []

    def left(self) -> float:
        return self.deadline - time.time()

    def save(self) -> None:
        self.summary["elapsed_s"] = round(time.time() - self.t0, 1)
        write_json(self.out / "summary.json", self.summary)

    def start(self, name: str, cmd: list[str]) -> tuple[str, subprocess.Popen, float, dict]:
        log = self.work / f"{name}.log"
        self.logs.append(log)
        print(f"[{time.time() - self.t0:6.1f}s] start {name}: {' '.join(cmd)}", flush=True)
        with open(log, "w") as f:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        # the moment it exits, also while nobody waits on it yet (the render, behind the
        # model benchmark)
        ended: dict = {}

        def watch() -> None:
            proc.wait()
            ended["t"] = time.time()

        ended["watcher"] = threading.Thread(target=watch, daemon=True)
        ended["watcher"].start()
        return name, proc, time.time(), ended

    def finish(self, started: tuple, timeout: float) -> dict:
        name, proc, t, ended = started
        try:
            rc = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the step and its workers
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc = "killed at its deadline"
        ended["watcher"].join(timeout=5)
        end = ended.get("t", time.time())
        rec = {"rc": rc, "start_s": round(t - self.t0, 1), "wall_s": round(end - t, 1)}
        self.summary["phases"][name] = rec
        tail = self.work.joinpath(f"{name}.log").read_text(errors="replace")[-600:]
        print(f"[{time.time() - self.t0:6.1f}s] {name}: {rec}", flush=True)
        if rc != 0:
            print(tail, flush=True)
        self.save()
        return rec

    def phase(self, name: str, cmd: list[str], timeout: float) -> dict:
        return self.finish(self.start(name, cmd), timeout)


def _py(command: str) -> list[str]:
    """``python -m`` + a command line (paths in it are shlex-quoted by the caller)."""
    return [sys.executable, "-m", *shlex.split(command)]


def _env_info(device: str) -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpus": os.cpu_count(),
        "shm_gib": round(shutil.disk_usage("/dev/shm").total / 2**30, 1)
        if os.path.isdir("/dev/shm")
        else None,
    }
    for dist in ("timm", "fastervit", "numpy", "pillow"):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = "not installed"
    if device != "cpu" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info |= {
            "gpu": p.name,
            "gpu_mem_gib": round(p.total_memory / 2**30, 1),
            "capability": f"{p.major}.{p.minor}",
        }
    if shutil.which("nvidia-smi"):
        q = "--query-gpu=driver_version,clocks.max.sm,power.limit"
        res = subprocess.run(
            ["nvidia-smi", q, "--format=csv,noheader"], capture_output=True, text=True, check=False
        )
        info["nvidia_smi"] = res.stdout.strip()
    return info


def _epochs(want: int, budget_s: float, startup_s: float, epoch_s: float, cap: int) -> int:
    """``want`` if given, else as many epochs as fit ``budget_s`` (at least one; one when
    the benchmark measured nothing to plan with: ``epoch_s`` is then infinite)."""
    if want > 0:
        return want
    return max(1, min(cap, int((budget_s - startup_s) // epoch_s)))


def _per_epoch_s(args: argparse.Namespace, pairs_s: float, eval_images_s: float) -> float:
    """An epoch's training plus its validation (both views of the test split, embedded in
    fp32 by one loading thread, ~4 ms an image); infinite without measured rates."""
    if pairs_s <= 0 or eval_images_s <= 0:
        return float("inf")
    return args.train / pairs_s + 2 * args.test * (1 / eval_images_s + 0.004)


def _rate(bench: dict, section: str, match: str, key: str = "images_per_s", **where) -> float:
    rows = [
        r
        for r in bench.get(section, [])
        if match in r["model"] and key in r and all(r.get(k) == v for k, v in where.items())
    ]
    return max((r[key] for r in rows), default=0.0)


def orchestrate(args: argparse.Namespace) -> None:
    run = Run(args)
    run.summary["env"] = _env_info(args.device)
    run.save()
    print(json.dumps(run.summary["env"]), flush=True)
    data, teacher_dir = run.work / "cvusa", run.work / "teacher"
    students_dir = run.work / "students"
    smi = None
    if args.device != "cpu" and shutil.which("nvidia-smi"):
        smi_log = open(run.work / "gpu_util.csv", "w")  # open until the end of the run
        query = "--query-gpu=timestamp,utilization.gpu,memory.used,power.draw"
        smi = subprocess.Popen(
            ["nvidia-smi", query, "--format=csv,noheader,nounits", "-l", "1"],
            stdout=smi_log,
            start_new_session=True,
        )

    try:
        _steps(run, data, teacher_dir, students_dir)
    finally:  # a step that failed or ran out of time still leaves what was measured
        if smi is not None:
            os.killpg(smi.pid, signal.SIGTERM)
            smi.wait()
        collect(run)


def _steps(run: Run, data: Path, teacher_dir: Path, students_dir: Path) -> None:
    args = run.args
    q = lambda p: shlex.quote(str(p))  # noqa: E731
    pano = "x".join(map(str, PAPER_GROUND))
    render = run.start("render", _py(
        f"train.synth --layout cvusa --out {q(data)} --train {args.train} --test {args.test} "
        f"--seed {args.seed} --sat-size {PAPER_SAT} --pano-size {pano} "
        f"--workers {args.render_workers} --overwrite"))  # fmt: skip
    bench_json = run.work / "bench_models.json"
    if args.bench_iters > 0:
        run.phase("bench_models", _py(
            f"benchmarks.gpu_paper --models-json {q(bench_json)} --device {args.device} "
            f"--bench-iters {args.bench_iters} --bench-warmup {args.bench_warmup} "
            f"--bench-train-batch {args.bench_train_batch} "
            f"--bench-batches {' '.join(map(str, args.bench_batches))} "
            f"--bench-precisions {' '.join(args.bench_precisions)}"
        ), timeout=min(240, run.left() * 0.4))  # fmt: skip
    bench = json.loads(bench_json.read_text()) if bench_json.is_file() else {}
    run.summary["bench_models"] = bench
    rec = run.finish(render, timeout=run.left() - 200)
    rec["pairs_per_s"] = round((args.train + args.test) / max(rec["wall_s"], 0.1), 1)
    if rec["rc"] != 0:
        raise SystemExit("render failed: see render.log in steps.log")

    # Epochs that fit the time left, from the benchmark's GPU-only rates: the loop also
    # loads data and evaluates in fp32 (outside autocast) with one loading thread.
    fits = [
        r["batch_pairs"]
        for r in bench.get("train", [])
        if r["model"].startswith("teacher") and not r.get("oom")
    ]
    batch = args.batch or (fits[0] if fits else 128)  # the preset's 128 unless it ran out
    pairs_s = 0.7 * _rate(bench, "train", "teacher", batch_pairs=batch) / 2
    t_fp32 = _rate(bench, "inference", "teacher", precision="fp32")
    epoch_s = _per_epoch_s(args, pairs_s, t_fp32)
    t_epochs = _epochs(args.teacher_epochs, (run.left() - 60) * 0.55, 45, epoch_s, cap=8)
    run.summary["plan"] = {"teacher_batch": batch, "teacher_epochs": t_epochs}
    run.save()
    run.phase("teacher", _py(
        f"train.teacher --dataset cvusa --data {q(data)} --preset paper --out {q(teacher_dir)} "
        f"--overwrite --device {args.device} --epochs {t_epochs} --batch-size {batch} "
        f"--lr {args.teacher_lr} --warmup-epochs {args.warmup_epochs} --workers {args.workers}"
    ), timeout=run.left() - 150)  # fmt: skip
    teacher_pt = teacher_dir / "teacher.pt"
    if not teacher_pt.is_file():
        raise SystemExit("no teacher.pt: see teacher.log in steps.log")

    s_batch = args.batch or 128
    pairs_s = 0.6 * _rate(bench, "train", "students") / 2
    s_fp32 = _rate(bench, "inference", "student", precision="fp32")
    # the teacher-embedding cache: fp32, loaded by one thread
    cache_s = 2 * args.train * args.variants * (1 / t_fp32 + 0.003) if t_fp32 else 0.0
    epoch_s = _per_epoch_s(args, pairs_s, s_fp32)
    d_epochs = _epochs(args.distill_epochs, run.left() - 50, 60 + cache_s, epoch_s, cap=12)
    run.summary["plan"] |= {"student_batch": s_batch, "distill_epochs": d_epochs}
    run.save()
    run.phase("distill", _py(
        f"train.distill --dataset cvusa --data {q(data)} --teacher {q(teacher_pt)} "
        f"--preset paper --view both --out {q(students_dir)} --overwrite --device {args.device} "
        f"--epochs {d_epochs} --batch-size {s_batch} --warmup-epochs {args.warmup_epochs} "
        f"--variants {args.variants} --workers {args.workers}"
    ), timeout=run.left() - 25)  # fmt: skip

    g, s = students_dir / "student_ground.pt", students_dir / "student_satellite.pt"
    eval_json = run.work / "eval_students.json"
    if g.is_file() and s.is_file() and run.left() > 30:
        run.phase("evaluate", _py(
            f"train.evaluate --dataset cvusa --data {q(data)} --ground {q(g)} --satellite {q(s)} "
            f"--json {q(eval_json)}"
        ), timeout=run.left() - 5)  # fmt: skip
        if eval_json.is_file():
            run.summary["eval_students"] = json.loads(eval_json.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("OUT", "runs/gpu_paper")),
        help="summary, logs, metrics (default: $OUT, else runs/gpu_paper)",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/gpu_paper"),
        help="the rendered world and the run folders",
    )
    p.add_argument("--device", default="auto", help="auto, cuda, cpu (passed to every step)")
    p.add_argument("--budget-s", type=float, default=500, help="deadline of the whole script")
    p.add_argument("--train", type=int, default=6000, help="training panoramas to render")
    p.add_argument("--test", type=int, default=1000, help="test panoramas (unseen towns)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--render-workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--workers", type=int, default=12, help="DataLoader workers of the steps")
    p.add_argument("--batch", type=int, default=0, help="pairs per step (0: the preset's 128)")
    p.add_argument("--teacher-epochs", type=int, default=0, help="0: as many as fit")
    p.add_argument("--distill-epochs", type=int, default=0, help="0: as many as fit")
    p.add_argument(
        "--teacher-lr",
        type=float,
        default=3e-4,
        help="from scratch, not the preset's fine-tuning 1e-3 (docs/gpu_paper.md)",
    )
    p.add_argument("--warmup-epochs", type=float, default=0.3)
    p.add_argument("--variants", type=int, default=1, help="distillation variants cached")
    p.add_argument("--bench-iters", type=int, default=10, help="timed calls per config; 0: skip")
    p.add_argument("--bench-warmup", type=int, default=2, help="untimed calls per config")
    p.add_argument("--bench-batches", type=int, nargs="+", default=[1, 32, 128])
    p.add_argument("--bench-train-batch", type=int, default=128)
    p.add_argument(
        "--bench-precisions", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"]
    )
    p.add_argument("--models-json", type=Path, help=argparse.SUPPRESS)  # the benchmark mode
    args = p.parse_args(argv)
    if args.models_json:
        bench_models(args)
    else:
        orchestrate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
