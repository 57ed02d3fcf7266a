"""Every SDK module imports without torch (and without the optional extras)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import d4g_edge
import d4g_edge.cli.app, d4g_edge.cli.bench, d4g_edge.cli.follow, d4g_edge.cli.plot
import d4g_edge.build.builder, d4g_edge.build.shards, d4g_edge.build.calibrate
import d4g_edge.build.tiles, d4g_edge.build.tiles.raster, d4g_edge.build.tiles.xyz
import d4g_edge.bundle, d4g_edge.cells, d4g_edge.pairing, d4g_edge.tracker, d4g_edge.tiletable
import d4g_edge.image, d4g_edge.index, d4g_edge.localizer, d4g_edge.runtime
d4g_edge.cli.app._parser()
heavy = ("torch", "train", "quantize", "export", "tqdm", "mercantile", "rasterio", "pyproj",
         "pymavlink", "matplotlib", "executorch", "onnx")
print(",".join(sorted(m for m in heavy if m in sys.modules)))
"""


def test_sdk_modules_import_without_torch_or_extras():
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"d4g_edge imported {proc.stdout.strip()}"
