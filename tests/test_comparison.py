"""``torchscan.compare``: every row of either report once, matched by name, in tree order; differences exact."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
from torch import nn

import torchscan
from torchscan import InputError, compare, crawl_module
from torchscan.records import ROW_METRICS, TOTAL_METRICS, Comparison
from torchscan.report import Report

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def resnets() -> tuple[Report, Report]:
    models = torchvision.models
    return crawl_module(models.resnet18(), (3, 64, 64)), crawl_module(models.resnet34(), (3, 64, 64))


@pytest.fixture(scope="module")
def comparison(resnets: tuple[Report, Report]) -> Comparison:
    return torchscan.compare(*resnets, labels=("resnet18", "resnet34"))


def test_totals_differences_are_exact(resnets: tuple[Report, Report], comparison: Comparison) -> None:
    a, b = resnets
    assert comparison.total_delta("params") == b.totals.params - a.totals.params == 10_108_160
    for metric in TOTAL_METRICS:
        assert comparison.total_delta(metric) == getattr(b.totals, metric) - getattr(a.totals, metric), metric
    assert comparison.activation_peak_delta == b.memory.activation_peak_bytes - a.memory.activation_peak_bytes


def test_every_row_of_either_report_once(resnets: tuple[Report, Report], comparison: Comparison) -> None:
    a, b = resnets
    names = [row.name for row in comparison.rows]
    assert len(names) == len(set(names)) and set(names) == {r.name for r in a.rows} | {r.name for r in b.rows}
    for diff in comparison.rows:
        assert diff.a == (a.row(diff.name) if diff.name in {r.name for r in a.rows} else None)
        assert diff.b == (b.row(diff.name) if diff.name in {r.name for r in b.rows} else None)


def test_rows_only_resnet34_has(comparison: Comparison) -> None:
    blocks = {row.name for row in comparison.only_b if row.depth == 2}
    assert blocks == {"layer1.2", "layer2.2", "layer2.3", *(f"layer3.{i}" for i in range(2, 6)), "layer4.2"}
    assert not [row for row in comparison.only_a if row.row.kind == "module"]
    block = comparison.row("layer3.4")
    assert block.status == "only_b" and block.a is None and block.delta("params") == block.b.params == 1_180_672
    assert comparison.row("layer1.0").status == "both" and not comparison.row("layer1.0").changed


def test_row_differences_are_b_minus_a(comparison: Comparison) -> None:
    layer3 = comparison.row("layer3")
    assert layer3.delta("params") == layer3.b.params - layer3.a.params == 4 * 1_180_672
    for diff in comparison.rows:
        for metric in ROW_METRICS:
            a = getattr(diff.a, metric) if diff.a is not None else 0
            b = getattr(diff.b, metric) if diff.b is not None else 0
            assert diff.delta(metric) == b - a


def test_tree_order(comparison: Comparison) -> None:
    """Each row comes after its parent, and the rows under a parent are contiguous (a pre-order walk)."""
    position = {row.name: index for index, row in enumerate(comparison.rows)}
    for index, row in enumerate(comparison.rows):
        if row.parent:
            assert position[row.parent] < index
    order = [row.name for row in comparison.rows if row.depth <= 2]
    assert order[order.index("layer1") : order.index("layer2")] == ["layer1", "layer1.0", "layer1.1", "layer1.2"]


def test_a_report_against_itself(resnets: tuple[Report, Report]) -> None:
    same = torchscan.compare(resnets[0], resnets[0])
    assert (same.label_a, same.label_b) == ("A", "B")  # one model class on both sides
    assert not any(row.changed for row in same.rows) and not same.only_a and not same.only_b
    assert all(same.total_delta(metric) == 0 for metric in TOTAL_METRICS)


def test_rows_only_a_has_keep_their_place() -> None:
    a = crawl_module(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (4,))
    b = crawl_module(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(), nn.Linear(8, 8), nn.Linear(8, 2)), (4,))
    compared = torchscan.compare(a, b)
    assert (compared.label_a, compared.label_b) == ("A", "B")
    assert [(row.name, row.status) for row in compared.rows] == [
        ("0", "both"),
        ("1", "both"),
        ("2", "both"),
        ("3", "only_b"),
        ("4", "only_b"),
    ]
    assert compared.row("1").changed and compared.row("1").a.type == "ReLU" and compared.row("1").b.type == "Tanh"
    back = torchscan.compare(b, a)
    assert [(row.name, row.status) for row in back.rows] == [
        ("0", "both"),
        ("1", "both"),
        ("2", "both"),
        ("3", "only_a"),
        ("4", "only_a"),
    ]


def test_a_row_only_a_has_follows_its_predecessor_in_a() -> None:
    a = nn.Sequential(OrderedDict(fc1=nn.Linear(4, 8), drop=nn.Dropout(), act=nn.ReLU(), fc2=nn.Linear(8, 2)))
    b = nn.Sequential(OrderedDict(fc1=nn.Linear(4, 8), norm=nn.LayerNorm(8), act=nn.ReLU(), fc2=nn.Linear(8, 2)))
    compared = torchscan.compare(crawl_module(a, (4,)), crawl_module(b, (4,)))
    assert [(row.name, row.status) for row in compared.rows] == [
        ("fc1", "both"),
        ("drop", "only_a"),
        ("norm", "only_b"),
        ("act", "both"),
        ("fc2", "both"),
    ]
    assert compared.row("norm").delta("params") == 16 and compared.total_delta("params") == 16


def test_labels_default_to_the_model_classes() -> None:
    a = crawl_module(nn.Linear(4, 2), (4,))
    b = crawl_module(nn.Sequential(nn.Linear(4, 2)), (4,))
    compared = torchscan.compare(a, b)
    assert (compared.label_a, compared.label_b) == ("Linear", "Sequential")
    assert [row.status for row in compared.rows] == ["only_b"]  # a bare Linear has no rows below the root


def test_to_dict_is_plain_json(comparison: Comparison) -> None:
    data = json.loads(json.dumps(comparison.to_dict(depth=1)))
    assert data["labels"] == {"a": "resnet18", "b": "resnet34"}
    assert data["totals"]["params"] == {"a": 11_689_512, "b": 21_797_672, "delta": 10_108_160}
    assert all(row["depth"] <= 1 for row in data["rows"]) and data["complete"] is True
    layer1 = next(row for row in data["rows"] if row["name"] == "layer1")
    assert layer1["params_delta"] == layer1["params_b"] - layer1["params_a"] == 73_984


def test_compare_takes_reports_and_says_so_otherwise() -> None:
    """``compare(model_a, model_b)`` failed with ``AttributeError: 'Linear' object has no attribute 'context'``; a
    report with named sizes compared as if it had numbers."""
    linear = nn.Linear(2, 2)
    report = crawl_module(linear, (2,))
    for a, b, what in [
        (linear, report, "the model Linear as a"),
        (report, 3, "int as b"),
        (crawl_module(linear, (2,), batch_size="B"), report, "SymbolicReport as a"),
    ]:
        with pytest.raises(InputError, match=rf"compare\(\) takes two reports, got {what}: analyse each model first"):
            compare(a, b)
