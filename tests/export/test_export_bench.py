"""export.bench end to end on tiny students (slow: it traces every format and precision)."""

from __future__ import annotations

import json

import pytest

from export.bench import BenchConfig, main, table
from tests.export.conftest import save_student


@pytest.mark.slow
def test_bench_rows_for_every_format_and_precision(tmp_path):
    ground, satellite = save_student(tmp_path, "ground"), save_student(tmp_path, "satellite")
    out = tmp_path / "bench.json"
    argv = [
        "--ground",
        str(ground),
        "--satellite",
        str(satellite),
        "--formats",
        "onnx,coreml,executorch",
        "--pairs",
        "6",
        "--reps",
        "2",
        "--threads",
        "1",
        "--no-teachers",
        "--out",
        str(tmp_path / "artifacts"),
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    got = {(r["view"], r["format"], r["quant"]) for r in result["rows"]}
    for view in ("ground", "satellite"):
        assert {
            (view, "eager", "fp32"),
            (view, "onnx", "fp32"),
            (view, "onnx", "int8"),
            (view, "coreml", "fp16"),
            (view, "coreml", "int8"),
            (view, "executorch", "fp32"),
            (view, "executorch", "int8"),
            (view, "executorch", "int8-int4w"),
        } <= got
    for r in result["rows"]:
        if r["format"] in ("onnx", "executorch"):
            assert r["p50_ms@1"] > 0 and 0 < r["peak_frac@1"] and r["min_cos"] > 0.9
            assert 0 <= r["r1"] <= 1
        if r["format"] == "coreml":
            assert r["size_mb"] > 0 and "p50_ms@1" not in r
    assert "onnx | int8" in table(result)


def test_bench_config_from_flags():
    from export._common import build_parser

    args = build_parser(BenchConfig).parse_args(["--no-teachers", "--threads", "1"])
    cfg = BenchConfig(**vars(args))
    assert cfg.teachers is False and cfg.threads == "1" and cfg.formats.startswith("onnx")
