"""Exports stay safe whatever the module and class names hold: control characters, quotes, markup, formulas."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import cache
from html.parser import HTMLParser

import networkx as nx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import torchscan
from torchscan.render import dot as dot_module
from torchscan.render.csv import cell, neutralise
from torchscan.render.dot import _quote
from torchscan.render.html import to_html
from torchscan.render.table import render_table
from torchscan.render.text import visible
from torchscan.report import Diagnostic, Report

_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?\d+(\.\d+)?(x-?\d+(\.\d+)?)*")
_DOT_STRING = r'"(?:[^"\\\n]|\\.)*"'
_DOT_LINE = re.compile(
    rf"digraph torchscan \{{|\}}|  graph \[[^\"]*, label={_DOT_STRING}\];|  (node|edge) \[[^\n]*\];"
    rf"|  n\d+ \[label={_DOT_STRING}, tooltip={_DOT_STRING}(, [a-z]+=(\w+|{_DOT_STRING}))*\];|  n\d+ -> n\d+;"
)
_XML_CHAR = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
_HOSTILE = (
    "=cmd|' /C calc'!A0",
    "+1",
    "-1",
    "@SUM(A1)",
    "\tx",
    "\rx",
    "'q",
    "a\x1b[31mred",
    "n\x00ul",
    "c\x01\x0b\x0c\x7f\x85",
    "new\nline",
    "q\"uo'te\\",
    "<script>alert(1)</script>",
    "{x}|<y>",
    "&#x1b;&amp;",
    "sep\u2028\u2029",
    "rlo\u202e",
    "lone\ud800",
)


def _forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for module in self.children():
        x = module(x)
    return x


def _model(names: tuple[str, str, str, str], class_name: str) -> nn.Module:
    """A conv, a block of the hostile class holding a ReLU, and a linear, under hostile names."""
    kind = type(class_name, (nn.Module,), {"forward": _forward})
    root, block = kind(), kind()
    block.add_module(names[3], nn.ReLU())
    for name, module in zip(names[:3], (nn.Conv2d(3, 4, 3), block, nn.Linear(6, 5)), strict=True):
        root.add_module(name, module)
    return root


def _report(names: tuple[str, str, str, str], class_name: str) -> Report:
    return torchscan.crawl_module(_model(names, class_name), (3, 8, 8))


_RESERVED = frozenset(dir(type("Plain", (nn.Module,), {"forward": _forward})()))  # add_module refuses these
_char = st.one_of(
    st.sampled_from("=+-@\t\r'\"\\<>{}|&;\x00\x01\x0b\x1b\n\x85\u2028\u202e"), st.characters(exclude_categories=())
)  # the usual suspects, or any code point (surrogates included)
_name = st.text(_char, min_size=1, max_size=12).filter(lambda name: "." not in name and name not in _RESERVED)
_names = st.lists(_name, min_size=3, max_size=3, unique=True).flatmap(
    lambda names: _name.map(lambda inner: (*names, inner))
)
_class_name = st.text(_char, min_size=1, max_size=12).filter(
    lambda name: not re.search("[\x00\ud800-\udfff]", name)  # type() refuses NUL and surrogates
)


class _Markup(HTMLParser):
    """The (tag, attribute names) pairs of a page and the layer rows' ``data-name``s."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.elements: set[tuple[str, tuple[str, ...]]] = set()
        self.names: list[str | None] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.add((tag, tuple(sorted(name for name, _ in attrs))))
        if tag == "tr" and attrs and attrs[0][0] == "class":
            self.names.append(dict(attrs)["data-name"])


@cache
def _plain_markup(with_diagnostics: bool = False) -> frozenset[tuple[str, tuple[str, ...]]]:
    """The elements of a page of plainly named layers (with one diagnostic: its list's elements too)."""
    plain = _report(("a", "b", "c", "d"), "Plain")
    if with_diagnostics:
        plain = dataclasses.replace(plain, diagnostics=(Diagnostic("note", "plain"),))
    return frozenset(_Markup(to_html(plain)).elements)


def _check_csv(report: Report) -> None:
    records = list(csv.reader(io.StringIO(report.to_csv())))
    text_cells = [value for record in records for value in record if not _NUMBER.fullmatch(value)]
    assert not [value for value in text_cells if value.startswith(_FORMULA)]
    names = [record[0] for record in records[1:]]
    assert [name[1:] if name.startswith("'") else name for name in names] == [row.name for row in report.rows]


def _check_graphml(report: Report) -> None:
    buffer = io.BytesIO()
    nx.write_graphml(report.graph, buffer)
    graph = nx.read_graphml(io.BytesIO(buffer.getvalue()))
    assert graph.number_of_nodes() == report.records.number_of_nodes()
    assert graph.graph["model"] == visible(report.context.model)
    rows = {visible(row.name) for row in report.rows} | {""}
    assert {data["row"] for _, data in graph.nodes(data=True)} <= rows


