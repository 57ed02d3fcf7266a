"""Benchmark every exporter: format x precision -> size, latency, parity, R@1, compute use.

For each view's student, every precision of every importable exporter (``export.onnx``,
``export.coreml``, ``export.executorch``) is exported (and verified) into ``--out``, then run
in its runtime on one query (batch 1): p50/p90 latency at each ``--threads`` count, min cosine
to the eager student and R@1 on held-out world pairs (ground -> satellite, the artifact
replacing its view's eager student), its GFLOP/s as a fraction of this machine's fp32 GEMM
peak (a 1024^3 torch matmul measured in the same run), and, for ground rows, how many times
faster it is than the ``edge-s`` teacher (ResNet-18) and the ``paper`` teacher (ConvNeXt-B at
140x768, random weights) run eagerly on one query. Core ML predicts only on macOS: on Linux
its rows carry the size alone.

Usage::

    python -m export.bench --json bench.json                      # the committed students
    python -m export.bench --ground runs/g/student_ground.pt --satellite runs/s/student_satellite.pt
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import sys
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge.log import logger
from export._common import ExportError, artifact_size, build_parser, flag, load_source
from export._verify import eager_embed, model_inputs, parity, recall_at_1, world_pairs

PAPER_TEACHER_HW = (140, 768)


@dataclass(frozen=True)
class BenchConfig:
    ground: Path | None = field(default=None, metadata=flag("ground student (default: committed)"))
    satellite: Path | None = field(
        default=None, metadata=flag("satellite student (default: committed)")
    )
    formats: str = field(default="onnx,coreml,executorch", metadata=flag("exporters to run"))
    out: Path = field(default=Path("artifacts/bench"), metadata=flag("where artifacts go"))
    pairs: int = field(default=100, metadata=flag("held-out world pairs for cosine and R@1"))
    reps: int = field(default=50, metadata=flag("timed runs per latency (after 5 warm-ups)"))
    threads: str = field(default="1,2", metadata=flag("comma-separated thread counts"))
    teachers: bool = field(default=True, metadata=flag("time the edge-s and paper teachers"))
    json: Path | None = field(default=None, metadata=flag("also write the results here"))


def latency_ms(fn: Callable[[], Any], reps: int, warmup: int = 5) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90))}


def gemm_peak_gflops(threads: int, n: int = 1024, reps: int = 20) -> float:
    """Best fp32 GEMM throughput of this machine at ``threads`` (torch matmul)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = min(latency_ms(lambda: a @ b, 1, warmup=2)["p50"] for _ in range(reps))
    return 2 * n**3 / (best / 1e3) / 1e9


def model_gflop(model, hw: tuple[int, int]) -> float:
    """GFLOP (2 x MACs) of one image through ``model``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, *hw))
    return counter.get_total_flops() / 1e9


def exporters(names: Sequence[str]) -> dict[str, Any]:
    """The importable ``export.<name>`` modules (ExecuTorch may not be there yet)."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.import_module(f"export.{name}")
        except ImportError as err:
            logger.warning("skipping export.%s: %s", name, err)
    return found


def config_class(module) -> type:
    """The config dataclass ``module.export(cfg)`` takes (read from its annotation)."""
    first = next(iter(inspect.signature(module.export).parameters))
    return typing.get_type_hints(module.export)[first]


def quants(module, cls: type) -> tuple[str, ...]:
    """The precisions to time: the module's ``BENCH_QUANTS`` (where two choices build the same
    artifact), else every choice of the config's ``quant``."""
    if hasattr(module, "BENCH_QUANTS"):
        return tuple(module.BENCH_QUANTS)
    quant = next(f for f in dataclasses.fields(cls) if f.name == "quant")
    return tuple(quant.metadata.get("choices") or (quant.default,))


