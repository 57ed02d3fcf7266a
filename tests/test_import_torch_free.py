"""Every module of the device SDK imports without torch, the tooling or an optional extra (a plain
``pip install d4g-edge`` has none of them). The module list is walked from the package, so a new
module is checked the day it is added."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import d4g_edge

ROOT = Path(__file__).resolve().parents[1]

# Never imported by `import d4g_edge.<module>`: torch and the repository's tooling always, the
# optional extras (pyproject's tiles/geotiff/mavlink/viz) only inside the functions that use them,
# and hnswlib / onnxruntime only when an index is searched or a model run.
FORBIDDEN = (
    "torch", "torchvision", "timm", "executorch", "onnx", "coremltools",
    "train", "quantize", "export", "tools", "benchmarks",
    "mercantile", "pyproj", "rasterio", "pymavlink", "serial", "matplotlib", "tqdm", "cv2",
    "hnswlib", "onnxruntime",
)  # fmt: skip
EXTRAS = ("mercantile", "pyproj", "rasterio", "pymavlink", "serial", "matplotlib", "tqdm", "cv2")

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(d4g_edge.__path__, "d4g_edge.")
    if "._default" not in info.name
)

# One fresh interpreter imports the modules one after the other and reports, per module, what
# the import newly loaded (this test process may have torch loaded by other tests already).
CHECK = """
import importlib, json, sys
forbidden = set(sys.argv[1].split(","))
report = {}
for name in sys.argv[2:]:
    before = set(sys.modules)
    try:
        importlib.import_module(name)
    except ImportError as err:
        report[name] = {"error": f"{type(err).__name__}: {err}", "missing": err.name}
        continue
    new = {m.split(".")[0] for m in set(sys.modules) - before}
    report[name] = {"loaded": sorted(new & forbidden)}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def report() -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, ",".join(FORBIDDEN), *MODULES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_walk_finds_the_layers():
    for name in ("d4g_edge.localizer", "d4g_edge.build.builder", "d4g_edge.build.tiles.raster",
                 "d4g_edge.cli.app", "d4g_edge.cli.follow", "d4g_edge.__main__"):  # fmt: skip
        assert name in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_without_torch_tooling_or_extras(report, module):
    result = report[module]
    if "error" in result:
        if result["missing"] in EXTRAS:  # only an extra that is not installed excuses it
            pytest.skip(f"{module} needs the optional {result['missing']}, not installed here")
        pytest.fail(f"import {module} failed: {result['error']}")
    assert result["loaded"] == [], f"import {module} loaded {result['loaded']}"
