"""The plain-attribute graph: GraphML export and users' own networkx analyses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import networkx as nx
import pytest

import torchscan
from torchscan.records import RECORD
from torchscan.report import Report

_PLAIN = (bool, int, float, str)


def test_write_graphml_round_trips(resnet18_report: Report, tmp_path: Path) -> None:
    graph = resnet18_report.to_networkx()
    nx.write_graphml(graph, tmp_path / "model.graphml")
    back = nx.read_graphml(tmp_path / "model.graphml")
    assert set(back.nodes) == set(resnet18_report.records.nodes)
    assert set(back.edges) == set(resnet18_report.records.edges)
    totals = resnet18_report.totals
    assert sum(data["flops"] for _, data in back.nodes(data=True)) == totals.flops
    assert sum(data["params"] for _, data in back.nodes(data=True)) == totals.params  # no tied or direct params
    assert back.graph["model"] == "ResNet" and back.graph["flops"] == totals.flops


def test_every_attribute_is_plain(branchy_report: Report) -> None:
    graph = branchy_report.to_networkx()
    values = [*graph.graph.values(), *(value for _, data in graph.nodes(data=True) for value in data.values())]
    assert all(isinstance(value, _PLAIN) for value in values)
    assert RECORD in branchy_report.records.nodes["stem"]  # the record graph itself is left as is


def test_node_attributes(branchy_report: Report) -> None:
    nodes = branchy_report.to_networkx().nodes
    stem = nodes["stem"]
    assert stem["op"] == "call_module" and stem["type"] == "Conv2d" and stem["module_path"] == "stem"
    assert stem["output_shape"] == "1x8x8x8" and stem["dtype"] == "float32" and stem["bytes"] == 8 * 8 * 8 * 4
    assert stem["params"] == branchy_report.row("stem").params and stem["flops"] == branchy_report.row("stem").flops
    assert stem["cost_status"] == "counted"
    assert nodes["size"]["cost_status"] == "free" and nodes["size"]["row"] == ""
    assert nodes["add"]["row"] == "add" and nodes["block_1"]["row"] == "block.1"
    assert [nodes[name]["index"] for name in ("x", "stem", "output")] == sorted(
        nodes[name]["index"] for name in ("x", "stem", "output")
    )


def test_functional_nodes_name_their_scoped_row(resnet18_report: Report) -> None:
    graph = resnet18_report.to_networkx()
    for row in resnet18_report.rows:
        if row.node is not None:  # the residual adds: fx's add, add_1… are layer1.0.add, layer1.1.add…
            assert graph.nodes[row.node]["row"] == row.name and graph.nodes[row.node]["type"] == row.type
    rows = {data["row"] for _, data in graph.nodes(data=True)}
    assert "layer2.1.add" in rows and "add_3" not in rows


def test_receptive_field_when_computed(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18().eval()
    report = torchscan.crawl_module(model, (3, 64, 64), receptive_field=True)
    graph = report.to_networkx()
    assert graph.nodes["conv1"]["receptive_field"] == "[7, 7]"
    assert graph.nodes["conv1"]["effective_stride"] == "[2, 2]"
    nx.write_graphml(graph, tmp_path / "rf.graphml")
    assert "receptive_field" not in torchscan.crawl_module(model, (3, 64, 64)).to_networkx().nodes["conv1"]


class _Opaque:
    def __str__(self) -> str:
        return "opaque"


def test_other_passes_attributes_are_flattened(branchy_report: Report) -> None:
    graph = branchy_report.records.copy()
    graph.nodes["stem"]["extra"] = {"span": (1, 2), "kind": _Opaque(), "none": None}
    plain = replace(branchy_report, records=graph).graph.nodes["stem"]
    assert plain["extra_span"] == "[1, 2]" and plain["extra_kind"] == "opaque" and "extra_none" not in plain


def test_write_graphml_works_on_report_graph(resnet18_report, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import networkx as nx

    nx.write_graphml(resnet18_report.graph, tmp_path / "model.graphml")
    back = nx.read_graphml(tmp_path / "model.graphml")
    assert back.number_of_nodes() == resnet18_report.records.number_of_nodes()
