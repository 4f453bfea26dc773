"""The report's reprs: ``repr`` one line, ``str`` the table."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

import torchscan
from torchscan.render.table import render_table
from torchscan.render.units import format_count


@pytest.fixture(scope="module")
def report() -> torchscan.Report:
    return torchscan.crawl_module(nn.Sequential(nn.Linear(32, 20), nn.ReLU(), nn.Linear(20, 4)), (32,))


def test_repr_is_one_line_with_model_params_flops_macs_complete(report: torchscan.Report) -> None:
    totals = report.totals
    assert repr(report) == (
        f"<torchscan Report Sequential: {totals.params} params, {format_count(totals.flops, 'FLOPs')}, "
        f"{format_count(totals.macs, 'MACs')}, complete>"
    )
    assert totals.params == 32 * 20 + 20 + 20 * 4 + 4 < 1000  # small counts are exact: "744 params"
    partial = dataclasses.replace(report, totals=dataclasses.replace(totals, complete=False, unknown_ops=2))
    assert repr(partial).endswith(", lower bound, 2 op(s) not counted>")
    hostile = dataclasses.replace(report, context=dataclasses.replace(report.context, model="Evil\n\x1b[31m"))
    assert "\n" not in repr(hostile) and "\x1b" not in repr(hostile)


def test_repr_stays_short_for_a_big_model() -> None:
    torchvision = pytest.importorskip("torchvision")
    big = torchscan.crawl_module(torchvision.models.resnet50(), (3, 64, 64))
    assert len(repr(big)) < 120 and repr(big).startswith("<torchscan Report ResNet: 25.6M params, ")
    assert repr([big]) == f"[{big!r}]"


def test_str_is_the_table(report: torchscan.Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert str(report) == render_table(report) == render_table(report, width=100)
    assert "Total params: 744" in str(report)


class _Scaled(__import__("torch").autograd.Function):
    """A custom autograd Function (its nodes are named in the graph's attributes)."""

    @staticmethod
    def forward(ctx: object, x: object) -> object:
        return x * 2

    @staticmethod
    def backward(ctx: object, grad: object) -> object:
        return grad * 2


class _Checkpointed(nn.Module):
    """A checkpointed block, a custom Function and a convolution: every read-only table a report's graph holds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: object) -> object:
        import torch.utils.checkpoint

        y = torch.utils.checkpoint.checkpoint(self.conv, x, use_reentrant=False)
        return self.head(_Scaled.apply(y).mean((2, 3)))


@pytest.mark.parametrize("receptive_field", [False, True])
def test_a_report_pickles_and_deep_copies_as_itself(receptive_field: bool) -> None:
    """A report sent to another process (``pickle``) or deep-copied equals the original, its graph's records and
    its parts made on first read included (a call's arguments were a ``mappingproxy``: neither worked)."""
    import copy
    import pickle

    report = torchscan.crawl_module(_Checkpointed().train(), (3, 8, 8), batch_size=2, receptive_field=receptive_field)
    for again in (pickle.loads(pickle.dumps(report)), copy.deepcopy(report)):
        assert again.to_dict() == report.to_dict()
        assert again.memory == report.memory and again.rows == report.rows
        assert dict(again.records.nodes(data=True)) == dict(report.records.nodes(data=True))
        assert again.records.graph == report.records.graph
    swept = torchscan.sweep(_Checkpointed().eval(), [(3, 8, 8), (3, 12, 12)])
    assert [item.to_dict() for item in pickle.loads(pickle.dumps(swept))] == [item.to_dict() for item in swept]
