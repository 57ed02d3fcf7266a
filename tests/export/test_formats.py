"""export.formats: the one table the exporters, export.bench and the docs read."""

from __future__ import annotations

import sys

import pytest

from d4g_edge.errors import EncoderError
from d4g_edge.runtime import open_encoder
from export import ExportError
from export._common import build_parser
from export.bench import config_class, exporters
from export.formats import FORMATS, get_format, main, markdown


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_exporter_takes_exactly_the_tables_precisions(name):
    import importlib

    fmt = FORMATS[name]
    module = importlib.import_module(fmt.module)
    parser = build_parser(config_class(module))  # the dataclass export(cfg) takes
    for quant in fmt.quants:
        assert parser.parse_args(["--view", "ground", "--quant", quant]).quant == quant
    with pytest.raises(SystemExit):
        parser.parse_args(["--view", "ground", "--quant", "int3"])
    assert set(fmt.bench_quants) <= set(fmt.quants)


@pytest.mark.parametrize("name", list(FORMATS))
def test_the_sdk_opens_the_suffix_with_the_tables_backend(name, tmp_path):
    # open_encoder picks its backend from the suffix; a missing file names the runtime it chose
    fmt = FORMATS[name]
    expected = {"onnxruntime": "ONNX model", "executorch": "ExecuTorch program", None: "suffix"}
    with pytest.raises(EncoderError, match=expected[fmt.backend]):
        open_encoder(tmp_path / f"missing{fmt.suffix}")


def test_markdown_has_one_row_per_format_and_even_columns():
    lines = markdown().splitlines()
    assert len(lines) == 2 + len(FORMATS)
    widths = {line.count("|") for line in lines}
    assert len(widths) == 1  # header, separator and rows have the same number of cells
    for fmt in FORMATS.values():
        assert any(f"`{fmt.command}`" in line and fmt.suffix in line for line in lines)
    here = markdown(here=True).splitlines()
    assert here[0].count("|") == lines[0].count("|") + 2


def test_core_ml_predicts_only_on_apple_platforms():
    assert get_format("coreml").runs_here() == (
        sys.platform == "darwin" and get_format("coreml").exports_here()
    )
    assert get_format("onnx").runs_here()  # onnxruntime is an SDK dependency


def test_cli_prints_the_table(capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.strip() == markdown()


def test_unknown_formats_are_user_errors():
    with pytest.raises(ExportError, match=r"unknown export format 'tflite'.*onnx"):
        get_format("tflite")
    with pytest.raises(ExportError, match="tflite"):
        exporters(["onnx", "tflite"])
