"""DOT export: modules collapsed to a depth, edges kept, colours; SVG through Graphviz."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess

import networkx as nx
import pytest

from torchscan.records.rows import is_bookkeeping
from torchscan.render import dot as dot_module
from torchscan.render.dot import GraphvizNotFoundError, _quote, fill_colour, to_dot
from torchscan.report import Report

_NODE = re.compile(r'^  (n\d+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$', re.MULTILINE)
_EDGE = re.compile(r"^  (n\d+) -> (n\d+);$", re.MULTILINE)

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` is not installed")


def _parse(source: str) -> tuple[nx.DiGraph, dict[str, str]]:
    """The graph of a DOT source (nodes keyed by the first label line) and each node's attributes text."""
    names = {key: label.split("\\n")[0] for key, label, _ in _NODE.findall(source)}
    attrs = {names[key]: rest for key, _, rest in _NODE.findall(source)}
    graph = nx.DiGraph()
    graph.add_nodes_from(names.values())
    graph.add_edges_from((names[a], names[b]) for a, b in _EDGE.findall(source))
    assert len(names) == len(set(names.values())), "one DOT node per collapsed row"
    return graph, attrs


def test_resnet50_depth_1_has_one_node_per_top_level_child(resnet50_report: Report) -> None:
    graph, _ = _parse(resnet50_report.to_dot(depth=1))
    top_level = [row.name for row in resnet50_report.rows if row.depth == 1 and row.kind != "parameter"]
    assert len(top_level) == 11  # conv1 bn1 relu maxpool layer1-4 avgpool flatten fc
    top_level.remove("flatten")  # a view: bookkeeping, folded (its data flows from avgpool to fc)
    assert set(graph.nodes) == {*top_level, "input x", "output"}
    assert graph.number_of_nodes() == len(top_level) + 2
    chain = ["input x", *top_level, "output"]  # ResNet is a chain at the top level
    assert set(graph.edges) == set(itertools.pairwise(chain))


def test_collapsed_module_shows_its_aggregated_numbers(resnet50_report: Report) -> None:
    source = resnet50_report.to_dot(depth=1)
    layer3 = resnet50_report.row("layer3")
    label = next(label for _, label, _ in _NODE.findall(source) if label.startswith("layer3\\n"))
    assert label.split("\\n")[1:3] == ["Sequential", "(1, 1024, 14, 14)"]
    assert f"{layer3.params:,}" in source and f"{layer3.flops:,}" in source  # tooltip, exact


def test_edges_between_collapsed_nodes_kept_without_self_loops(resnet50_report: Report) -> None:
    graph, _ = _parse(resnet50_report.to_dot(depth=2))
    assert nx.number_of_selfloops(graph) == 0
    assert ("layer1.2", "layer2.0") in graph.edges and ("layer4.2", "avgpool") in graph.edges
    shown = [row for row in resnet50_report.rows_at_depth(2) if not is_bookkeeping(row, resnet50_report.totals)]
    assert len(shown) == len(resnet50_report.rows_at_depth(2)) - 1  # flatten folded
    assert graph.number_of_nodes() == len(shown) + 2
    assert nx.has_path(graph, "input x", "output")


def test_full_depth_branches_and_bypassed_python_ops(branchy_report: Report) -> None:
    graph, _ = _parse(branchy_report.to_dot())
    assert {("stem", "block.0"), ("stem", "add"), ("block.2", "add"), ("mul", "head")} <= set(graph.edges)
    assert "view" not in graph  # bookkeeping: folded, its data flowing through
    assert "scale" not in graph  # parameters are drawn through the ops that use them
    assert nx.is_directed_acyclic_graph(graph)
    collapsed, _ = _parse(branchy_report.to_dot(depth=1))
    assert ("stem", "block") in collapsed.edges and ("block", "add") in collapsed.edges
    assert not any(name.startswith("block.") for name in collapsed)


def test_colour_scale_follows_the_chosen_share(branchy_report: Report) -> None:
    _, attrs = _parse(branchy_report.to_dot(color_by="flops"))
    assert f'fillcolor="{fill_colour(1.0)}"' in attrs["block.0"]  # the heaviest node
    _, by_params = _parse(branchy_report.to_dot(color_by="params"))
    assert f'fillcolor="{fill_colour(1.0)}"' in by_params["head"]
    assert f'fillcolor="{fill_colour(0.0)}"' in by_params["add"]  # no parameters
    _, by_memory = _parse(branchy_report.to_dot(color_by="memory"))
    assert f'fillcolor="{fill_colour(1.0)}"' in by_memory["block.0"]


def test_bad_arguments(branchy_report: Report) -> None:
    with pytest.raises(ValueError, match="color_by"):
        to_dot(branchy_report, color_by="bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth"):
        to_dot(branchy_report, depth=0)


def test_quote_escapes_dot_strings() -> None:
    assert _quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


@needs_dot
@pytest.mark.parametrize(("depth", "color_by"), [(1, "flops"), (2, "memory"), (None, "params")])
def test_graphviz_parses_the_source(resnet50_report: Report, depth: int | None, color_by: str) -> None:
    source = resnet50_report.to_dot(depth=depth, color_by=color_by)  # type: ignore[arg-type]
    result = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout and result.stdout.count('class="node"') == len(_NODE.findall(source))


@needs_dot
def test_to_svg_writes_the_picture(branchy_report: Report, tmp_path) -> None:
    svg = branchy_report.to_svg(tmp_path / "model.svg", depth=1)
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    assert (tmp_path / "model.svg").read_text(encoding="utf-8") == svg


def test_to_svg_without_graphviz_says_how_to_install_it(
    branchy_report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dot_module.shutil, "which", lambda _: None)
    with pytest.raises(GraphvizNotFoundError, match=r"apt-get install graphviz.*brew install graphviz"):
        branchy_report.to_svg()
