"""The keras-style text table of a report: columns chosen by name, fitted to a width.

The Layer column (the module tree) always comes first; the others are chosen from :data:`COLUMNS`
by name or by a preset of :data:`PRESETS` (:func:`parse_columns`). When a width is known (the
terminal's, or ``width=``) and the table is wider, the Layer and Type cells are shortened with ``…``
down to a minimum; past that the columns continue in further blocks, each repeating the Layer column.
Every table line fits the width and every row is one line.
"""

from __future__ import annotations

import difflib
import shutil
import textwrap
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

import torch

from torchscan.errors import InputError
from torchscan.records import NodeRecord, OpCall, Row, node_records
from torchscan.records.frozen import frozen_record
from torchscan.records.rows import is_bookkeeping
from torchscan.render.graph_attrs import leaf_row, rows_by_node
from torchscan.render.memory import memory_lines
from torchscan.render.text import visible
from torchscan.render.units import format_bytes, format_count, format_percent, format_rfield, format_shape

if TYPE_CHECKING:
    from torchscan.report import Report

__all__ = ["COLUMNS", "PRESETS", "Column", "parse_columns", "render_table", "wants_receptive_field"]


@frozen_record
class Column:
    """A column of the table: its name (as passed to ``columns=``), header, alignment and meaning."""

    name: str
    header: str
    numeric: bool
    """Right-aligned; never shortened."""
    doc: str


COLUMNS: Mapping[str, Column] = MappingProxyType(
    {
        column.name: column
        for column in (
            Column("type", "Type", False, "module class, or the function / method called"),
            Column("input_shape", "Input Shape", False, "first tensor read by the row's first op (first call)"),
            Column("output_shape", "Output Shape", False, "first output of the first call"),
            Column("kernel", "Kernel", False, "kernel size of a convolution or pooling row"),
            Column("params", "Param #", True, "parameters owned by the subtree (exact)"),
            Column("params_percent", "Param %", True, "params / total params"),
            Column("flops", "FLOPs", True, "floating point operations on forward (k/M/G/T, 3 digits)"),
            Column("flops_percent", "FLOPs %", True, "flops / total FLOPs"),
            Column("macs", "MACs", True, "multiply-accumulations on forward"),
            Column("dmas", "DMAs", True, "direct memory accesses (element reads + writes) on forward"),
            Column("output_bytes", "Output Bytes", True, "bytes of the first call's output tensors (B/KiB/MiB/GiB)"),
            Column("receptive_field", "Receptive field", False, "per spatial dim (needs receptive_field=True)"),
            Column("calls", "Calls", True, "times the module was called in one forward"),
        )
    }
)
"""Every column by name, in the order of the ``"all"`` preset."""

PRESETS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "default": ("type", "output_shape", "params", "receptive_field"),
        "cost": ("type", "output_shape", "params", "flops", "flops_percent", "macs", "dmas", "receptive_field"),
        "memory": ("type", "output_shape", "params", "output_bytes", "calls", "receptive_field"),
        "all": tuple(COLUMNS),
    }
)
"""Named sets of columns. A preset's ``receptive_field`` is shown only when the report has receptive
fields (``receptive_field=True``); named on its own it must have them."""

_GAPS = (3, 2)
"""Spaces between columns: the wider when the table fits, else the narrower."""
_MIN_WIDTH = 40
"""The narrowest width honoured (a smaller ``width`` is raised to it)."""
_MIN_RULE = 64
"""Rules are at least this long (the footer lines are about as long), within the width."""
_MIN_CELL = MappingProxyType({"layer": 24, "type": 12})
"""How far text columns may be shortened before the table continues in another block."""
_CONV_FUNCTIONS = (
    torch.conv1d,
    torch.conv2d,
    torch.conv3d,
    torch.conv_transpose1d,
    torch.conv_transpose2d,
    torch.conv_transpose3d,
)
"""``F.conv2d`` and the rest (the same objects): their kernel is the weight's spatial shape."""


def _expand(spec: str | Sequence[str] | None) -> list[tuple[str, bool]]:
    """``(column, named explicitly)`` in order, presets expanded, duplicates dropped; InputError on a bad name."""
    if spec is None:
        spec = "default"
    items = [spec] if isinstance(spec, str) else list(spec)
    names = [part.strip().lower().replace("-", "_") for item in items for part in str(item).split(",")]
    names = [name for name in names if name]
    if not names:
        raise InputError(f"no columns given; {_valid_names()}")
    chosen: dict[str, bool] = {}
    for name in names:
        if name in PRESETS:
            for member in PRESETS[name]:
                chosen.setdefault(member, False)
        elif name in COLUMNS:
            chosen[name] = True
        else:
            close = difflib.get_close_matches(name, [*COLUMNS, *PRESETS], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"unknown column {name!r}{hint}; {_valid_names()}")
    return list(chosen.items())


