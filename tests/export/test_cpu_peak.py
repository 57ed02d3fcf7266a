"""export.cpu_peak: the fp32 ceiling from CPU flags and clock (FMA units x lanes x 2 x GHz)."""

from __future__ import annotations

import pytest

from export.cpu_peak import CpuPeak, PeakError, cpu_peak, isa_peak_gflops, parse_cpuinfo

ZEN4_FLAGS = "fpu sse sse2 ssse3 fma avx avx2 avx512f avx512dq avx512_vnni"
X86_CPUINFO = f"""processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
cpu MHz\t\t: 2596.136
flags\t\t: {ZEN4_FLAGS}

processor\t: 1
model name\t: AMD EPYC
cpu MHz\t\t: 3700.000
flags\t\t: {ZEN4_FLAGS}
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize(
    ("flags", "ghz", "want"),
    [
        ({"sse2", "avx", "avx2", "fma", "avx512f"}, 3.0, 2 * 16 * 2 * 3.0),  # AVX-512 + FMA
        ({"sse2", "avx", "avx2", "fma"}, 2.5, 2 * 8 * 2 * 2.5),  # AVX2 + FMA (Haswell on)
        ({"sse2", "avx"}, 2.0, 2 * 8 * 1 * 2.0),  # AVX without FMA: a FLOP per lane per unit
        ({"sse", "sse2"}, 2.0, 2 * 4 * 1 * 2.0),
        ({"fp", "asimd"}, 3.0, 2 * 4 * 2 * 3.0),  # Arm NEON always fuses
    ],
)
def test_isa_peak_from_flags_and_clock(flags, ghz, want):
    assert isa_peak_gflops(flags, ghz) == pytest.approx(want)


def test_fma_units_scale_the_peak():
    assert isa_peak_gflops({"avx2", "avx", "fma"}, 2.0, fma_units=1) == pytest.approx(32.0)


@pytest.mark.parametrize(
    ("flags", "ghz", "message"),
    [({"fpu", "mmx"}, 3.0, "no known vector extension"), ({"avx2", "avx"}, 0.0, "clock")],
)
def test_bad_inputs_are_peak_errors(flags, ghz, message):
    with pytest.raises(PeakError, match=message):
        isa_peak_gflops(flags, ghz)


def test_parse_cpuinfo_takes_the_first_processor():
    model, flags, ghz = parse_cpuinfo(X86_CPUINFO)
    assert model == "AMD EPYC" and ghz == pytest.approx(2.596136)
    assert {"avx512f", "fma", "avx2"} <= flags
    model, flags, ghz = parse_cpuinfo(ARM_CPUINFO)
    assert "asimd" in flags and ghz is None and model == "unknown CPU"


def test_clock_prefers_cpufreq_max_then_cpuinfo_mhz(tmp_path):
    cpuinfo, max_freq = tmp_path / "cpuinfo", tmp_path / "cpuinfo_max_freq"
    cpuinfo.write_text(X86_CPUINFO)
    peak = cpu_peak(cpuinfo=cpuinfo, max_freq=max_freq)  # no cpufreq: cpu MHz, and it says so
    assert peak.ghz == pytest.approx(2.596136) and "cpu MHz" in peak.clock_source
    assert peak.per_core_gflops == pytest.approx(2 * 16 * 2 * 2.596136)
    max_freq.write_text("3700000\n")  # kHz
    peak = cpu_peak(cpuinfo=cpuinfo, max_freq=max_freq)
    assert peak.ghz == pytest.approx(3.7) and "max" in peak.clock_source
    assert cpu_peak(ghz=4.0, cpuinfo=cpuinfo, max_freq=max_freq).ghz == 4.0
    arm = tmp_path / "arm"
    arm.write_text(ARM_CPUINFO)
    with pytest.raises(PeakError, match="no clock"):
        cpu_peak(cpuinfo=arm, max_freq=tmp_path / "none")


def test_threads_beyond_the_cores_add_nothing():
    peak = CpuPeak("cpu", frozenset({"avx", "avx2", "fma"}), 2.0, "given", cores=2)
    assert peak.gflops(1) == pytest.approx(64.0)
    assert peak.gflops(2) == peak.gflops(8) == pytest.approx(128.0)
    assert "2 FMA units (assumed) x 8 fp32 lanes" in peak.describe()


def test_this_machine_has_a_peak():
    peak = cpu_peak()  # every machine the project runs on has an x86 or Arm vector unit
    assert peak.per_core_gflops > 0 and peak.cores >= 1
