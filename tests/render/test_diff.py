"""The comparison as text, CSV and JSON: readable per-row lines, the rows one side lacks marked, exact totals."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import OrderedDict

import pytest
from torch import nn

import torchscan
from torchscan.errors import InputError
from torchscan.records import Comparison
from torchscan.render.diff import DIFF_CSV_COLUMNS, diff_csv, diff_json, render_diff

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def resnets() -> Comparison:
    a = torchscan.crawl_module(torchvision.models.resnet18(), (3, 64, 64))
    b = torchscan.crawl_module(torchvision.models.resnet34(), (3, 64, 64))
    return torchscan.compare(a, b, labels=("resnet18", "resnet34"))


def _body(text: str) -> list[str]:
    """The per-row lines: between the second and third ``=`` rules (the first line is the model's)."""
    lines = text.splitlines()
    rules = [index for index, line in enumerate(lines) if line.startswith("===")]
    return lines[rules[0] + 2 : rules[1]]


def test_per_row_lines_and_markers(resnets: Comparison) -> None:
    text = render_diff(resnets, max_depth=2)
    lines = text.splitlines()
    assert lines[0] == "A: resnet18 (ResNet, input (1, 3, 64, 64) float32)"
    assert re.split(r" {2,}", lines[3].strip()) == [
        "Layer",
        "Type",
        "Params A",
        "Params B",
        "Δ Params",
        "FLOPs A",
        "FLOPs B",
        "Δ FLOPs",
    ]
    body = _body(text)
    assert len(body) == len(resnets.rows_to_depth(2))
    added = [line for line in body if line.endswith("only in B")]
    assert len(added) == 8 and not any(line.endswith("only in A") for line in body)
    layer3_4 = next(line for line in body if "─4 " in line and "BasicBlock" in line)
    assert re.search(r"BasicBlock\s+-\s+1,180,672\s+\+1,180,672\s+-\s+\S+\s+\+\S+\s+only in B$", layer3_4)
    conv1 = next(line for line in body if line.startswith("├─conv1 "))
    assert re.search(r"9,408\s+9,408\s+0\s", conv1)


def test_totals_lines(resnets: Comparison) -> None:
    text = render_diff(resnets)
    assert re.search(r"Params:\s+11,689,512 → 21,797,672  \(\+10,108,160, \+86\.5%\)", text)
    flops_a, flops_b = resnets.totals_a.flops, resnets.totals_b.flops
    change = f"{100 * (flops_b - flops_a) / flops_a:+.1f}%"
    assert re.search(rf"FLOPs:\s+\S+ →\s+\S+  \(\+\S+, {re.escape(change)}\)", text)
    assert "Model size:" in text and "Activation peak:" in text
    both = [row for row in resnets.rows if row.status == "both"]
    changed = sum(row.changed for row in both)
    expected = f"Rows: {len(both)} in both ({changed} changed), 0 only in A, {len(resnets.only_b)} only in B"
    assert text.splitlines()[-1] == expected


def test_depth_zero_and_changed_only(resnets: Comparison) -> None:
    assert _body(render_diff(resnets, max_depth=0)) == []
    changed = _body(render_diff(resnets, max_depth=1, changed_only=True))
    assert [line.split()[0] for line in changed] == ["├─layer1", "├─layer2", "├─layer3", "└─layer4"]


def test_metrics(resnets: Comparison) -> None:
    text = render_diff(resnets, max_depth=1, metrics=("macs", "output_bytes"))
    assert "MACs A" in text and "Out Bytes B" in text and "Params A" not in text
    with pytest.raises(InputError, match="unknown diff metric"):
        render_diff(resnets, metrics=("latency",))


def test_a_type_change_is_shown() -> None:
    a = nn.Sequential(OrderedDict(fc=nn.Linear(4, 4), act=nn.ReLU()))
    b = nn.Sequential(OrderedDict(fc=nn.Linear(4, 4), act=nn.GELU()))
    text = render_diff(torchscan.compare(torchscan.crawl_module(a, (4,)), torchscan.crawl_module(b, (4,))))
    assert re.search(r"└─act\s+ReLU → GELU\s", text)


def test_csv(resnets: Comparison) -> None:
    rows = list(csv.DictReader(io.StringIO(diff_csv(resnets, max_depth=2))))
    assert list(rows[0]) == list(DIFF_CSV_COLUMNS)
    block = next(row for row in rows if row["name"] == "layer2.3")
    assert block["status"] == "only_b" and block["params_a"] == "" and block["params_delta"] == block["params_b"]
    assert sum(int(row["params_delta"]) for row in rows if row["depth"] == "1") == resnets.total_delta("params")


def test_json(resnets: Comparison) -> None:
    data = json.loads(diff_json(resnets, max_depth=1))
    assert data == json.loads(json.dumps(resnets.to_dict(1)))
    assert data["totals"]["params"]["delta"] == 10_108_160
