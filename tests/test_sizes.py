"""Sizes a reader can hold in their head (issue 24): no source file over 400 lines and no
function over 80, unless the file or function says why in a ``# size: <reason>`` comment.

Read with ``ast`` from the source (nothing is imported). A file's reason goes on its first
line, a function's on its ``def`` line (the line ``def`` is on, not a decorator's)::

    # size: one table per format, and splitting them apart would hide that they align
    def _parser() -> argparse.ArgumentParser:  # size: one flag per line, read top to bottom

A reason that is no longer needed (the file or function shrank below the limit) is flagged
too, so the exceptions stay the ones that are argued for. tests/ is not checked, nor
generated files (``@generated`` or ``DO NOT EDIT`` in their first lines).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
# Top-level folders holding no hand-written source of the repository (and tests/, which is not
# checked); "build" only at the top (setuptools' output), d4g_edge/build/ is source.
SKIP_TOP = {"tests", "data", "runs", "artifacts", "weights", "build", "dist"}
SKIP_ANYWHERE = {"__pycache__", "_default"}
REASON = re.compile(r"#\s*size:\s*(\S.*)$")
GENERATED = re.compile(r"@generated|DO NOT EDIT")


def source_files(root: Path = ROOT) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        folders = rel.parts[:-1]
        if folders and (folders[0] in SKIP_TOP or SKIP_ANYWHERE.intersection(folders)):
            continue
        if any(p.startswith(".") for p in rel.parts):  # .venv, .git, .whl ...
            continue
        files.append(path)
    return files


def _has_reason(line: str) -> bool:
    return REASON.search(line) is not None


def check_source(text: str, name: str) -> tuple[list[str], list[str]]:
    """(over the limits without a reason, reasons where none is needed) of one file."""
    lines = text.splitlines()
    if GENERATED.search("\n".join(lines[:3])):
        return [], []
    over, stale = [], []
    # a file's reason is a comment line of its own (a def on line 1 speaks for the function)
    file_reason = bool(lines) and lines[0].startswith("#") and _has_reason(lines[0])
    if len(lines) > MAX_FILE_LINES and not file_reason:
        over.append(f"{name}: {len(lines)} lines (> {MAX_FILE_LINES})")
    elif file_reason and len(lines) <= MAX_FILE_LINES:
        stale.append(f"{name}: {len(lines)} lines carries a '# size:' reason it no longer needs")
    for node in ast.walk(ast.parse(text, filename=name)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        span = node.end_lineno - node.lineno + 1
        reason = _has_reason(lines[node.lineno - 1])
        where = f"{name}:{node.lineno} {node.name}()"
        if span > MAX_FUNCTION_LINES and not reason:
            over.append(f"{where}: {span} lines (> {MAX_FUNCTION_LINES})")
        elif reason and span <= MAX_FUNCTION_LINES:
            stale.append(f"{where}: {span} lines carries a '# size:' reason it no longer needs")
    return over, stale


def _check_repository() -> tuple[list[str], list[str]]:
    over, stale = [], []
    for path in source_files():
        o, s = check_source(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
        over += o
        stale += s
    return over, stale


def test_no_file_or_function_over_the_limits_without_a_reason():
    over, _ = _check_repository()
    assert not over, (
        "split these, or put '# size: <why>' on the file's first line / the def line:\n  "
        + "\n  ".join(over)
    )


def test_no_size_reason_where_none_is_needed():
    _, stale = _check_repository()
    assert not stale, "remove these '# size:' comments:\n  " + "\n  ".join(stale)


def test_the_source_walk_finds_the_packages_and_skips_tests():
    files = {p.relative_to(ROOT).as_posix() for p in source_files()}
    found = {f.split("/")[0] for f in files}
    assert {"d4g_edge", "train", "quantize", "export", "tools", "benchmarks"} <= found
    assert "tests" not in found and ".venv" not in found
    # a folder named like a skipped top-level one is still source below the top
    assert "d4g_edge/build/builder.py" in files


def _function(lines: int, def_line: str = "def f():") -> str:
    return def_line + "\n" + "    x = 1\n" * (lines - 1)


def test_the_check_flags_long_functions_and_files_and_accepts_reasons():
    # a function of exactly the limit passes, one line more fails
    assert check_source(_function(MAX_FUNCTION_LINES), "a.py") == ([], [])
    over, _ = check_source(_function(MAX_FUNCTION_LINES + 1), "a.py")
    assert over == [f"a.py:1 f(): {MAX_FUNCTION_LINES + 1} lines (> {MAX_FUNCTION_LINES})"]
    # nested: the outer function counts its inner one's lines
    nested = "def outer():\n    " + _function(MAX_FUNCTION_LINES).replace("\n", "\n    ")
    over, _ = check_source(nested, "n.py")
    assert [o.split(":")[1].split()[1] for o in over] == ["outer()"]
    # a reason on the def line excuses it; an empty reason does not
    long_def = _function(MAX_FUNCTION_LINES + 1, "def f():  # size: one table, row by row")
    assert check_source(long_def, "a.py") == ([], [])
    assert check_source(_function(MAX_FUNCTION_LINES + 1, "def f():  # size:"), "a.py")[0]
    # files: many short functions, with and without a first-line reason
    body = "".join(f"def f{i}():\n    pass\n\n\n" for i in range(MAX_FILE_LINES // 4 + 1))
    over, _ = check_source(body, "big.py")
    assert over == [f"big.py: {len(body.splitlines())} lines (> {MAX_FILE_LINES})"]
    assert check_source("# size: a generated-looking table\n" + body, "big.py") == ([], [])
    assert check_source("# @generated by a tool\n" + body, "big.py") == ([], [])


def test_a_reason_that_is_no_longer_needed_is_flagged():
    _, stale = check_source(_function(3, "def f():  # size: was long once"), "a.py")
    assert stale == ["a.py:1 f(): 3 lines carries a '# size:' reason it no longer needs"]
    _, stale = check_source("# size: was long once\nx = 1\n", "s.py")
    assert stale == ["s.py: 2 lines carries a '# size:' reason it no longer needs"]
