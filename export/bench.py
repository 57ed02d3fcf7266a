"""Benchmark every exporter: format x precision -> size, latency, parity, R@1, compute use.

For each view's student, every benchmarked precision of every importable format of the table
in :mod:`export.formats` is exported (and verified) into ``--out``, then run as the device
runs it (``d4g_edge.runtime.open_encoder``) on one query (batch 1): p50/p90 latency at each
``--threads`` count, min cosine to the eager student and R@1 on held-out world pairs (ground ->
satellite, the artifact replacing its view's eager student), and, for ground rows, how many
times faster it is than the ``edge-s`` teacher (ResNet-18) and the ``paper`` teacher
(ConvNeXt-B at 140x768, random weights) run eagerly on one query. Core ML predicts only on
macOS: elsewhere its rows carry the size alone.

Compute use, ``peak_frac@T``: the student's FLOPs per image / p50 / the fp32 peak of T cores
derived from the instruction set and clock (:mod:`export.cpu_peak`: FMA units x lanes x 2 x
GHz, a ceiling). The FLOPs are counted twice, by torch and from the ONNX graph
(:mod:`export.flops`); the run stops if the two differ by more than 10 %. A measured GEMM
(a 1024^3 torch matmul) is reported beside the ISA peak, not divided by: it is no ceiling.
int8 rows do int8 work, so their fraction of the fp32 peak compares speed, not efficiency.

Usage::

    python -m export.bench --json bench.json                      # the committed students
    python -m export.bench --ground runs/g/student_ground.pt --satellite runs/s/student_satellite.pt
"""

from __future__ import annotations

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
from export.cpu_peak import FMA_UNITS, PeakError, cpu_peak
from export.flops import FlopCountMismatch, cross_check, onnx_flops, torch_flops
from export.formats import FORMATS, get_format

PAPER_TEACHER_HW = (140, 768)


