"""The text table: columns by name and preset, their cells, and the fit to a width (narrow and wide)."""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from torch import nn

import torchscan
from tests.gpt2 import gpt2_report
from tests.strategies import RandomNet, random_nets
from torchscan.errors import InputError
from torchscan.records.rows import Row, is_bookkeeping
from torchscan.render.table import COLUMNS, PRESETS, parse_columns, render_table, wants_receptive_field
from torchscan.render.units import format_bytes, format_count, format_shape
from torchscan.report import Diagnostic, Report


class FunctionalConv(nn.Module):
    """A convolution through ``F.conv2d`` on a held weight, then a max pool through ``F.max_pool2d``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(4, 3, 5, 3))
        self.head = nn.Conv1d(4, 2, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.conv2d(x, self.weight), 2)
        return self.head(x.flatten(2))


class VeryLongClassNameForATransformerEncoderLayerWithRotaryEmbeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.projection_of_the_queries_keys_and_values = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_of_the_queries_keys_and_values(x)


def _blocks(table: str) -> list[list[str]]:
    """The table blocks: the lines between each header's ``=`` rule and the next ``=`` rule."""
    lines = table.splitlines()
    rules = [index for index, line in enumerate(lines) if line and set(line) == {"="}]
    return [lines[rules[i] - 1 : rules[i + 1] + 1] for i in range(0, len(rules), 2)]


def _headers(block: list[str]) -> list[str]:
    return re.split(r" {2,}", block[0].strip())


def _cells(line: str) -> list[str]:
    """The cells of a table line, the Layer cell without its tree guides."""
    guides = re.match(r"(?:[│ ]    )*(?:[├└]─)?", line)
    assert guides is not None
    return re.split(r" {2,}", line[guides.end() :].strip())


@pytest.fixture(scope="module")
def functional_report() -> Report:
    return torchscan.crawl_module(FunctionalConv(), (3, 16, 16))


@pytest.fixture(scope="module")
def rf_report() -> Report:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 5, dilation=2))
    return torchscan.crawl_module(model, (3, 32, 32), receptive_field=True)


def test_presets_and_names_parse() -> None:
    assert parse_columns(None) == parse_columns("default") == PRESETS["default"]
    assert parse_columns("all") == tuple(COLUMNS)
    assert parse_columns("cost,kernel") == (*PRESETS["cost"], "kernel")
    assert parse_columns(["Output-Shape", "FLOPS", " params "]) == ("output_shape", "flops", "params")
    assert parse_columns("flops,flops,all")[:2] == ("flops", "type")  # first place kept, no repeat
    assert len(parse_columns("flops,all")) == len(COLUMNS)
    assert wants_receptive_field("receptive_field") and not wants_receptive_field("all")
    for columns in PRESETS.values():
        assert set(columns) <= set(COLUMNS)


@pytest.mark.parametrize("spec", ["flop", "params,outputshape", ["kernel", "nope"], "", [" , "]])
def test_a_bad_name_is_an_input_error_listing_the_valid_ones(spec: str | list[str]) -> None:
    with pytest.raises(InputError) as error:
        parse_columns(spec)
    message = str(error.value)
    assert all(name in message for name in COLUMNS) and all(name in message for name in PRESETS)
    if spec == "flop":
        assert "did you mean 'flops'?" in message
    if spec == "params,outputshape":
        assert "did you mean 'output_shape'?" in message


def test_each_column_alone(resnet18_report: Report, rf_report: Report) -> None:
    for name, column in COLUMNS.items():
        report = rf_report if name == "receptive_field" else resnet18_report
        table = render_table(report, columns=name, width=0, show_free=True)
        (block,) = _blocks(table)
        assert _headers(block) == ["Layer", column.header]
        assert len(block) == 2 + 1 + len(report.rows) + 1  # header, rule, the model, one per row, rule


def test_cells_are_the_rows_numbers(resnet18_report: Report) -> None:
    report = resnet18_report
    (block,) = _blocks(render_table(report, columns="all", width=0, show_free=True))
    headers = _headers(block)
    assert headers == ["Layer", *(column.header for name, column in COLUMNS.items() if name != "receptive_field")]
    where = {header: index for index, header in enumerate(headers)}
    for row, line in zip(report.rows, block[3:-1], strict=True):  # one line per row, in order
        cells = _cells(line)
        assert cells[0] == row.name.rpartition(".")[2]
        assert cells[where["Type"]] == row.type
        assert cells[where["Output Shape"]] == format_shape(row.output_shape)
        assert cells[where["Param #"]] == f"{row.params:,}"
        assert cells[where["FLOPs"]] == format_count(row.flops)
        assert cells[where["MACs"]] == format_count(row.macs)
        assert cells[where["DMAs"]] == format_count(row.dmas)
        assert cells[where["Output Bytes"]] == format_bytes(row.output_bytes)
        assert cells[where["Calls"]] == str(row.calls)
        assert float(cells[where["FLOPs %"]].rstrip("%")) == pytest.approx(
            100 * row.flops / report.totals.flops, abs=0.05
        )
    (block,) = _blocks(render_table(report, columns="input_shape,params,flops,flops_percent", width=0))
    assert _cells(block[2]) == [
        report.context.model,
        format_shape(report.context.input_shapes[0]),
        f"{report.totals.params:,}",
        format_count(report.totals.flops),
        "100.0%",
    ]


