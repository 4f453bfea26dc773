"""The results table: Markdown as the README shows it, a sortable self-contained HTML page, the summary."""

from __future__ import annotations

import re

import pytest

from torchscan.errors import InputError
from torchscan.zoo.records import ZooRow
from torchscan.zoo.table import parse_columns, render_html, render_markdown, summarise

ROWS = [
    ZooRow("resnet18", "1x3x224x224", "ok", params=11689512, flops=3640299392, macs=1820672000, dmas=1839311800,
           complete=True, unknown_ops=0, analysis_seconds=0.2154),
    ZooRow("m.py:f", "1x8", "ok", params=72, flops=136, macs=64, dmas=216, complete=False, unknown_ops=1,
           analysis_seconds=0.01),
    ZooRow("hang|<b>", "1x8", "failed", error_type="Timeout", error="timeout after 20 s"),
]  # fmt: skip


def test_markdown_rounds_like_the_published_table() -> None:
    assert render_markdown(ROWS).splitlines() == [
        "| Model | Input | Params (M) | GFLOPs | GMACs | GDMAs | Complete | Analysis (s) |",
        "|---|---|---:|---:|---:|---:|---|---:|",
        "| resnet18 | 1x3x224x224 | 11.69 | 3.64 | 1.82 | 1.84 | yes | 0.215 |",
        "| m.py:f | 1x8 | 0.00 | 0.00 | 0.00 | 0.00 | no (1 ops) | 0.010 |",
        "| hang\\|<b> | 1x8 |  |  |  |  | failed (Timeout) |  |",
    ]
    assert render_markdown(ROWS, "model,error").splitlines()[-1] == "| hang\\|<b> | timeout after 20 s |"


def test_html_is_self_contained_sortable_and_escaped() -> None:
    page = render_html(ROWS)
    assert "<script>" in page and "addEventListener" in page
    assert not re.search(r"(src|href)=|https?://", page)  # nothing fetched
    assert "hang|&lt;b&gt;" in page and "<b>" not in page
    assert 'data-value="11689512"' in page  # exact values sort numerically
    assert '<tr class="failed">' in page
    assert summarise(ROWS) in page


def test_summary_counts_failures_by_reason() -> None:
    assert summarise(ROWS) == "3 rows: 2 ok (1 complete), 1 failed (Timeout 1)"


def test_unknown_columns_are_named() -> None:
    with pytest.raises(InputError, match="choose from model, input"):
        parse_columns("model,gflops")
