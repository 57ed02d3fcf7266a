"""Building the ``d4g-edge`` command line imports neither torch nor an optional extra (every
module's import is checked by tests/test_import_torch_free.py, walked from the package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import d4g_edge.cli.app
d4g_edge.cli.app._parser()
heavy = ("torch", "train", "quantize", "export", "tqdm", "mercantile", "rasterio", "pyproj",
         "pymavlink", "matplotlib", "executorch", "onnx")
print(",".join(sorted(m for m in heavy if m in sys.modules)))
"""


def test_cli_parser_builds_without_torch_or_extras():
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"d4g_edge imported {proc.stdout.strip()}"
