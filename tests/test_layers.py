"""The repository's layers, read from the source with ``ast`` (nothing is imported).

Packages depend downwards only::

    d4g_edge core  <  d4g_edge.build  <  d4g_edge.cli          (the device SDK)
    d4g_edge  <  train  <  quantize  <  export  <  tools  <  benchmarks   (the tooling)

and no module imports itself back through a chain of others (a file-level cycle), counting the
imports inside functions too: a lazy import hides a cycle from the interpreter, not from a
reader. ``if TYPE_CHECKING:`` blocks are not counted (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", ".git", "data", "runs", "artifacts", "weights", "_default", "__pycache__"}

# layer -> the top-level names it must never import
TOOLING = ("train", "quantize", "export", "tools", "benchmarks")
FORBIDDEN = {
    "d4g_edge.core": ("d4g_edge.build", "d4g_edge.cli", *TOOLING),
    "d4g_edge.build": ("d4g_edge.cli", *TOOLING),
    "d4g_edge.cli": TOOLING,
    "train": ("quantize", "export", "tools", "benchmarks"),
    "quantize": ("export", "tools", "benchmarks"),
    "export": ("tools", "benchmarks"),
    "tools": ("benchmarks",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    files = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if SKIP_DIRS.intersection(rel.parts[:-1]):
            continue
        files[module_name(path)] = path
    return files


MODULES = source_files()


def layer(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "d4g_edge":
        for sub in ("d4g_edge.build", "d4g_edge.cli"):
            if module == sub or module.startswith(sub + "."):
                return sub
        # the `python -m d4g_edge` shim only forwards to the command line
        return "d4g_edge.cli" if module == "d4g_edge.__main__" else "d4g_edge.core"
    return top if top in FORBIDDEN else None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(module: str, path: Path) -> list[tuple[str, int]]:
    """Every dotted name ``module`` imports (absolute; relative ones resolved), with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            for alias in node.names:
                # `from pkg import sub` imports the submodule pkg.sub when there is one
                found.append((f"{base_name}.{alias.name}", node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def resolve(name: str) -> str | None:
    """The repository module a dotted import name lands in (its longest existing prefix)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in MODULES:
            return candidate
    return None


def import_graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges: dict[str, int] = {}
        for name, line in imported_names(module, path):
            target = resolve(name)
            if target is not None and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


GRAPH = import_graph()


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm,
    iterative), each listed from its smallest name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_scan_sees_the_packages():
    # a path or parsing mistake must not turn this file into a test of nothing
    expected = (
        "d4g_edge.localizer",
        "d4g_edge.build.builder",
        "d4g_edge.cli.app",
        "train.loop.engine",
        "quantize.qat",
        "export.onnx",
        "tools.build_index",
    )
    for module in expected:
        assert module in GRAPH, module
    assert "d4g_edge.bundle" in GRAPH["d4g_edge.localizer"]
    assert "d4g_edge.build.builder" in GRAPH["tools.build_index"]


@pytest.mark.parametrize("source_layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(source_layer):
    bad = []
    for module, edges in sorted(GRAPH.items()):
        if layer(module) != source_layer:
            continue
        for target, line in sorted(edges.items()):
            if any(target == f or target.startswith(f + ".") for f in FORBIDDEN[source_layer]):
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}")
    assert not bad, f"{source_layer} must not import {FORBIDDEN[source_layer]}:\n" + "\n".join(bad)


def test_only_tests_import_tests():
    bad = [
        f"{module} imports {target}"
        for module, edges in GRAPH.items()
        if not module.startswith("tests")
        for target in edges
        if target.startswith("tests")
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_files():
    cycles = find_cycles(GRAPH)
    described = [
        " -> ".join(c)
        + "\n    "
        + "; ".join(f"{a} imports {b} (line {GRAPH[a][b]})" for a in c for b in c if b in GRAPH[a])
        for c in cycles
    ]
    assert not cycles, "file-level import cycles:\n" + "\n".join(described)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []
