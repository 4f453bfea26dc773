"""CSV export: round-trips through the csv module with the report's rows and sums."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.gpt2 import gpt2_report
from torchscan.records.rows import is_bookkeeping
from torchscan.render.csv import CSV_COLUMNS, cell, to_csv
from torchscan.report import Report


def test_round_trip_same_rows_and_sums(resnet18_report: Report) -> None:
    records = list(csv.DictReader(io.StringIO(resnet18_report.to_csv())))
    assert len(records) == len(resnet18_report.rows)
    assert tuple(records[0]) == CSV_COLUMNS
    for record, row in zip(records, resnet18_report.rows, strict=True):
        assert record == {column: cell(getattr(row, column)) for column in CSV_COLUMNS}
        assert record["name"] == row.name and int(record["flops"]) == row.flops and int(record["depth"]) == row.depth
        shape = tuple(int(size) for size in record["output_shape"].split("x")) if record["output_shape"] else None
        assert shape == row.output_shape and (record["is_leaf"] == "true") == row.is_leaf
    leaves = [record for record in records if record["is_leaf"] == "true"]
    totals = resnet18_report.totals
    for column in ("flops", "macs", "dmas", "params"):
        assert sum(int(record[column]) for record in leaves) == getattr(totals, column)


def test_depth_limits_rows_and_depth_one_sums_to_totals(resnet18_report: Report) -> None:
    records = list(csv.DictReader(io.StringIO(to_csv(resnet18_report, depth=1))))
    assert [record["name"] for record in records] == [row.name for row in resnet18_report.rows_at_depth(1)]
    assert sum(int(record["flops"]) for record in records) == resnet18_report.totals.flops
    assert sum(int(record["params"]) for record in records) == resnet18_report.totals.params


def test_writes_path_and_file_object(branchy_report: Report, tmp_path: Path) -> None:
    text = branchy_report.to_csv(tmp_path / "report.csv")
    assert (tmp_path / "report.csv").read_text(encoding="utf-8") == text
    buffer = io.StringIO()
    assert branchy_report.to_csv(buffer, depth=1) == buffer.getvalue()
    assert buffer.getvalue().splitlines()[0] == ",".join(CSV_COLUMNS)


def test_per_dim_values_are_x_joined() -> None:
    assert [cell(value) for value in ((3, 3), (0.5, 2), None, "global", True, 7)] == [
        "3x3",
        "0.5x2",
        "",
        "global",
        "true",
        "7",
    ]


def test_every_row_and_its_node() -> None:
    """CSV keeps the bookkeeping rows the table folds, with each functional row's fx node."""
    report = gpt2_report()
    records = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [record["name"] for record in records] == [row.name for row in report.rows]
    assert any(is_bookkeeping(row, report.totals) for row in report.rows)
    for record, row in zip(records, report.rows, strict=True):
        assert record["node"] == (row.node or "")
        assert row.node is None or row.node in report.records
    assert {"transformer.h.0.add", "transformer.h.1.add"} <= {record["name"] for record in records}
