"""The index builder stays readable: every module of ``d4g_edge/build/`` within the size limits
of :mod:`tests.test_sizes` (400 lines a file, 80 a function, unless a ``# size:`` reason says why).

The repository-wide check also fails on files other engineers own; this one fails only on the
build package, so a long ``embed_tiles`` (101 lines once) is caught here on its own.
"""

from __future__ import annotations

from pathlib import Path

from tests.test_sizes import ROOT, check_source

BUILD = ROOT / "d4g_edge" / "build"


def test_the_build_package_is_within_the_size_limits():
    files = sorted(BUILD.rglob("*.py"))
    assert BUILD / "builder.py" in files
    over, stale = [], []
    for path in files:
        name = str(Path(path).relative_to(ROOT))
        o, s = check_source(path.read_text(encoding="utf-8"), name)
        over += o
        stale += s
    assert not over and not stale, "\n".join(over + stale)
