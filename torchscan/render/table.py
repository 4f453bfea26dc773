"""The keras-style text table of a report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchscan.records import Row
from torchscan.render.memory import memory_lines
from torchscan.render.text import visible
from torchscan.render.units import format_count, format_mib, format_rfield, format_shape

if TYPE_CHECKING:
    from torchscan.report import Report

__all__ = ["render_table"]

_HEADERS = ("Layer", "Type", "Output Shape", "Param #")


def _label(row: Row) -> str:
    if row.kind == "module" or row.kind == "parameter":
        prefix = f"{row.parent}." if row.parent else ""
        return row.name.removeprefix(prefix)
    return row.name


def render_table(report: Report, max_depth: int | None = None) -> str:
    """The summary table down to ``max_depth`` (all depths when None), then totals and diagnostics.

    Names, types and messages are shown :func:`visible`-ly (an ESC as ``\\x1b``, a line break as ``\\n``):
    one line per row, no escape sequence reaches the terminal.
    """
    rows = report.rows_to_depth(max_depth)
    parents = {row.name: row.parent for row in rows}
    labels = _labels(rows, parents)
    totals = report.totals
    with_rf = any(row.receptive_field is not None for row in report.rows)
    headers = (*_HEADERS, "Receptive field") if with_rf else _HEADERS
    body = [
        (visible(label), visible(row.type), format_shape(row.output_shape), f"{row.params:,}")
        + ((format_rfield(row.receptive_field),) if with_rf else ())
        for label, row in zip(labels, rows, strict=True)
    ]
    outputs = report.context.output_shapes
    model = visible(report.context.model)
    root = (
        model,
        model,
        format_shape(outputs[0] if outputs else None),
        f"{totals.params:,}",
    ) + (("",) if with_rf else ())
    table = [headers, root, *body]
    widths = [max(len(line[i]) for line in table) + 3 for i in range(len(headers))]
    width = sum(widths)

    def fmt(line: tuple[str, ...]) -> str:
        return "".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()

    partial = "" if totals.complete else f" (lower bound: {totals.unknown_ops} op(s) not counted, see below)"
    lines = ["_" * width, fmt(headers), "=" * width, fmt(root), *(fmt(line) for line in body), "=" * width]
    lines += [
        f"Trainable params: {totals.trainable_params:,}",
        f"Non-trainable params: {totals.non_trainable_params:,}",
        f"Total params: {totals.params:,}",
        "-" * width,
        f"Model size (params + buffers): {format_mib(totals.model_bytes)}",
        "-" * width,
        f"Floating Point Operations on forward: {format_count(totals.flops, 'FLOPs')}{partial}",
        f"Multiply-Accumulations on forward: {format_count(totals.macs, 'MACs')}{partial}",
        f"Direct memory accesses on forward: {format_count(totals.dmas, 'DMAs')}{partial}",
        "_" * width,
    ]
    if report.memory is not None:
        lines += [*memory_lines(report.memory), "_" * width]
    if report.diagnostics:
        lines.append("Diagnostics:")
        lines += [f"- [{diagnostic.code}] {diagnostic.message}" for diagnostic in report.diagnostics]
    return "\n".join(visible(line) for line in lines)  # footers (memory, diagnostics) may quote names


def _labels(rows: tuple[Row, ...], parents: dict[str, str]) -> list[str]:
    last_child: dict[str, str] = {}
    for row in rows:
        last_child[row.parent] = row.name
    continues: dict[str, bool] = {}
    labels = []
    for row in rows:
        is_last = last_child[row.parent] == row.name
        continues[row.name] = not is_last
        guides = []
        ancestor = row.parent
        while ancestor:
            guides.append("│    " if continues.get(ancestor) else "     ")
            ancestor = parents.get(ancestor, "")
        labels.append("".join(reversed(guides)) + ("└─" if is_last else "├─") + _label(row))
    return labels
