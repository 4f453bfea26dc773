"""A comparison of two reports as text, CSV or JSON (reads the :class:`~torchscan.records.Comparison` only)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from types import SimpleNamespace

from torchscan.errors import InputError
from torchscan.records import ROW_METRICS, TOTAL_METRICS, Comparison, Context, RowDiff
from torchscan.render.csv import cell
from torchscan.render.text import visible
from torchscan.render.units import format_bytes, format_count, format_shape

__all__ = ["DIFF_CSV_COLUMNS", "diff_csv", "diff_json", "render_diff"]

_HEADERS = {"params": "Params", "flops": "FLOPs", "macs": "MACs", "dmas": "DMAs", "output_bytes": "Out Bytes"}
_TOTAL_NAMES = {
    "params": "Params",
    "trainable_params": "Trainable params",
    "non_trainable_params": "Non-trainable params",
    "flops": "FLOPs",
    "macs": "MACs",
    "dmas": "DMAs",
    "model_bytes": "Model size",
}
_STATUS = {"both": "", "only_a": "only in A", "only_b": "only in B"}
_GAP = "  "

DIFF_CSV_COLUMNS: tuple[str, ...] = (
    "name",
    "status",
    "depth",
    "parent",
    "type_a",
    "type_b",
    *(f"{metric}_{side}" for metric in ROW_METRICS for side in ("a", "b", "delta")),
)
"""The columns of :func:`diff_csv`, in order (exact integers; an absent side is empty)."""


def _number(metric: str, value: int) -> str:
    """``value`` of ``metric`` for a cell: exact params, bytes with a binary prefix, counts with an SI one."""
    if metric.endswith("params"):
        return f"{value:,}"
    if metric.endswith("bytes"):
        return format_bytes(value)
    return format_count(value)


def _signed(metric: str, delta: int) -> str:
    """A difference with its sign: ``+10,108,160``, ``-1.20G``, ``0``."""
    return ("+" if delta > 0 else "") + _number(metric, delta)


def _change(before: int, delta: int) -> str:
    """The relative change ``delta / before`` (``+86.5%``); ``new`` when ``before`` is 0 and ``delta`` is not."""
    if before == 0:
        return "new" if delta else "0%"
    return f"{100 * delta / before:+.1f}%"


def _labels(rows: Sequence[RowDiff]) -> list[str]:
    """Each row's name under tree guides (``│``, ``├─``, ``└─``), relative to its parent where it extends it."""
    shown = {row.name for row in rows}
    last_child: dict[str, str] = {}
    for row in rows:
        last_child[row.parent] = row.name
    continues: dict[str, bool] = {}
    parents = {row.name: row.parent for row in rows}
    labels = []
    for row in rows:
        continues[row.name] = last_child[row.parent] != row.name
        guides = []
        ancestor = row.parent
        while ancestor in shown:
            guides.append("│    " if continues.get(ancestor) else "     ")
            ancestor = parents[ancestor]
        name = row.name.removeprefix(f"{row.parent}.") if row.parent else row.name
        branch = "├─" if continues[row.name] else "└─"
        labels.append("".join(reversed(guides)) + branch + visible(name))
    return labels


def _type(row: RowDiff) -> str:
    if row.a is not None and row.b is not None and row.a.type != row.b.type:
        return visible(f"{row.a.type} → {row.b.type}")
    return visible(row.row.type)


def _row_cells(row: RowDiff, metrics: Sequence[str]) -> list[str]:
    cells = []
    for metric in metrics:
        a, b = row.value("a", metric), row.value("b", metric)
        cells += [
            "-" if a is None else _number(metric, a),
            "-" if b is None else _number(metric, b),
            _signed(metric, row.delta(metric)),
        ]
    return cells


def _inputs(context: Context) -> str:
    shapes = ", ".join(
        f"{format_shape(shape)} {dtype}" for shape, dtype in zip(context.input_shapes, context.dtypes, strict=False)
    )
    return shapes or "-"


def _side(side: str, label: str, context: Context) -> str:
    """``A: resnet18 (ResNet, input (1, 3, 224, 224) float32)``; the label is left out when it is the side's letter."""
    what = f"{visible(context.model)}, input {_inputs(context)}"
    return f"{side}: {what}" if label == side else f"{side}: {visible(label)} ({what})"


