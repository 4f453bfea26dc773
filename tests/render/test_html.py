"""HTML export: one self-contained page (no network), escaped text, table and graph; notebook view."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from torchscan.records.rows import is_bookkeeping
from torchscan.render import dot as dot_module
from torchscan.render.html import auto_graph_depth, to_html
from torchscan.render.memory import TRAINING_HEADERS, peak_where, training_cells
from torchscan.render.units import format_bytes, format_count
from torchscan.report import Diagnostic, Report

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` is not installed")

_VOID = {"meta", "br", "input", "img", "link", "hr", "path", "polygon", "ellipse", "polyline", "text", "title"}


class _Checker(HTMLParser):
    """Counts tags and checks that non-void HTML elements are balanced."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += attrs
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
        self.stack.pop()


def _check(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == [], checker.stack
    return checker


def _assert_offline(page: str, checker: _Checker) -> None:
    assert "<link" not in page and "@import" not in page and "url(" not in page
    for name, value in checker.attrs:
        if name in ("src", "href", "xlink:href", "action"):
            raise AssertionError(f"{name}={value!r} would fetch something")


def test_page_is_self_contained_with_table_totals_and_diagnostics(resnet18_report: Report, tmp_path: Path) -> None:
    page = resnet18_report.to_html(tmp_path / "report.html")
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == page
    checker = _check(page)
    _assert_offline(page, checker)
    assert checker.tags["script"] == 1 and checker.tags["style"] >= 1
    shown = [row for row in resnet18_report.rows if not is_bookkeeping(row, resnet18_report.totals)]
    assert page.count('<tr class="') == len(shown)  # bookkeeping rows (the flatten) folded
    assert 'id="layers"' in page and 'id="totals"' in page and 'id="diagnostics"' in page
    assert f"{resnet18_report.totals.params:,}" in page and "3.6" in page  # params and GFLOPs
    for row in shown:
        assert f'data-name="{row.name}"' in page


@needs_dot
def test_graph_is_an_inline_svg(resnet18_report: Report) -> None:
    page = to_html(resnet18_report)
    graph = page[page.index('id="graph"') :]
    assert graph.count("<svg") == 1 and "<?xml" not in page and "<!DOCTYPE svg" not in page
    depth = auto_graph_depth(resnet18_report)
    assert depth == 2  # 15 rows at depth 2, ~60 at depth 3
    shown = [row for row in resnet18_report.rows_at_depth(depth) if not is_bookkeeping(row, resnet18_report.totals)]
    assert graph.count('class="node"') == len(shown) + 2  # bookkeeping (the top-level flatten) folded


def test_without_graphviz_a_plain_flow_and_a_note(resnet18_report: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dot_module.shutil, "which", lambda _: None)
    page = to_html(resnet18_report, graph_depth=1)
    _check(page)
    assert "<svg" not in page and "Graphviz is not installed" in page and "apt-get install graphviz" in page
    shown = [row for row in resnet18_report.rows_at_depth(1) if not is_bookkeeping(row, resnet18_report.totals)]
    assert page.count('class="gnode"') == len(shown) + 2


def test_text_is_escaped(branchy_report: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dot_module.shutil, "which", lambda _: None)
    evil = "<script>alert('x')</script>&"
    rows = (replace(branchy_report.rows[1], type=evil), *branchy_report.rows[2:])
    report = replace(
        branchy_report,
        rows=(branchy_report.rows[0], *rows),
        context=replace(branchy_report.context, model=evil),
        diagnostics=(Diagnostic("unknown-op", f"no formula for {evil}", ("n",)),),
        totals=replace(branchy_report.totals, complete=False, unknown_ops=1),
    )
    page = to_html(report)
    checker = _check(page)
    assert checker.tags["script"] == 1 and "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;" in page
    assert "lower bound: 1 op(s) not counted" in page and "[unknown-op]" in page
    notebook = report._repr_html_()
    assert "<script" not in notebook and "&lt;script&gt;" in notebook


def test_notebook_view_is_compact(resnet18_report: Report) -> None:
    view = resnet18_report._repr_html_()
    _check(view)
    assert "<script" not in view and "<svg" not in view and "<style" not in view
    assert view.count("<tr class=") == len(resnet18_report.rows_to_depth(1))
    assert f"{resnet18_report.totals.params:,} params" in view
    assert len(view) < len(to_html(resnet18_report)) / 5  # the page without Graphviz is ~10x the view


def test_sortable_and_collapsible_markup(resnet18_report: Report) -> None:
    page = to_html(resnet18_report, table_depth=1)
    assert re.search(r'<table id="layers" data-initial-depth="1">', page)
    assert page.count('data-type="num"') >= 6 and page.count('<button class="tog"') == sum(
        1 for row in resnet18_report.rows if any(other.parent == row.name for other in resnet18_report.rows)
    )


def test_memory_section(resnet18_report: Report) -> None:
    memory = resnet18_report.memory
    assert memory is not None
    page = to_html(resnet18_report)
    _check(page)
    section = page[page.index('<section class="box" id="memory">') : page.index('id="diagnostics"')]
    assert (
        format_bytes(memory.activation_peak_bytes) in section and format_bytes(memory.inference_peak_bytes) in section
    )
    assert escape(f"at {peak_where(memory)}") in section and format_bytes(memory.saved_activation_bytes) in section
    training = section[section.index('<table class="mem" id="training">') :]
    assert re.findall(r"<th[^>]*>([^<]*)</th>", training) == [escape(name) for name in TRAINING_HEADERS]
    rows = re.findall(r"<tr>(.*?)</tr>", training)[1:]
    assert [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in rows] == [
        [escape(cell) for cell in cells] for cells in training_cells(memory)
    ]
    without = to_html(replace(resnet18_report, memory=None))
    assert 'id="memory"' in without and "no memory analysis" in without and 'id="training"' not in without


def test_counts_are_short_with_the_exact_value_on_hover(resnet18_report: Report) -> None:
    page = to_html(resnet18_report)
    row = resnet18_report.row("conv1")
    line = next(line for line in page.splitlines() if 'data-name="conv1"' in line)
    assert f'data-v="{row.flops}" title="{row.flops:,}">{format_count(row.flops)}</td>' in line
    assert f'data-v="{row.output_bytes}" title="{row.output_bytes:,}">{format_bytes(row.output_bytes)}</td>' in line


def test_bookkeeping_rows_are_folded_in_the_table_unless_shown() -> None:
    from tests.gpt2 import gpt2_report
    from torchscan.render.html import to_html

    report = gpt2_report()
    folded = [row for row in report.rows if is_bookkeeping(row, report.totals)]
    assert folded
    page, full = to_html(report), to_html(report, show_free=True)
    name = folded[0].name
    assert f'data-name="{name}"' not in page and f'data-name="{name}"' in full
