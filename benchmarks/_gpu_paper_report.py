"""What :mod:`benchmarks.gpu_paper` leaves behind: per-epoch numbers with the loop's images/s,
GPU use per phase (from ``nvidia-smi``'s log), the runs' files copied into ``--out`` and the
short table the device call's output tail carries."""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _gpu_util(csv: Path, phases: dict, t0: float) -> dict:
    """Mean GPU utilisation, memory and power over each phase's wall time."""
    rows = []
    for line in csv.read_text().splitlines() if csv.is_file() else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4 or not parts[1].isdigit():
            continue
        try:
            t = time.mktime(time.strptime(parts[0][:19], "%Y/%m/%d %H:%M:%S"))
            rows.append((t - t0, int(parts[1]), float(parts[2]), float(parts[3])))
        except ValueError:  # a reading nvidia-smi could not take ("[N/A]")
            continue
    out = {}
    for name, rec in phases.items():
        sel = [r for r in rows if rec["start_s"] <= r[0] <= rec["start_s"] + rec["wall_s"]]
        if sel:
            out[name] = {
                "util_pct": round(statistics.mean(r[1] for r in sel), 1),
                "mem_gib_max": round(max(r[2] for r in sel) / 1024, 1),
                "power_w": round(statistics.mean(r[3] for r in sel), 1),
            }
    return out


def _clean_log(text: str) -> str:
    """tqdm redraws with carriage returns: keep each line's final state."""
    return "\n".join(seg.split("\r")[-1] for seg in text.splitlines() if seg.strip())


def collect(run) -> None:
    """Per-epoch numbers with the loop's images/s, GPU use per phase, files into --out
    (``run``: the :class:`benchmarks.gpu_paper.Run`, not imported here: no import cycle)."""
    args, work, plan = run.args, run.work, run.summary.get("plan", {})
    for name, key in (("teacher", "teacher_batch"), ("students", "student_batch")):
        batch = plan.get(key, 128)
        recs = _records(work / name / "metrics.jsonl")
        steps = args.train // batch  # the epoch's batches (the sampler may drop one more)
        for r in recs:
            r["images_per_s"] = round(2 * steps * batch / r["train_s"], 1)
        run.summary[f"{name}_epochs"] = recs
        for src, dst in (
            ("metrics.jsonl", f"{name}_metrics.jsonl"),
            ("curves.png", f"{name}_curves.png"),
        ):
            if (work / name / src).is_file():
                shutil.copy(work / name / src, run.out / dst)
    run.summary["gpu_util"] = _gpu_util(work / "gpu_util.csv", run.summary["phases"], run.t0)
    if (work / "gpu_util.csv").is_file():
        shutil.copy(work / "gpu_util.csv", run.out / "gpu_util.csv")
    run.out.joinpath("steps.log").write_text(
        "\n".join(
            f"===== {p.name}\n{_clean_log(p.read_text(errors='replace'))}"
            for p in run.logs
            if p.is_file()
        )
    )
    run.save()
    report(run.summary)


def report(summary: dict) -> None:
    """The short table the device call's output tail carries."""
    print("\n== throughput (images/s; a teacher or student pair step is 2 images per pair)")
    for r in summary.get("bench_models", {}).get("train", []):
        print(
            f"train   {r['model']:<40} batch {r['batch_pairs']:>4} pairs  "
            f"{r.get('images_per_s', 'OOM')!s:>8}  peak {r['peak_gib']} GiB"
        )
    for r in summary.get("bench_models", {}).get("inference", []):
        print(
            f"infer   {r['model']:<30} {r['input']:>8} {r['precision']:>5} batch {r['batch']:>4}"
            f"  {r.get('images_per_s', 'OOM')!s:>8}  {r.get('ms', '-')!s:>8} ms"
        )
    for name in ("teacher", "students"):
        for r in summary.get(f"{name}_epochs", []):
            keys = ("recall@1", "recall@5", "recall@10", "recall@1%", "retention")
            rec = " ".join(f"{k} {r[k]:.2f}" for k in keys if isinstance(r.get(k), float))
            print(
                f"{name:<8} epoch {r['epoch']}: loss {r['loss']:.4f} train {r['train_s']} s "
                f"({r['images_per_s']} images/s) {rec}"
            )
    print("phases:", json.dumps(summary.get("phases")), "gpu:", json.dumps(summary.get("gpu_util")))
