"""The rules of the house, checked on the source: imports flow one way and never in a cycle.

Every ``import`` counts, at module level or inside a function (a lazy import is still an arrow);
imports under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import networkx as nx
import pytest

import torchscan

PACKAGE = Path(torchscan.__file__).parent

LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "torchscan.errors",
        "torchscan.version",
        "torchscan.uncompiled",
        "torchscan.collector",
        "torchscan.lazy",
        "torchscan.records",
    ),
    ("torchscan.ops",),
    ("torchscan.inputs",),
    ("torchscan.graph",),
    ("torchscan.passes",),
    ("torchscan.render",),
    ("torchscan.report", "torchscan.comparison"),
    ("torchscan.measure",),
    ("torchscan.symbolic",),
    ("torchscan.api",),
    ("torchscan.loader",),
    ("torchscan.zoo",),
    ("torchscan.cli", "torchscan.zoo.command"),
    ("torchscan.console", "torchscan.__main__"),
    ("torchscan",),
)
"""Bottom to top: a module imports from its own layer or the layers below it, never above."""

ALLOWED: Mapping[str, tuple[str, ...]] = {
    "torchscan.records": ("torchscan.records",),
    "torchscan.ops": ("torchscan.ops", "torchscan.records"),
    "torchscan.render": ("torchscan.render", "torchscan.records", "torchscan.errors", "torchscan.version"),
}
"""Packages held to a closer list: formulas see records only; renderers read the report's records only."""


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The torchscan modules ``module`` imports at run time (``from a import b`` → ``a.b`` when
    ``b`` is a module, else ``a``); relative imports resolved."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name == "torchscan" or name.startswith("torchscan.")}


def import_graph(root: Path = PACKAGE) -> nx.DiGraph:
    """Module → module it imports, for every module of the package under ``root``."""
    paths = {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph = nx.DiGraph()
    graph.add_nodes_from(paths)
    for module, path in paths.items():
        for imported in imports_of(path.read_text(), module, path.name == "__init__.py", set(paths)):
            if imported != module:
                graph.add_edge(module, imported)
    return graph


def _layer(module: str) -> int:
    best = max(
        ((len(prefix), index) for index, layer in enumerate(LAYERS) for prefix in layer if _within(module, prefix)),
        default=None,
    )
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(graph: nx.DiGraph) -> list[str]:
    """Arrows against the layers or outside a package's allowed list."""
    found = []
    for module, imported in graph.edges:
        if _layer(imported) > _layer(module):
            found.append(f"{module} imports {imported} (a layer above)")
        for package, allowed in ALLOWED.items():
            if _within(module, package) and not any(_within(imported, prefix) for prefix in allowed):
                found.append(f"{module} imports {imported} (allowed: {', '.join(allowed)})")
    return found


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()


def test_imports_flow_one_way(graph: nx.DiGraph) -> None:
    assert graph.number_of_nodes() > 60 and graph.number_of_edges() > 150  # the whole package was read
    assert violations(graph) == []


def test_no_import_cycles(graph: nx.DiGraph) -> None:
    assert list(nx.simple_cycles(graph)) == []


def test_the_checks_catch_what_they_forbid(tmp_path: Path) -> None:
    """A planted cycle, a render → passes arrow, an ops → graph arrow and a lazy import are found;
    an import for type checking only is not."""
    root = tmp_path / "torchscan"
    for package in ("", "ops", "graph", "passes", "render", "records"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "ops" / "a.py").write_text("from torchscan.graph import b\n")
    (root / "graph" / "b.py").write_text("def f():\n    from torchscan.ops import a\n")
    (root / "render" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from torchscan.graph import b\n"
        "from torchscan.passes import d\n"
    )
    (root / "passes" / "d.py").write_text("from . import e\n")
    (root / "passes" / "e.py").write_text("from torchscan.records import *\n")
    planted = import_graph(root)
    assert set(planted.edges) == {
        ("torchscan.ops.a", "torchscan.graph.b"),
        ("torchscan.graph.b", "torchscan.ops.a"),
        ("torchscan.render.c", "torchscan.passes.d"),
        ("torchscan.passes.d", "torchscan.passes.e"),
        ("torchscan.passes.e", "torchscan.records"),
    }
    assert list(nx.simple_cycles(planted))
    found = violations(planted)
    assert "torchscan.ops.a imports torchscan.graph.b (a layer above)" in found
    assert any(line.startswith("torchscan.render.c imports torchscan.passes.d") for line in found)


def test_the_architecture_notes_name_files_that_exist() -> None:
    """Every path ``ARCHITECTURE.md`` names (outside ``<placeholders>``) exists, and every package of
    torchscan appears in it: the notes cannot drift from the code unnoticed."""
    repository = PACKAGE.parent
    text = (repository / "ARCHITECTURE.md").read_text()
    named = {
        path.rstrip("/")
        for path in re.findall(r"`((?:torchscan|tests)/[^`\s<>]*)`", text)
        if "<" not in path and "*" not in path
    }
    assert len(named) > 20
    assert sorted(path for path in named if not (repository / path).exists()) == []
    packages = {_module_name(path).replace(".", "/") for path in PACKAGE.rglob("__init__.py")}
    assert sorted(package for package in packages if package != "torchscan" and package not in text) == []
