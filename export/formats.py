"""The export formats in one table, after Ultralytics' ``export_formats()``.

Each row says what one ``export.<format>`` module writes and how: its command, the artifact
suffix, the ``--quant`` choices (the default first) and the ones ``export.bench`` times, the
runtime the exporter verifies the artifact in (through ``d4g_edge.runtime.open_encoder`` where
the device SDK has a backend for it), where that runtime can predict, and the Python packages
the exporter needs. The exporters take their ``--quant`` choices and suffix from here,
``export.bench`` its formats and precisions, and ``docs/export.md`` this table.

Usage::

    python -m export.formats            # the table as markdown (for docs/export.md)
    python -m export.formats --here     # plus whether each format exports / runs on this machine

    from export.formats import FORMATS, get_format
    get_format("onnx").quants           # ('fp32', 'int8')
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from export._common import ExportError


@dataclass(frozen=True)
class ExportFormat:
    """One row of the table (see the module doc)."""

    name: str  # the --formats name and the module's last part
    suffix: str  # of the artifact {view}_{quant}{suffix}
    quants: tuple[str, ...]  # --quant choices, the default first
    bench_quants: tuple[str, ...]  # what export.bench times (choices that differ in the artifact)
    runtime: str  # what the exporter verifies the artifact in
    backend: str | None  # d4g_edge.runtime.open_encoder's backend for it (None: the SDK has none)
    predicts_on: tuple[str, ...] | None  # sys.platform values its runtime predicts on; None: any
    packages: tuple[str, ...]  # importable packages the exporter needs
    notes: str = ""

    @property
    def module(self) -> str:
        return f"export.{self.name}"

    @property
    def command(self) -> str:
        return f"python -m {self.module}"

    @property
    def ext(self) -> str:
        """The suffix without its dot, as :func:`export._common.artifact_path` takes it."""
        return self.suffix.lstrip(".")

    @property
    def default_quant(self) -> str:
        return self.quants[0]

    def exports_here(self) -> bool:
        """Whether every package the exporter needs is installed (checked without importing)."""
        return all(importlib.util.find_spec(p) is not None for p in self.packages)

    def runs_here(self) -> bool:
        """Whether its runtime can predict on this platform (so artifacts are checked by their
        numbers, and timed by ``export.bench``)."""
        if self.predicts_on is not None and sys.platform not in self.predicts_on:
            return False
        return self.exports_here()


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            name="onnx",
            suffix=".onnx",
            quants=("fp32", "int8"),
            bench_quants=("fp32", "int8"),
            runtime="onnxruntime (CPU)",
            backend="onnxruntime",
            predicts_on=None,
            packages=("torch", "onnx", "onnxscript", "onnxruntime"),
            notes="one file, dynamic batch; int8 = static QDQ calibrated on world images",
        ),
        ExportFormat(
            name="executorch",
            suffix=".pte",
            # without --qat, int8 and pt2e-int8 build the same program: the bench times one
            quants=("fp32", "int8", "pt2e-int8", "int8-int4w"),
            bench_quants=("fp32", "int8", "int8-int4w"),
            runtime="ExecuTorch runtime (XNNPACK)",
            backend="executorch",
            predicts_on=None,
            packages=("torch", "executorch", "torchao"),
            notes="batch 1; config also in `{view}_{quant}.pte.json`; `--qat` takes a QAT run",
        ),
        ExportFormat(
            name="coreml",
            suffix=".mlpackage",
            quants=("fp16", "fp32", "int8"),
            bench_quants=("fp16", "fp32", "int8"),
            runtime="Core ML",
            backend=None,
            predicts_on=("darwin",),
            packages=("torch", "coremltools"),
            notes="RGB image input, batch 1, iOS 16; elsewhere: spec reload + torch graph check",
        ),
    )
}


_PLATFORM = {"darwin": "macOS / iOS"}  # sys.platform -> what the table says


def get_format(name: str) -> ExportFormat:
    """The row of ``name``, or an :class:`ExportError` naming the formats there are."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ExportError(f"unknown export format {name!r}; choose from {list(FORMATS)}") from None


def markdown(here: bool = False) -> str:
    """The table as markdown; ``here`` adds whether each format exports / runs on this machine."""
    cols = ["format", "command", "suffix", "--quant (default first)", "benchmarked", "verified in"]
    cols += ["SDK backend", "predicts on", "notes"]
    if here:
        cols += [f"exports here ({sys.platform})", "runs here"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for f in FORMATS.values():
        cells = [
            f.name,
            f"`{f.command}`",
            f"`{f.suffix}`",
            ", ".join(f.quants),
            ", ".join(f.bench_quants),
            f.runtime,
            f"`{f.backend}`" if f.backend else "-",
            "any"
            if f.predicts_on is None
            else ", ".join(_PLATFORM.get(p, p) for p in f.predicts_on),
            f.notes,
        ]
        if here:
            cells += ["yes" if f.exports_here() else "no", "yes" if f.runs_here() else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.formats", description=__doc__)
    parser.add_argument(
        "--here", action="store_true", help="add whether each format exports / runs here"
    )
    args = parser.parse_args(argv)
    print(markdown(here=args.here))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