@dataclass(frozen=True)
class BenchConfig:
    ground: Path | None = field(default=None, metadata=flag("ground student (default: committed)"))
    satellite: Path | None = field(
        default=None, metadata=flag("satellite student (default: committed)")
    )
    formats: str = field(
        default=",".join(FORMATS), metadata=flag(f"exporters to run, of {list(FORMATS)}")
    )
    out: Path = field(default=Path("artifacts/bench"), metadata=flag("where artifacts go"))
    pairs: int = field(default=100, metadata=flag("held-out world pairs for cosine and R@1"))
    reps: int = field(default=50, metadata=flag("timed runs per latency (after 5 warm-ups)"))
    threads: str = field(default="1,2", metadata=flag("comma-separated thread counts"))
    teachers: bool = field(default=True, metadata=flag("time the edge-s and paper teachers"))
    json: Path | None = field(default=None, metadata=flag("also write the results here"))
    ghz: float | None = field(
        default=None,
        metadata=flag("clock of the ISA peak (default: cpufreq's max, else /proc/cpuinfo MHz)"),
    )
    fma_units: int = field(
        default=FMA_UNITS, metadata=flag("FMA units per core of the ISA peak (an assumption)")
    )


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
    """Best fp32 GEMM throughput of a torch matmul at ``threads`` (reported, not divided by:
    it depends on the BLAS and the machine's load, and the student ran faster)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = min(latency_ms(lambda: a @ b, 1, warmup=2)["p50"] for _ in range(reps))
    return 2 * n**3 / (best / 1e3) / 1e9


def model_flops(src) -> dict[str, float]:
    """FLOPs of one image through ``src``'s student, by torch and from its ONNX graph; raises
    :class:`FlopCountMismatch` if they differ by more than 10 %."""
    from export.onnx import traced  # the fp32 graph export.onnx exports (traced once)

    by_torch = torch_flops(src.model, src.cfg.input().tensor_shape)
    graph = onnx_flops(traced(src))
    diff = cross_check(by_torch, graph)
    logger.info(
        "%s: %.4f GFLOP by torch FlopCounterMode, %.4f GFLOP by the ONNX graph (%+.2f %%)",
        src.cfg.view,
        by_torch / 1e9,
        graph.total / 1e9,
        100 * diff,
    )
    return {"torch_gflop": by_torch / 1e9, "onnx_graph_gflop": graph.total / 1e9, "diff": diff}


def exporters(names: Sequence[str]) -> dict[str, Any]:
    """The importable exporter modules of ``names`` (formats of :data:`FORMATS`)."""
    found = {}
    for name in names:
        fmt = get_format(name)  # an unknown name is a user error, not a skipped row
        try:
            found[name] = importlib.import_module(fmt.module)
        except ImportError as err:
            logger.warning("skipping %s: %s", fmt.module, err)
    return found


def config_class(module) -> type:
    """The config dataclass ``module.export(cfg)`` takes (read from its annotation)."""
    first = next(iter(inspect.signature(module.export).parameters))
    return typing.get_type_hints(module.export)[first]


def bench_view(
    view: str, src, other, cfg: BenchConfig, modules, threads, gflop: float
) -> list[dict]:
    """Rows of one view (``gflop`` per image): the eager student, then every exporter x
    precision."""
    import torch

    pairs = world_pairs(cfg.pairs)
    x = model_inputs(pairs, src.cfg)
    eager = eager_embed(src.model, x)
    other_e = eager_embed(other.model, model_inputs(pairs, other.cfg)) if other else None

    def r1(emb: np.ndarray) -> float | None:
        if other_e is None:
            return None
        return recall_at_1(emb, other_e) if view == "ground" else recall_at_1(other_e, emb)

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
            result["note"] = f"no {get_format(fmt).runtime} runtime on {sys.platform}"
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
        for quant in get_format(fmt).bench_quants:
            path = module.export(cls(view=view, checkpoint=src.path, quant=quant, out=cfg.out))
            # runner(path, threads) runs an artifact as the device does, where it can run here
            run_for = getattr(module, "runner", None) if get_format(fmt).runs_here() else None
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
    cpu = cpu_peak(ghz=cfg.ghz, fma_units=cfg.fma_units)
    isa = {t: cpu.gflops(t) for t in threads}
    logger.info("fp32 ISA peak: %s; %s GFLOP/s", cpu.describe(), _rounded(isa))
    gemm = {t: gemm_peak_gflops(t) for t in threads}
    ground, satellite = load_source("ground", cfg.ground), load_source("satellite", cfg.satellite)
    flops = {"ground": model_flops(ground), "satellite": model_flops(satellite)}
    gflop = {view: f["torch_gflop"] for view, f in flops.items()}
    rows = bench_view("ground", ground, satellite, cfg, modules, threads, gflop["ground"])
    rows += bench_view("satellite", satellite, ground, cfg, modules, threads, gflop["satellite"])
    # A shared machine's GEMM moves with its load: report the better of two measurements.
    gemm = {t: max(p, gemm_peak_gflops(t)) for t, p in gemm.items()}
    logger.info("torch 1024^3 matmul: %s GFLOP/s (reported, not divided by)", _rounded(gemm))
    for t in threads:
        if gemm[t] > isa[t]:
            logger.warning(
                "a torch matmul at %d threads ran %.1f GFLOP/s, above the ISA peak %.1f: the "
                "clock (%s) or the FMA units (%d) assumed are too low; pass --ghz / --fma-units",
                t,
                gemm[t],
                isa[t],
                cpu.clock_source,
                cpu.fma_units,
            )
    for r in rows:
        for t in threads:
            if r.get(f"p50_ms@{t}"):
                r[f"gflops@{t}"] = r["gflop"] / (r[f"p50_ms@{t}"] / 1e3)
                r[f"peak_frac@{t}"] = r[f"gflops@{t}"] / isa[t]
                if r[f"peak_frac@{t}"] > 1 and r["quant"] in ("fp32", "fp16"):
                    logger.warning(
                        "%s %s %s ran at %.0f %% of the fp32 ISA peak at %d threads: the peak "
                        "(%s) or the FLOP count is wrong",
                        r["view"],
                        r["format"],
                        r["quant"],
                        100 * r[f"peak_frac@{t}"],
                        t,
                        cpu.describe(),
                    )
    teachers = (
        bench_teachers(ground.cfg.input().tensor_shape, threads, cfg.reps) if (cfg.teachers) else {}
    )
    for r in rows:
        for name, teacher in teachers.items():
            for t in threads:
                if r["view"] == "ground" and r.get(f"p50_ms@{t}"):
                    r[f"x_{name}@{t}"] = teacher[f"p50_ms@{t}"] / r[f"p50_ms@{t}"]
    return {
        "isa_peak_gflops": isa,
        "cpu": cpu.to_dict(),
        "gemm_peak_gflops": gemm,
        "flops": flops,
        "teachers": teachers,
        "rows": rows,
        "pairs": cfg.pairs,
        "reps": cfg.reps,
    }


def table(result: dict) -> str:
    """The peaks, the two FLOP counts and one row per view x format x precision."""
    threads = list(result["isa_peak_gflops"])
    cpu = result["cpu"]
    lines = [
        f"fp32 ISA peak (peak_frac's denominator): {cpu['fma_units_assumed']} FMA units "
        f"(assumed) x {cpu['fp32_lanes']} lanes ({cpu['vector']}) x 2 x {cpu['ghz']:.2f} GHz "
        f"({cpu['clock_source']}) = {_rounded(result['isa_peak_gflops'])} GFLOP/s by threads",
        f"measured torch 1024^3 matmul: {_rounded(result['gemm_peak_gflops'])} GFLOP/s",
    ]
    for view, f in result["flops"].items():
        lines.append(
            f"{view} FLOPs per image: torch {f['torch_gflop']:.4f} GFLOP, ONNX graph "
            f"{f['onnx_graph_gflop']:.4f} GFLOP ({100 * f['diff']:+.2f} %)"
        )
    cols = ["view", "format", "quant", "size_mb"]
    for t in threads:
        cols += [f"p50_ms@{t}", f"p90_ms@{t}", f"gflops@{t}", f"peak_frac@{t}"]
    cols += ["min_cos", "r1", "r1_retention"]
    cols += [f"x_{n}@{t}" for n in result["teachers"] for t in threads]
    lines += ["", " | ".join(cols), " | ".join("---" for _ in cols)]
    for r in result["rows"]:
        lines.append(" | ".join(_fmt(r.get(c)) for c in cols))
    return "\n".join(lines)


def _rounded(by_threads: dict) -> dict:
    return {t: round(v, 1) for t, v in by_threads.items()}


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
    except (ExportError, FileNotFoundError, PeakError) as err:
        parser.exit(2, f"error: {err}\n")
    except FlopCountMismatch as err:
        parser.exit(1, f"error: {err}\n")
    print(table(result))
    if cfg.json:
        cfg.json.parent.mkdir(parents=True, exist_ok=True)
        cfg.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {cfg.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
