"""The collapsed graph: one node per call of each row (a DAG whenever the model's dataflow is one); bookkeeping
rows folded as the table folds them (bypassed, their data flowing through)."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
import torchvision
from torch import nn

from tests.gpt2 import gpt2_report
from torchscan import crawl_module
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


def _labels(graph: nx.DiGraph) -> list[tuple[str, int]]:
    return [(data["node"].label, data["node"].call) for _, data in graph.nodes(data=True)]


def test_a_module_called_twice_is_two_nodes_and_the_graph_a_dag() -> None:
    report = crawl_module(torchvision.models.resnet18(), (3, 64, 64))
    for depth in range(1, report.max_depth + 1):
        assert nx.is_directed_acyclic_graph(collapse(report, depth)), depth
    full = collapse(report)
    assert _labels(full).count(("layer1.0.relu", 0)) == 1 and ("layer1.0.relu", 1) in _labels(full)
    assert report.row("layer1.0.relu").calls == 2


class _Shared(nn.Module):
    """One ReLU owned by ``a`` and called inside ``b`` too; a linear called twice in a row."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.b = nn.Sequential(nn.Linear(4, 4))
        self.twice = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        x = self.a[1](self.b(x))  # a's ReLU, called between b and the rest
        return self.twice(self.twice(x))


@pytest.mark.parametrize("record", [False, True])
def test_shared_and_repeated_modules_keep_the_graph_a_dag(record: bool) -> None:
    model = _Shared()
    if record:  # a forward fx cannot trace: the recorded capture keys calls the same way
        forward = model.forward

        def untraceable(x: torch.Tensor) -> torch.Tensor:
            if float(x.sum()) > 1e9:
                return x
            return forward(x)

        model.forward = untraceable  # type: ignore[method-assign]
    report = crawl_module(model, (4,))
    assert report.context.capture != "torch.fx" if record else report.context.capture == "torch.fx"
    for depth in range(1, report.max_depth + 1):
        graph = collapse(report, depth)
        assert nx.is_directed_acyclic_graph(graph), (depth, sorted(graph.edges))
    labels = _labels(collapse(report))
    assert ("twice", 0) in labels and ("twice", 1) in labels


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(torchvision.models.list_models(module=torchvision.models)))
def test_every_torchvision_classifier_draws_a_dag_at_every_depth(name: str) -> None:
    size = 299 if name == "inception_v3" else 224
    report = crawl_module(torchvision.models.get_model(name, weights=None).eval(), (3, size, size))
    for depth in range(1, report.max_depth + 1):
        assert nx.is_directed_acyclic_graph(collapse(report, depth)), depth
