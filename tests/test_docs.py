"""The README is a front page and the docs point only at what the repository holds.

Checked on README.md and docs/*.md: the README's length (a front page, not an experiment
log); every relative markdown link and image resolves to a file of the repository, and an
``#anchor`` to a heading of its target; nothing points at ``../shared`` (design notes outside
the repository); every ``python -m MODULE`` of the repository's packages and every
backticked repository path names a file that exists (files move; docs must follow); the
README's test command is the one ``.ci/run`` runs; the README's layout map names every
top-level folder git tracks; docs/export.md shows the export format table as
``python -m export.formats`` prints it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 250
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
# top-level folders whose files a doc may name as `path` or `python -m module`
PACKAGES = (
    "d4g_edge",
    "train",
    "quantize",
    "export",
    "tools",
    "benchmarks",
    "examples",
    "tests",
    "weights",
    "docs",
)

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_MODULE = re.compile(r"(?:^|\s)-m\s+([A-Za-z_][\w.]*)")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a link inside code is not a link)."""
    return _FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: link text kept, lower case, punctuation dropped, spaces
    to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_prose(path.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    bad = []
    for target in _LINK.findall(_prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{target}: no such file {dest}")
            continue
        try:
            dest.relative_to(root)
        except ValueError:
            bad.append(f"{target}: points outside the repository")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: {dest.name} has no heading with the anchor #{anchor}")
    return bad


def missing_modules(text: str) -> list[str]:
    bad = []
    for module in set(_MODULE.findall(text)):
        parts = module.split(".")
        if module.endswith(".") or parts[0] not in PACKAGES:  # `train.<step>`: a pattern
            continue  # pip, venv, pytest: not this repository's
        base = ROOT.joinpath(*parts)
        if not (base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()):
            bad.append(f"python -m {module}")
    return bad


def missing_paths(text: str) -> list[str]:
    bad = []
    for span in _CODE_SPAN.findall(text):
        for token in span.split():
            token = token.strip("`'\",;:()")
            if "/" not in token or token.split("/")[0] not in PACKAGES:
                continue
            if re.search(r"[{}*<>$|]|\.\.\.", token):
                continue  # a pattern (student_{view}.pt, shards/*), not a path
            if not (ROOT / token).exists():
                bad.append(token)
    return bad


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines, a front page has at most {MAX_README_LINES}: "
        "move results, ablations and recipes to docs/"
    )


@pytest.mark.parametrize("path", DOCS, ids=_ids)
def test_links_resolve_inside_the_repository(path):
    bad = broken_links(path)
    assert not bad, "broken links:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", DOCS, ids=_ids)
def test_nothing_points_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{_ids(path)} points at ../shared, outside the repository"


@pytest.mark.parametrize("path", DOCS, ids=_ids)
def test_commands_and_paths_exist(path):
    text = path.read_text(encoding="utf-8")
    bad = missing_modules(text) + missing_paths(text)
    assert not bad, "modules or repository paths that do not exist (moved?):\n" + "\n".join(bad)


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if "pytest" in line and "venv" in line)
    assert command.strip() in README.read_text(encoding="utf-8"), (
        f".ci/run runs {command.strip()!r}; the README's test command must be the same"
    )


def test_export_doc_shows_the_format_table():
    # docs/export.md reads the one format table (export/formats.py), never a copy that drifts
    from export.formats import markdown

    assert markdown() in (ROOT / "docs" / "export.md").read_text(encoding="utf-8"), (
        "docs/export.md's format table differs from `python -m export.formats`: paste its output"
    )


def test_layout_map_names_every_top_level_folder():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the tracked folders")
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    folders = {f.split("/")[0] for f in files if "/" in f and not f.startswith(".")}
    text = README.read_text(encoding="utf-8")
    assert sorted(f for f in folders if f"`{f}/" not in text) == []


# ---- the checks themselves must be able to fail ------------------------------------------


def test_checks_catch_broken_docs(tmp_path):
    docs = tmp_path / "repo" / "docs"
    docs.mkdir(parents=True)
    (docs / "b.md").write_text("# Title\n## The bundled default (`d4g_edge/_default`)\n")
    (tmp_path / "outside.md").write_text("# Outside\n")
    (docs / "a.md").write_text(
        "[ok](b.md#title) [ok](b.md#the-bundled-default-d4g_edge_default) [gone](nowhere.md)"
        " [bad anchor](b.md#nope) [out](../../outside.md) ![img](missing.png)\n"
        "```\n[inside code](not_a_link.md)\n```\n"
    )
    bad = broken_links(docs / "a.md", root=tmp_path / "repo")
    assert [b.split(":")[0] for b in bad] == [
        "nowhere.md",
        "b.md#nope",
        "../../outside.md",
        "missing.png",
    ]
    text = "python -m train.no_such_step --help; python -m pip install; python -m export.<format>"
    assert missing_modules(text) == ["python -m train.no_such_step"]
    assert missing_paths("see `d4g_edge/no_such.py` and `weights/edge-s/student_{view}.pt`") == [
        "d4g_edge/no_such.py"
    ]
