"""The package's shape: imports run one way (no cycles, lazy imports included) and the
plugin module holds hooks only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

from pytest_aiotbench import frameworks
from pytest_aiotbench.runner.native.build import NATIVE_DIR, frameworks_with_backends

PACKAGE = REPO / "pytest_aiotbench"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports anywhere in it (top level, in functions, under
    TYPE_CHECKING). Importing an ancestor package is not an edge: a package's modules run
    while it is being imported."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = (".".join([*package[:len(package) - node.level + 1], node.module or ""])
                    .rstrip(".") if node.level else node.module or "")
            targets |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
    return {target for target in targets if target in modules and target != name
            and not name.startswith(target + ".")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_lazy_imports_included():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["pytest_aiotbench.plugin"], "the import graph was not read"
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_plugin_module_holds_hooks_only():
    source = (PACKAGE / "plugin.py").read_text()
    assert len(source.splitlines()) <= 250
    tree = ast.parse(source)
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    hooks = [name for name in functions if name.startswith("pytest_")]
    helpers = [name for name in functions if not name.startswith("pytest_")]
    assert not [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert len(helpers) <= len(hooks) // 2, helpers


def test_the_native_backends_are_registered_frameworks_and_cmake_lists_the_same():
    """The frameworks' one list is the registry; CMake's backend list is checked against it
    and against the builder's, and each backend has its CMake file and source."""
    cmake = (NATIVE_DIR / "CMakeLists.txt").read_text()
    listed = re.search(r"set\(AIOT_BACKENDS ([^)]*)\)", cmake)
    assert listed is not None
    backends = listed.group(1).split()
    assert sorted(backends) == sorted(frameworks_with_backends())
    assert set(backends) <= set(frameworks.names())
    for backend in backends:
        name = backend.replace("-", "_")
        assert (NATIVE_DIR / "cmake" / f"{name}.cmake").is_file()
        assert (NATIVE_DIR / "src" / f"backend_{name}.cpp").is_file()
