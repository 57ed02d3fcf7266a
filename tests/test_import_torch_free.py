"""The device SDK must import without torch (a plain ``pip install d4g-edge`` has none)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
import d4g_edge, train.metrics, d4g_edge.geo
heavy = sorted(m for m in ("torch", "torchvision", "timm", "tqdm") if m in sys.modules)
print(",".join(heavy))
"""


def test_d4g_edge_imports_without_torch():
    # a fresh interpreter: this test process may already have torch loaded by other tests
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"d4g_edge imported {proc.stdout.strip()}"
