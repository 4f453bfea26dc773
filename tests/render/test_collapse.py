"""The collapsed graph folds bookkeeping rows as the table does: bypassed, their data flowing through."""

from __future__ import annotations

import networkx as nx
import pytest

from tests.gpt2 import gpt2_report
from torchscan.records.rows import is_bookkeeping
from torchscan.render.collapse import collapse
from torchscan.report import Report


def _labelled(graph: nx.DiGraph) -> nx.DiGraph:
    """The graph with nodes named by their labels (row names, ``input x``, ``output``)."""
    return nx.relabel_nodes(graph, {key: data["node"].label for key, data in graph.nodes(data=True)})


@pytest.mark.parametrize("depth", [1, None])
def test_bookkeeping_is_bypassed_unless_shown(branchy_report: Report, depth: int | None) -> None:
    view = branchy_report.row("view")  # x.view(x.size(0), -1) before the head
    assert is_bookkeeping(view, branchy_report.totals)
    folded = _labelled(collapse(branchy_report, depth))
    shown = _labelled(collapse(branchy_report, depth, show_free=True))
    assert "view" not in folded and ("mul", "head") in folded.edges
    assert {("mul", "view"), ("view", "head")} <= set(shown.edges) and ("mul", "head") not in shown.edges
    assert set(shown) - set(folded) == {"view"}


def test_bookkeeping_inside_a_collapsed_module_stays_in_it() -> None:
    report = gpt2_report()
    folded = _labelled(collapse(report, 4))  # transformer.h.0.attn holds views and getitems: part of its node
    assert "transformer.h.0.attn" in folded
    shown = _labelled(collapse(report, 4, show_free=True))
    assert set(shown) - set(folded) == {
        row.name for row in report.rows_at_depth(4) if is_bookkeeping(row, report.totals)
    }


def test_gpt2_full_depth_graph_has_no_bookkeeping_node() -> None:
    report = gpt2_report()
    graph = collapse(report)
    rows = [data["node"].row for _, data in graph.nodes(data=True) if data["node"].row is not None]
    assert rows and not any(is_bookkeeping(row, report.totals) for row in rows)
    functional = [row for row in report.rows if row.kind in ("function", "method") and row.flops]
    assert {row.name for row in functional} <= {row.name for row in rows}  # a row with FLOPs is never folded
    labelled = _labelled(graph)
    assert nx.is_directed_acyclic_graph(labelled) and nx.has_path(labelled, "input_ids", "output")
