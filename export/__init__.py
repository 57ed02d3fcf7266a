"""Exporters of the trained students, one module per runtime, sharing one artifact contract.

Each ``export.<format>`` module exposes ``export(cfg) -> Path`` (its config dataclass builds
its command line) and writes ``{view}_{quant}.{ext}`` into ``--out``: the deployed student,
the encoder config embedded under :data:`export._common.METADATA_KEY`, verified in its own
runtime on held-out world images (:mod:`export._verify`) before it is renamed into place.

Usage::

    python -m export.onnx   --view ground [--checkpoint CKPT] [--quant int8] [--out artifacts]
    python -m export.coreml --view ground [--quant fp16|fp32|int8]
    python -m export.executorch --view ground [--quant int8] [--qat runs/qat_ground]
    python -m export.bench  --json bench.json
    python -m export.formats                    # the formats, their precisions and runtimes

The formats are one table, :data:`export.formats.FORMATS` (Ultralytics' ``export_formats()``):
the exporters take their ``--quant`` choices and suffix from it, ``export.bench`` its rows.
"""

from export._common import METADATA_KEY, ExportError, VerificationError
from export.formats import FORMATS

__all__ = ["FORMATS", "METADATA_KEY", "ExportError", "VerificationError"]