def test_input_shape_and_kernel(resnet18_report: Report) -> None:
    model = __import__("torchvision").models.resnet18()
    report = resnet18_report
    (block,) = _blocks(render_table(report, max_depth=1, columns="kernel", width=0))
    kernel = {_cells(line)[0]: _cells(line)[-1] for line in block[3:-1]}
    assert kernel["conv1"] == "x".join(map(str, model.conv1.kernel_size))
    assert kernel["maxpool"] == f"{model.maxpool.kernel_size}x{model.maxpool.kernel_size}"  # an int, per spatial dim
    assert kernel["layer1"] == "-" and kernel["fc"] == "-"
    shapes = render_table(report, max_depth=1, columns=["input_shape", "output_shape"], width=0, show_free=True)
    (block,) = _blocks(shapes)
    cells = [_cells(line) for line in block[2:-1]]
    assert cells[0][1] == cells[1][1] == format_shape(report.context.input_shapes[0])  # the model's, conv1's
    for (_, _, previous_out), (_, this_in, _) in itertools.pairwise(cells[1:]):
        assert this_in == previous_out  # depth 1 of ResNet is a chain: each layer reads what the previous returned


def test_kernel_of_functional_calls(functional_report: Report) -> None:
    table = render_table(functional_report, columns="kernel,input_shape", width=0)
    (block,) = _blocks(table)
    cells = {_cells(line)[0]: _cells(line)[1:] for line in block[3:-1]}
    conv = next(name for name in cells if name.startswith("conv2d"))
    pool = next(name for name in cells if name.startswith("max_pool2d"))
    assert cells[conv] == ["5x3", "(1, 3, 16, 16)"]  # the weight's spatial dims
    assert cells[pool][0] == "2x2" and cells["head"][0] == "7"


def test_receptive_field_column(rf_report: Report, resnet18_report: Report) -> None:
    assert "Receptive field" in render_table(rf_report, width=0)  # the default preset shows it when computed
    assert "Receptive field" in render_table(rf_report, columns="all", width=0)
    assert "Receptive field" not in render_table(resnet18_report, columns="all", width=0)
    with pytest.raises(InputError, match="receptive_field=True"):
        render_table(resnet18_report, columns="flops,receptive_field")


@pytest.mark.parametrize("width", [60, 100, 200])
def test_every_line_fits_and_every_row_is_one_line(resnet18_report: Report, width: int) -> None:
    report = resnet18_report
    table = render_table(report, columns="all", width=width, show_free=True)
    blocks = _blocks(table)
    assert all(len(line) <= width for line in table.splitlines())
    headers = [header for block in blocks for header in _headers(block)[1:]]
    assert headers == [column.header for column in COLUMNS.values() if column.name != "receptive_field"]
    for block in blocks:
        assert _headers(block)[0] == "Layer" and len(block) == 4 + len(report.rows)
    natural = max(len(line) for line in render_table(report, columns="all", width=0, show_free=True).splitlines())
    assert (len(blocks) == 1) == (natural <= width)


def test_narrow_and_wide_render(resnet18_report: Report) -> None:
    wide = render_table(resnet18_report, max_depth=2, columns="cost", width=200)
    narrow = render_table(resnet18_report, max_depth=2, columns="cost", width=60)
    assert len(_blocks(wide)) == 1 and len(_blocks(narrow)) == 2
    assert max(len(line) for line in narrow.splitlines()) <= 60
    # the same cells, only arranged in two blocks
    assert {cell for line in _blocks(wide)[0][2:-1] for cell in _cells(line)} == {
        cell for block in _blocks(narrow) for line in block[2:-1] for cell in _cells(line)
    }
    assert render_table(resnet18_report, columns="all", width=5) == render_table(
        resnet18_report, columns="all", width=40
    )  # narrower than 40 is taken as 40


def test_long_names_are_shortened_not_broken() -> None:
    report = torchscan.crawl_module(
        nn.Sequential(VeryLongClassNameForATransformerEncoderLayerWithRotaryEmbeddings()), (4, 8)
    )
    table = render_table(report, width=80)
    (block,) = _blocks(table)
    assert all(len(line) <= 80 for line in table.splitlines()) and len(block) == 4 + len(report.rows)
    assert "…" in block[-2] and "VeryLongClass" in table  # the type cell, cut
    assert all(len(line) > 80 for line in render_table(report, width=0).splitlines()[3:5])


def test_terminal_width(resnet18_report: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "70")
    assert max(len(line) for line in render_table(resnet18_report, columns="all").splitlines()) <= 70
    monkeypatch.delenv("COLUMNS")

    def no_terminal(*_: object) -> os.terminal_size:
        raise OSError("not a terminal")

    monkeypatch.setattr(os, "get_terminal_size", no_terminal)  # output to a pipe or file: no limit
    assert render_table(resnet18_report, columns="all") == render_table(resnet18_report, columns="all", width=0)