def _check_dot(report: Report) -> None:
    source = report.to_dot()
    lines = source.removesuffix("\n").split("\n")
    assert [line for line in lines if not _DOT_LINE.fullmatch(line) or visible(line) != line] == []
    if shutil.which("dot") is None:
        return
    result = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    svg = ET.fromstring(result.stdout.encode())
    assert len([g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"]) == len(
        re.findall(r"^  n\d+ \[", source, re.MULTILINE)
    )


def _check_html(report: Report) -> None:
    markup = _Markup(report.to_html())
    assert markup.elements == _plain_markup(bool(report.diagnostics))  # hostile names add no element
    assert markup.names == [row.name for row in report.rows]


def _check_table(report: Report) -> None:
    table = render_table(report)
    lines = table.splitlines()
    assert len(lines) == table.count("\n") + 1 and all(visible(line) == line for line in lines)
    rules = [index for index, line in enumerate(lines) if line and set(line) == {"="}]
    assert rules[1] - rules[0] - 1 == 1 + len(report.rows)  # the model, then one line per row


def _check_json(report: Report) -> None:
    text = report.to_json()
    assert text.isascii() and all(char >= " " for char in text.replace("\n", ""))
    data = json.loads(text)
    assert [layer["name"] for layer in data["layers"]] == [row.name for row in report.rows]
    assert data["context"]["model"] == report.context.model


@given(names=_names, class_name=_class_name)
def test_every_export_survives_hostile_names(names: tuple[str, str, str, str], class_name: str) -> None:
    report = _report(names, class_name)
    _check_csv(report)
    _check_graphml(report)
    _check_dot(report)
    _check_html(report)
    _check_table(report)
    _check_json(report)


@pytest.fixture(scope="module")
def hostile() -> Report:
    """Every hostile name at the top level (a block of them nested too), under a hostile class name."""
    kind = type("<b>\x1b[1m\n", (nn.Module,), {"forward": _forward})
    root, block = kind(), kind()
    for name in _HOSTILE:
        block.add_module(name, nn.ReLU())
    root.add_module(_HOSTILE[0], nn.Conv2d(3, 4, 3))
    for name in _HOSTILE[1:]:
        root.add_module(name, nn.ReLU())
    root.add_module("block", block)
    return torchscan.crawl_module(root, (3, 8, 8))


def test_visible_writes_hidden_characters_as_escapes() -> None:
    assert visible("a\x1b[31m\n\t\r\x00\x7f\x85\u2028\u202e\ud800\ufffe") == (
        "a\\x1b[31m\\n\\t\\r\\x00\\x7f\\x85\\u2028\\u202e\\ud800\\ufffe"
    )
    assert visible("é 名 🙂 \\ <'\"&>") == "é 名 🙂 \\ <'\"&>"
    text = "".join(map(chr, range(0x110000)))
    assert _XML_CHAR.fullmatch(visible(text)) and visible(visible(text)) == visible(text)
    assert len(visible(text).splitlines()) == 1 and visible(text).encode("utf-8")


def test_csv_neutralises_formula_text_but_not_numbers(hostile: Report) -> None:
    records = list(csv.DictReader(io.StringIO(hostile.to_csv())))
    by_name = {record["name"]: record for record in records}
    for name in ("=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'q"):
        assert f"'{name}" in by_name
    assert by_name["'-1"]["type"] == "ReLU" and by_name["block.-1"]["parent"] == "block"
    assert by_name["'=cmd|' /C calc'!A0"]["flops"] == str(hostile.row("=cmd|' /C calc'!A0").flops)
    assert [neutralise(text) for text in ("-1", "'", "a=b", "", " =x")] == ["'-1", "''", "a=b", "", " =x"]
    assert [cell(value) for value in (-1, (-1, -2), -0.5, "-1", "=1")] == ["-1", "-1x-2", "-0.5", "'-1", "'=1"]


def test_graphml_of_control_characters_parses(hostile: Report) -> None:
    buffer = io.BytesIO()
    nx.write_graphml(hostile.graph, buffer)
    graph = nx.read_graphml(io.BytesIO(buffer.getvalue()))
    paths = {data["module_path"] for _, data in graph.nodes(data=True)}
    assert {"a\\x1b[31mred", "n\\x00ul", "c\\x01\\x0b\\x0c\\x7f\\x85", "block.new\\nline", "lone\\ud800"} <= paths
    assert graph.graph["model"] == "<b>\\x1b[1m\\n"


def test_dot_quotes_and_escapes_every_string(hostile: Report) -> None:
    _check_dot(hostile)
    source = hostile.to_dot(depth=1)
    assert "\x00" not in source and "\x1b" not in source and "\ud800" not in source
    assert "\\\\x1b[31mred\\n" in source  # ESC shown as \x1b, the DOT backslash escaped
    assert _quote('a"b\\c\x00&#x1b;\nd') == '"a\\"b\\\\c\\\\x00&amp;#x1b;\\nd"'


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` is not installed")
def test_svg_of_hostile_names_is_xml(hostile: Report) -> None:
    root = ET.fromstring(hostile.to_svg().encode())
    texts = [text.text for text in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "&#x1b;&amp;" in texts and "<script>alert(1)</script>" in texts and "n\\x00ul" in texts


def test_html_falls_back_to_the_flow_when_graphviz_fails(hostile: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dot_module.shutil, "which", lambda _: sys.executable)  # `python -Tsvg` exits 2
    page = hostile.to_html()
    assert "Graphviz failed, so a simplified flow is shown" in page and '<ol class="flow">' in page
    assert "<svg" not in page


def test_html_and_json_escape_markup(hostile: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dot_module.shutil, "which", lambda _: None)
    page = hostile.to_html()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page and _Markup(page).names == [row.name for row in hostile.rows]
    _check_json(hostile)


def test_table_has_one_line_per_row_and_no_escape_sequence(hostile: Report) -> None:
    _check_table(hostile)
    table = render_table(hostile)
    assert "\x1b" not in table and "├─a\\x1b[31mred " in table and "├─new\\nline " in table
    assert "<b>\\x1b[1m\\n" in table.splitlines()[3]