def bench_view(view: str, src, other, cfg: BenchConfig, modules, threads) -> list[dict]:
    """Rows of one view: the eager student, then every exporter x precision."""
    import torch

    pairs = world_pairs(cfg.pairs)
    x = model_inputs(pairs, src.cfg)
    eager = eager_embed(src.model, x)
    other_e = eager_embed(other.model, model_inputs(pairs, other.cfg)) if other else None

    def r1(emb: np.ndarray) -> float | None:
        if other_e is None:
            return None
        return recall_at_1(emb, other_e) if view == "ground" else recall_at_1(other_e, emb)

    gflop = model_gflop(src.model, src.cfg.input().tensor_shape)
    r1_eager = r1(eager)
    one = x[:1]

    def row(fmt: str, quant: str, size: int | None, run_for) -> dict:
        result: dict[str, Any] = {
            "view": view,
            "format": fmt,
            "quant": quant,
            "gflop": gflop,
            "size_mb": None if size is None else size / 1e6,
            "r1_eager": r1_eager,
        }
        if run_for is None:
            result["note"] = f"no {fmt} runtime on {sys.platform}"
            return result
        for t in threads:
            fn = run_for(t)
            lat = latency_ms(lambda fn=fn: fn(one), cfg.reps)
            result[f"p50_ms@{t}"], result[f"p90_ms@{t}"] = lat["p50"], lat["p90"]
        got = np.asarray(fn(x), np.float32)
        report = parity(eager, got)
        result.update(min_cos=report.min_cosine, mean_cos=report.mean_cosine, r1=r1(got))
        if result["r1"] is not None and r1_eager:
            result["r1_retention"] = result["r1"] / r1_eager
        return result

    def eager_run(t: int):
        torch.set_num_threads(t)
        return lambda a: eager_embed(src.model, a)

    rows = [row("eager", "fp32", src.path.stat().st_size, eager_run)]
    for fmt, module in modules.items():
        cls = config_class(module)
        for quant in quants(module, cls):
            path = module.export(cls(view=view, checkpoint=src.path, quant=quant, out=cfg.out))
            # every exporter's runner(path, threads) runs its artifact (Core ML: macOS only)
            run_for = getattr(module, "runner", None)
            rows.append(
                row(
                    fmt,
                    quant,
                    artifact_size(path),
                    (lambda t, r=run_for, p=path: r(p, t)) if run_for else None,
                )
            )
    return rows


def bench_teachers(hw: tuple[int, int], threads, reps: int) -> dict[str, dict]:
    import torch

    from train.models import create_model

    out = {}
    for name, arch, size, n in (
        ("edge-s", "resnet18", hw, reps),
        ("paper", "convnext_base", PAPER_TEACHER_HW, 3),
    ):
        model = create_model("teacher", arch).eval()
        x = torch.zeros(1, 3, *size)
        out[name] = {"model": arch, "input": list(size)}
        with torch.no_grad():
            for t in threads:
                torch.set_num_threads(t)
                out[name][f"p50_ms@{t}"] = latency_ms(lambda m=model, x=x: m(x), n, warmup=1)["p50"]
    return out


def run(cfg: BenchConfig) -> dict:
    threads = [int(t) for t in cfg.threads.split(",")]
    modules = exporters([f.strip() for f in cfg.formats.split(",") if f.strip()])
    peaks = {t: gemm_peak_gflops(t) for t in threads}
    logger.info("fp32 GEMM peak: %s GFLOP/s", {t: round(p, 1) for t, p in peaks.items()})
    ground, satellite = load_source("ground", cfg.ground), load_source("satellite", cfg.satellite)
    rows = bench_view("ground", ground, satellite, cfg, modules, threads)
    rows += bench_view("satellite", satellite, ground, cfg, modules, threads)
    # A shared machine's peak moves with its load: keep the better of the two measurements
    # (before and after), so a fraction of peak is never flattered by a busy start.
    peaks = {t: max(p, gemm_peak_gflops(t)) for t, p in peaks.items()}
    for r in rows:
        for t in threads:
            if r.get(f"p50_ms@{t}"):
                r[f"peak_frac@{t}"] = r["gflop"] / (r[f"p50_ms@{t}"] / 1e3) / peaks[t]
    teachers = (
        bench_teachers(ground.cfg.input().tensor_shape, threads, cfg.reps) if (cfg.teachers) else {}
    )
    for r in rows:
        for name, teacher in teachers.items():
            for t in threads:
                if r["view"] == "ground" and r.get(f"p50_ms@{t}"):
                    r[f"x_{name}@{t}"] = teacher[f"p50_ms@{t}"] / r[f"p50_ms@{t}"]
    return {
        "gemm_peak_gflops": peaks,
        "teachers": teachers,
        "rows": rows,
        "pairs": cfg.pairs,
        "reps": cfg.reps,
    }


def table(result: dict) -> str:
    threads = list(result["gemm_peak_gflops"])
    cols = ["view", "format", "quant", "size_mb"]
    for t in threads:
        cols += [f"p50_ms@{t}", f"p90_ms@{t}", f"peak_frac@{t}"]
    cols += ["min_cos", "r1", "r1_retention"]
    cols += [f"x_{n}@{t}" for n in result["teachers"] for t in threads]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in result["rows"]:
        lines.append(" | ".join(_fmt(r.get(c)) for c in cols))
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv: Sequence[str] | None = None) -> int:
    from d4g_edge.log import setup_logging

    setup_logging()
    parser = build_parser(BenchConfig, __doc__)
    cfg = BenchConfig(**vars(parser.parse_args(argv)))
    try:
        result = run(cfg)
    except (ExportError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    print(table(result))
    if cfg.json:
        cfg.json.parent.mkdir(parents=True, exist_ok=True)
        cfg.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {cfg.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
