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