def test_footer_lines_wrap_at_the_width(branchy_report: Report) -> None:
    message = " ".join(["word"] * 60)
    report = replace(branchy_report, diagnostics=(Diagnostic("long", message),))
    lines = render_table(report, width=60).splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert " ".join(line.strip() for line in lines[lines.index("Diagnostics:") + 1 :]) == f"- [long] {message}"


def _shown(table: str) -> list[str]:
    """The Layer cells of a one-block table's rows (the model's line left out)."""
    (block,) = _blocks(table)
    return [_cells(line)[0] for line in block[3:-1]]


def _label(row: Row) -> str:
    return row.name.removeprefix(f"{row.parent}.") if row.parent else row.name


def assert_shown_rows_sum_to_totals(report: Report) -> None:
    """The table's rows are the report's rows less bookkeeping, and at every depth the shown frontier
    sums to the totals: exactly for parameters, FLOPs and MACs; DMAs with the folded rows' (the footer's)."""
    totals = report.totals
    shown = [row for row in report.rows if not is_bookkeeping(row, totals)]
    table = render_table(report, width=0)
    assert _shown(table) == [_label(row) for row in shown]
    folded = [row for row in report.rows if is_bookkeeping(row, totals)]
    if folded:
        dmas = format_count(sum(row.dmas for row in folded), "DMAs")
        rows = f"{len(folded)} bookkeeping row{'s' * (len(folded) > 1)}"
        assert f"Folded: {rows}, {dmas} (show_free=True / --all-rows)" in table
    for depth in range(1, report.max_depth + 1):
        frontier = report.rows_at_depth(depth)
        visible = [row for row in frontier if not is_bookkeeping(row, totals)]
        hidden = [row for row in frontier if is_bookkeeping(row, totals)]
        assert sum(row.params for row in visible) == totals.params, depth
        assert sum(row.flops for row in visible) == totals.flops, depth
        assert sum(row.macs for row in visible) == totals.macs, depth
        assert sum(row.unknown_ops for row in visible) == totals.unknown_ops, depth
        assert sum(row.dmas for row in visible) + sum(row.dmas for row in hidden) == totals.dmas, depth
        assert all(row.dmas * 10_000 <= totals.dmas for row in hidden)


def test_gpt2_bookkeeping_rows_are_folded() -> None:
    report = gpt2_report()
    folded = {row.name for row in report.rows if is_bookkeeping(row, report.totals)}
    types = {row.type for row in report.rows if row.name in folded}
    assert {"arange", "getitem", "new_ones", "to", "expand", "view"} <= types
    under_transformer = [row for row in report.rows if row.parent == "transformer"]
    assert len([row for row in under_transformer if row.name in folded]) >= 15  # the clutter of the issue
    default = render_table(report, width=0)
    everything = render_table(report, width=0, show_free=True)
    assert _shown(everything) == [_label(row) for row in report.rows]
    shown = _shown(default)
    assert len(shown) == len(report.rows) - len(folded)
    assert not {"arange", "new_ones", "expand", "getitem", "view"} & {label.rstrip("_0123456789") for label in shown}
    assert "Folded: " not in everything
    # the same numbers: everything after the table is the same but the folded-rows line
    footer = default.split("Folded: ", 1)[1].split("\n", 2)[2]
    assert everything.endswith(footer)
    for row in report.rows:  # whatever does arithmetic is shown: le, bitwise_and of the mask, the position add
        if row.flops or row.macs or row.kind not in ("function", "method"):
            assert row.name not in folded
    assert {"le", "bitwise_and", "add"} <= set(shown)
    assert_shown_rows_sum_to_totals(report)


def test_shown_rows_sum_to_totals(resnet18_report: Report, branchy_report: Report, functional_report: Report) -> None:
    for report in (resnet18_report, branchy_report, functional_report, gpt2_report()):
        assert_shown_rows_sum_to_totals(report)
    assert "flatten" not in _shown(render_table(resnet18_report, max_depth=1, width=0))
    assert "flatten" in _shown(render_table(resnet18_report, max_depth=1, width=0, show_free=True))


@given(random_nets())
def test_shown_rows_sum_to_totals_on_random_nets(case: tuple[RandomNet, tuple[int, int, int]]) -> None:
    model, shape = case
    assert_shown_rows_sum_to_totals(torchscan.crawl_module(model, shape, batch_size=2))


def test_summary_shows_free_rows_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    model = FunctionalConv()  # x.flatten(2): a view, folded (nn.Flatten would be a module: never folded)
    torchscan.summary(model, (3, 16, 16), width=0)
    folded = capsys.readouterr().out
    torchscan.summary(model, (3, 16, 16), width=0, show_free=True)
    everything = capsys.readouterr().out
    assert "flatten" not in _shown(folded) and "Folded: 1 bookkeeping row, " in folded
    assert "flatten" in _shown(everything) and "Folded: " not in everything