def render_diff(
    comparison: Comparison,
    max_depth: int | None = None,
    metrics: Sequence[str] = ("params", "flops"),
    changed_only: bool = False,
) -> str:
    """B against A as a table: one line per row down to ``max_depth`` (all when None; 0: totals only)
    with each of ``metrics`` (of :data:`~torchscan.records.ROW_METRICS`) in A, in B and ``B − A``, the
    rows only one side has marked; then the totals ``A → B`` with the difference and relative change.
    ``changed_only`` leaves out the rows that are the same on both sides."""
    unknown = [metric for metric in metrics if metric not in ROW_METRICS]
    if unknown:
        raise InputError(f"unknown diff metric(s) {', '.join(unknown)}; choose from {', '.join(ROW_METRICS)}")
    rows = [row for row in comparison.rows_to_depth(max_depth) if row.changed or not changed_only]
    header = ["Layer", "Type"]
    for metric in metrics:
        header += [f"{_HEADERS[metric]} A", f"{_HEADERS[metric]} B", f"Δ {_HEADERS[metric]}"]
    header.append("")
    totals = ["(model)", _model_type(comparison)]
    for metric in metrics:
        if metric == "output_bytes":
            totals += ["", "", ""]
        else:
            a, b = comparison.total("a", metric), comparison.total("b", metric)
            totals += [_number(metric, a), _number(metric, b), _signed(metric, b - a)]
    totals.append("")
    body = [
        [label, _type(row), *_row_cells(row, metrics), _STATUS[row.status]]
        for label, row in zip(_labels(rows), rows, strict=True)
    ]
    table = [header, totals, *body]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    numeric = [False, False, *([True] * 3 * len(metrics)), False]

    def fmt(line: Sequence[str]) -> str:
        cells = [
            text.rjust(w) if right else text.ljust(w) for text, w, right in zip(line, widths, numeric, strict=True)
        ]
        return _GAP.join(cells).rstrip()

    rule = sum(widths) + len(_GAP) * (len(widths) - 1) - (widths[-1] == 0) * len(_GAP)
    lines = [
        _side("A", comparison.label_a, comparison.context_a),
        _side("B", comparison.label_b, comparison.context_b),
        "_" * rule,
        fmt(header),
        "=" * rule,
        fmt(totals),
        *(fmt(line) for line in body),
        "=" * rule,
        *_total_lines(comparison),
        "_" * rule,
        _counts(comparison),
    ]
    return "\n".join(lines)


def _model_type(comparison: Comparison) -> str:
    a, b = comparison.context_a.model, comparison.context_b.model
    return visible(a if a == b else f"{a} → {b}")


def _total_lines(comparison: Comparison) -> list[str]:
    """``Params: A → B (Δ, relative)`` for each total, and the activation peaks when both reports have one."""
    entries = []
    for metric in TOTAL_METRICS:
        a, b = comparison.total("a", metric), comparison.total("b", metric)
        entries.append((_TOTAL_NAMES[metric], _number(metric, a), _number(metric, b), _signed(metric, b - a), a, b))
    peak_a, peak_b, delta = comparison.activation_peak_a, comparison.activation_peak_b, comparison.activation_peak_delta
    if peak_a is not None and peak_b is not None and delta is not None:
        peak = ("Activation peak", format_bytes(peak_a), format_bytes(peak_b), _signed("bytes", delta), peak_a, peak_b)
        entries.append(peak)
    name_width = max(len(entry[0]) for entry in entries) + 1
    a_width = max(len(entry[1]) for entry in entries)
    b_width = max(len(entry[2]) for entry in entries)
    lines = ["Totals, A → B (B − A):"]
    for name, a_text, b_text, delta_text, a, b in entries:
        lines.append(
            f"  {(name + ':').ljust(name_width)} {a_text.rjust(a_width)} → {b_text.rjust(b_width)}"
            f"  ({delta_text}, {_change(a, b - a)})"
        )
    if not comparison.complete:
        lines.append("  (FLOPs, MACs and DMAs are lower bounds: a report has ops it could not count)")
    return lines


def _counts(comparison: Comparison) -> str:
    """How many rows (at every depth) both reports have, how many of those differ, how many one side has."""
    both = [row for row in comparison.rows if row.status == "both"]
    changed = sum(row.changed for row in both)
    return (
        f"Rows: {len(both)} in both ({changed} changed), "
        f"{len(comparison.only_a)} only in A, {len(comparison.only_b)} only in B"
    )


def diff_csv(comparison: Comparison, max_depth: int | None = None) -> str:
    """The rows down to ``max_depth`` as CSV: :data:`DIFF_CSV_COLUMNS`, exact integers, text cells
    neutralised against spreadsheet formulas (:func:`torchscan.render.csv.cell`)."""
    lines: list[str] = []
    writer = csv.writer(SimpleNamespace(write=lines.append), lineterminator="\r\n")
    writer.writerow(DIFF_CSV_COLUMNS)
    for row in comparison.rows_to_depth(max_depth):
        data = row.to_dict()
        writer.writerow([cell(data[column]) for column in DIFF_CSV_COLUMNS])
    return "".join(line.removesuffix("\r\n") + "\n" for line in lines)


def diff_json(comparison: Comparison, max_depth: int | None = None, indent: int | None = 2) -> str:
    """:meth:`Comparison.to_dict` as JSON text."""
    return json.dumps(comparison.to_dict(max_depth), indent=indent) + "\n"
