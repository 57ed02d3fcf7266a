"""This CPU's fp32 peak from its instruction set and clock, the ceiling ``export.bench`` divides
by: FMA units x fp32 lanes x 2 FLOPs (an FMA is a multiply and an add) x GHz, per core.

Lanes come from the widest vector extension in the CPU flags (``avx512f`` 16 fp32 lanes,
``avx``/``avx2`` 8, ``sse2`` 4, Arm ``asimd`` 4); without ``fma`` (x86) a lane does one FLOP a
cycle per unit instead of two. The number of FMA units per core is an ASSUMPTION, not read
from the machine: 2, as on x86 cores since Intel Haswell and AMD Zen 2 (Zen 4/5, Golden Cove).
Zen 4 executes a 512-bit FMA as two 256-bit halves, so there the AVX-512 figure is twice what
the core can do: the result is a ceiling, and a fraction of it is never flattered. The clock
is ``/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq`` (the boost clock) where the
kernel has it, else the ``cpu MHz`` of ``/proc/cpuinfo`` (under a hypervisor often the base
clock, which a boosting core exceeds): the source is reported with the number.

A measured GEMM is no such ceiling: it depends on the BLAS's code path and on the load of a
shared machine (a 1024^3 single-thread ``torch`` matmul measured 37 to 97 GFLOP/s on this
2-core VM minutes apart). Dividing by it, ``export.bench`` once reported an ONNX student at
158 % "of peak" (issue 24); it now reports both and divides by this one.

Usage::

    peak = cpu_peak()                          # reads /proc/cpuinfo and cpufreq
    peak.gflops(threads=2), peak.describe()
    isa_peak_gflops({"avx512f", "fma"}, ghz=3.0)   # 192.0 (2 units x 16 lanes x 2 x 3.0)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FMA_UNITS = 2  # assumed, see the module doc
CPUINFO = Path("/proc/cpuinfo")
MAX_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
# widest first: (flag, fp32 lanes, its name in reports)
_VECTORS = (("avx512f", 16, "AVX-512"), ("avx", 8, "AVX"), ("sse2", 4, "SSE2"))
_ARM = (("asimd", 4, "NEON"),)  # SVE's width is not in the flags: counted as NEON


class PeakError(RuntimeError):
    """The peak cannot be derived (no known vector extension, or no clock)."""


def fp32_lanes(flags: Iterable[str]) -> tuple[int, str]:
    """(fp32 lanes of the widest vector extension in ``flags``, its name)."""
    flags = set(flags)
    for flag, lanes, name in _VECTORS + _ARM:
        if flag in flags:
            return lanes, name
    raise PeakError(f"no known vector extension in the CPU flags ({sorted(flags)[:20]} ...)")


def has_fma(flags: Iterable[str]) -> bool:
    """x86 reports ``fma``; every Arm core with ``asimd`` has fused multiply-add."""
    flags = set(flags)
    return "fma" in flags or "asimd" in flags


def isa_peak_gflops(flags: Iterable[str], ghz: float, fma_units: int = FMA_UNITS) -> float:
    """fp32 GFLOP/s of one core: ``fma_units x lanes x (2 with FMA else 1) x ghz``."""
    if not ghz > 0:
        raise PeakError(f"clock must be > 0 GHz, got {ghz}")
    if fma_units < 1:
        raise PeakError(f"fma_units must be >= 1, got {fma_units}")
    flags = set(flags)
    lanes, _ = fp32_lanes(flags)
    return fma_units * lanes * (2 if has_fma(flags) else 1) * ghz


@dataclass(frozen=True)
class CpuPeak:
    """The derived peak and what it was derived from."""

    model: str
    flags: frozenset[str]
    ghz: float
    clock_source: str
    cores: int
    fma_units: int = FMA_UNITS

    @property
    def per_core_gflops(self) -> float:
        return isa_peak_gflops(self.flags, self.ghz, self.fma_units)

    def gflops(self, threads: int) -> float:
        """The peak of ``threads`` threads (at most one core each)."""
        return self.per_core_gflops * max(1, min(threads, self.cores))

    def describe(self) -> str:
        lanes, name = fp32_lanes(self.flags)
        fma = "FMA" if has_fma(self.flags) else "no FMA"
        return (
            f"{self.model}: {self.fma_units} FMA units (assumed) x {lanes} fp32 lanes ({name}, "
            f"{fma}) x {2 if has_fma(self.flags) else 1} x {self.ghz:.2f} GHz "
            f"({self.clock_source}) = {self.per_core_gflops:.1f} GFLOP/s per core"
        )

    def to_dict(self) -> dict:
        lanes, name = fp32_lanes(self.flags)
        return {
            "model": self.model,
            "vector": name,
            "fp32_lanes": lanes,
            "fma": has_fma(self.flags),
            "fma_units_assumed": self.fma_units,
            "ghz": self.ghz,
            "clock_source": self.clock_source,
            "cores": self.cores,
            "per_core_gflops": self.per_core_gflops,
        }


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str], float | None]:
    """(model name, flags, ``cpu MHz`` in GHz or None) of the first processor in ``text``."""
    model, flags, ghz = "unknown CPU", frozenset(), None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model name") and model == "unknown CPU":
            model = value
        elif key in ("flags", "Features") and not flags:  # x86, Arm
            flags = frozenset(value.split())
        elif key == "cpu MHz" and ghz is None:
            try:
                ghz = float(value) / 1e3
            except ValueError:
                pass
    return model, flags, ghz


def cpu_peak(
    ghz: float | None = None,
    fma_units: int = FMA_UNITS,
    cpuinfo: Path = CPUINFO,
    max_freq: Path = MAX_FREQ,
) -> CpuPeak:
    """Read this machine's flags and clock (``ghz`` overrides the clock)."""
    try:
        model, flags, mhz_ghz = parse_cpuinfo(cpuinfo.read_text())
    except OSError as err:
        raise PeakError(f"cannot read {cpuinfo}: {err}") from None
    if ghz is not None:
        source = "given"
    elif max_freq.is_file():
        ghz, source = int(max_freq.read_text().split()[0]) / 1e6, f"{max_freq} (max)"
    elif mhz_ghz:
        ghz, source = mhz_ghz, f"{cpuinfo} cpu MHz (no cpufreq; may be the base clock)"
    else:
        raise PeakError(f"no clock in {max_freq} or {cpuinfo}; pass the GHz")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return CpuPeak(model, flags, float(ghz), source, cores or 1, fma_units)