def _valid_names() -> str:
    return f"valid columns: {', '.join(COLUMNS)}; presets: {', '.join(PRESETS)}"


def parse_columns(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """The column names of ``spec``: a name, a preset, a comma-separated list of them (``"cost,kernel"``)
    or a sequence of those; None is ``"default"``. Case and ``-``/``_`` are ignored. Raises
    :class:`~torchscan.errors.InputError` listing the valid names (and the closest one) on a bad name."""
    return tuple(name for name, _ in _expand(spec))


def wants_receptive_field(spec: str | Sequence[str] | None) -> bool:
    """True when ``spec`` names ``receptive_field`` itself (not through a preset): the report needs
    ``receptive_field=True`` for it."""
    return ("receptive_field", True) in _expand(spec)


@frozen_record
class _Facts:
    """What some columns read besides the row: first input shapes and kernels by row name."""

    report: Report
    inputs: Mapping[str, tuple[int, ...]]
    kernels: Mapping[str, str]


def _kernel(call: OpCall) -> str | None:
    """``"3x3"`` for a convolution or pooling call (``kernel_size``, or a functional conv's weight)."""
    size = call.attrs.get("kernel_size")
    weight = call.spec("weight")
    is_conv = any(call.target is function for function in _CONV_FUNCTIONS)
    if size is None and is_conv and weight is not None and weight.ndim >= 3:
        size = weight.shape[2:]
    if isinstance(size, int):
        spatial = max(call.outputs[0].ndim - 2, 1) if call.outputs else 1
        size = (size,) * spatial
    if not isinstance(size, (tuple, list)) or not size:
        return None
    return "x".join(str(value) for value in size)


def _facts(report: Report, names: Sequence[str]) -> _Facts:
    """First input shape and kernel of each row, read from the report's records when those columns are shown.

    A row's input is the first tensor input of the first op counted in it (execution order), so a
    module's input at its first call; its kernel that of its first op when the row is a leaf."""
    inputs: dict[str, tuple[int, ...]] = {}
    kernels: dict[str, str] = {}
    if "input_shape" not in names and "kernel" not in names:
        return _Facts(report, inputs, kernels)
    rows = {row.name: row for row in report.rows}
    by_node = rows_by_node(report.rows)
    records: list[NodeRecord] = node_records(report.records) if report.records.number_of_nodes() else []
    for record in records:
        name = leaf_row(record, rows, by_node) if record.call is not None else None
        if name is None or record.call is None:
            continue
        if name not in kernels and rows[name].is_leaf:
            kernels[name] = _kernel(record.call) or "-"
        if record.call.inputs:
            shape = record.call.inputs[0].shape
            while name and name not in inputs:
                inputs[name] = shape
                name = rows[name].parent
    return _Facts(report, inputs, kernels)


def _root_output_bytes(report: Report) -> int | None:
    records = node_records(report.records) if report.records.number_of_nodes() else []
    outputs = [record for record in records if record.op == "output"]
    return sum(spec.nbytes for spec in outputs[0].outputs) if outputs else None


_CELLS: Mapping[str, Callable[[Row, _Facts], str]] = MappingProxyType(
    {
        "type": lambda row, _: visible(row.type),
        "input_shape": lambda row, facts: format_shape(facts.inputs.get(row.name)),
        "output_shape": lambda row, _: format_shape(row.output_shape),
        "kernel": lambda row, facts: facts.kernels.get(row.name, "-"),
        "params": lambda row, _: f"{row.params:,}",
        "params_percent": lambda row, facts: format_percent(row.params, facts.report.totals.params),
        "flops": lambda row, _: format_count(row.flops),
        "flops_percent": lambda row, facts: format_percent(row.flops, facts.report.totals.flops),
        "macs": lambda row, _: format_count(row.macs),
        "dmas": lambda row, _: format_count(row.dmas),
        "output_bytes": lambda row, _: format_bytes(row.output_bytes),
        "receptive_field": lambda row, _: format_rfield(row.receptive_field) + "*" * row.receptive_field_statistics,
        "calls": lambda row, _: str(row.calls),
    }
)


def _root_cells(report: Report, names: Sequence[str]) -> list[str]:
    """The model's own line: its totals where a column has one, its input and output shapes."""
    context, totals = report.context, report.totals
    model = visible(context.model)
    output_bytes = _root_output_bytes(report) if "output_bytes" in names else None
    cells = {
        "type": model,
        "input_shape": format_shape(context.input_shapes[0] if context.input_shapes else None),
        "output_shape": format_shape(context.output_shapes[0] if context.output_shapes else None),
        "params": f"{totals.params:,}",
        "params_percent": format_percent(totals.params, totals.params),
        "flops": format_count(totals.flops),
        "flops_percent": format_percent(totals.flops, totals.flops),
        "macs": format_count(totals.macs),
        "dmas": format_count(totals.dmas),
        "output_bytes": format_bytes(output_bytes) if output_bytes is not None else "-",
        "calls": "1",
    }
    return [model, *(cells.get(name, "") for name in names)]


def _shown(report: Report, spec: str | Sequence[str] | None) -> list[str]:
    """The columns of ``spec`` this report can fill (a preset's receptive field only when computed)."""
    has_rf = any(row.receptive_field is not None for row in report.rows)
    shown = []
    for name, explicit in _expand(spec):
        if name == "receptive_field" and not has_rf:
            if explicit:
                raise InputError(
                    "the receptive_field column needs a report made with receptive_field=True "
                    "(summary(..., columns=...) turns it on when the column is named; CLI: --receptive-field)"
                )
            continue
        shown.append(name)
    return shown


def _clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one ``…`` when cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


@frozen_record
class _Block:
    """One block of the table: column indices (0 is Layer) and their widths."""

    columns: tuple[int, ...]
    widths: tuple[int, ...]


def _layout(names: Sequence[str], natural: Sequence[int], limit: int | None) -> tuple[list[_Block], int]:
    """Blocks and the gap between columns so that every line fits ``limit`` (None: no limit)."""
    count = len(natural)
    everything = tuple(range(count))
    for gap in _GAPS:
        if limit is None or sum(natural) + gap * (count - 1) <= limit:
            return [_Block(everything, tuple(natural))], gap
    assert limit is not None
    gap = _GAPS[-1]
    keys = ["layer", *names]
    minimum = [min(natural[i], _MIN_CELL.get(keys[i], natural[i])) for i in range(count)]
    widths = list(natural)
    excess = sum(widths) + gap * (count - 1) - limit
    while excess > 0:  # shorten the widest shortenable column by one
        candidates = [i for i in range(count) if widths[i] > minimum[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    if excess <= 0:
        return [_Block(everything, tuple(widths))], gap
    layer = min(natural[0], max(minimum[0], limit // 3))  # too many columns: blocks of them beside Layer
    room = limit - layer - gap
    groups: list[list[int]] = [[]]
    used = 0
    for index in range(1, count):
        width = min(natural[index], room)
        if groups[-1] and used + gap + width > room:
            groups.append([])
            used = 0
        used += (gap if groups[-1] else 0) + width
        groups[-1].append(index)
    return [_Block((0, *group), (layer, *(min(natural[i], room) for i in group))) for group in groups], gap


def _terminal_width(width: int | None) -> int | None:
    """``width`` (0: no limit), else the terminal's (``COLUMNS`` or the tty; no limit when there is none)."""
    columns = shutil.get_terminal_size(fallback=(0, 0)).columns if width is None else width
    return max(columns, _MIN_WIDTH) if columns > 0 else None


def render_table(
    report: Report,
    max_depth: int | None = None,
    columns: str | Sequence[str] | None = None,
    width: int | None = None,
    show_free: bool = False,
) -> str:
    """The summary table down to ``max_depth`` (all depths when None), then totals, memory and diagnostics.

    ``columns``: names of :data:`COLUMNS` and presets of :data:`PRESETS` (see :func:`parse_columns`);
    default ``"default"`` (Type, Output Shape, Param #, and the receptive field when computed).
    ``width``: the characters a line may take (0: no limit; None: the terminal's width, no limit when
    output is not a terminal). Names, types and messages are shown :func:`visible`-ly (an ESC as
    ``\\x1b``, a line break as ``\\n``): one line per row, no escape sequence reaches the terminal.
    Bookkeeping rows (:func:`~torchscan.records.rows.is_bookkeeping`: views, indexing, small
    factories and casts) are folded into their parents, a footer line counting them, unless
    ``show_free``; no number shown changes.
    """
    names = _shown(report, columns)
    limit = _terminal_width(width)
    rows = report.rows_to_depth(max_depth)
    folded: tuple[Row, ...] = ()
    if not show_free:
        folded = tuple(row for row in rows if is_bookkeeping(row, report.totals))
        rows = tuple(row for row in rows if not is_bookkeeping(row, report.totals))
    facts = _facts(report, names)
    header = ["Layer", *(COLUMNS[name].header for name in names)]
    root = _root_cells(report, names)
    body = [
        [visible(label), *(_CELLS[name](row, facts) for name in names)]
        for label, row in zip(_labels(rows), rows, strict=True)
    ]
    table = [header, root, *body]
    natural = [max(len(line[i]) for line in table) for i in range(len(header))]
    blocks, gap = _layout(names, natural, limit)
    numeric = [False, *(COLUMNS[name].numeric for name in names)]

    def fmt(line: Sequence[str], block: _Block) -> str:
        cells = []
        for index, size in zip(block.columns, block.widths, strict=True):
            text = _clip(line[index], size)
            cells.append(text.rjust(size) if numeric[index] else text.ljust(size))
        return (" " * gap).join(cells).rstrip()

    widest = max(sum(block.widths) + gap * (len(block.widths) - 1) for block in blocks)
    rule = max(widest, min(_MIN_RULE, limit or _MIN_RULE))
    lines: list[str] = []
    for number, block in enumerate(blocks):
        if number:
            lines.append("")
        lines += ["_" * rule, fmt(header, block), "=" * rule, fmt(root, block), *(fmt(line, block) for line in body)]
        lines.append("=" * rule)
    lines += [visible(line) for line in _footer(report, rule, folded)]  # footers (memory, diagnostics) may quote names
    if limit is not None:
        lines = [wrapped for line in lines for wrapped in _wrap(line, limit)]
    return "\n".join(lines)


def _footer(report: Report, rule: int, folded: Sequence[Row]) -> list[str]:
    totals = report.totals
    partial = "" if totals.complete else f" (lower bound: {totals.unknown_ops} op(s) not counted, see below)"
    lines = []
    if any(row.receptive_field_statistics for row in report.rows):
        lines += [
            "* statistics over positions on the way (batch norm in training, group/instance norm, layer norm "
            "over positions): strictly every output there depends on the whole input",
            "-" * rule,
        ]
    if folded:  # the folded rows' DMAs: with them the shown rows at each depth sum to the totals
        dmas = format_count(sum(row.dmas for row in folded), "DMAs")
        rows = f"{len(folded)} bookkeeping row{'s' * (len(folded) > 1)}"
        lines += [f"Folded: {rows}, {dmas} (show_free=True / --all-rows)", "-" * rule]
    lines += [
        f"Trainable params: {totals.trainable_params:,}",
        f"Non-trainable params: {totals.non_trainable_params:,}",
        f"Total params: {totals.params:,}",
        "-" * rule,
        f"Model size (params + buffers): {format_bytes(totals.model_bytes)}",
        "-" * rule,
        f"Floating Point Operations on forward: {format_count(totals.flops, 'FLOPs')}{partial}",
        f"Multiply-Accumulations on forward: {format_count(totals.macs, 'MACs')}{partial}",
        f"Direct memory accesses on forward: {format_count(totals.dmas, 'DMAs')}{partial}",
        "_" * rule,
    ]
    if report.memory is not None:
        lines += [*memory_lines(report.memory), "_" * rule]
    if report.diagnostics:
        lines.append("Diagnostics:")
        lines += [f"- [{diagnostic.code}] {diagnostic.message}" for diagnostic in report.diagnostics]
    return lines


def _wrap(line: str, limit: int) -> list[str]:
    """A footer line broken at spaces to fit ``limit`` (continuations indented); table lines already fit."""
    if len(line) <= limit:
        return [line]
    indent = " " * min(len(line) - len(line.lstrip()) + 2, limit // 2)
    return textwrap.wrap(line, limit, subsequent_indent=indent, break_on_hyphens=False) or [line]


def _label(row: Row) -> str:
    """The name under its parent: ``conv1``, ``add_1`` (the full name is ``parent.`` + label)."""
    return row.name.removeprefix(f"{row.parent}.") if row.parent else row.name


def _labels(rows: tuple[Row, ...]) -> list[str]:
    """Each row's name under tree guides (``│``, ``├─``, ``└─``)."""
    parents = {row.name: row.parent for row in rows}
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
