"""A self-contained HTML report (no network fetches) and the compact notebook view."""

from __future__ import annotations

import re
import subprocess
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from torchscan.errors import TorchscanError
from torchscan.records import Row
from torchscan.records.rows import is_bookkeeping
from torchscan.render.collapse import CollapsedNode, collapse
from torchscan.render.dot import (
    ColorBy,
    GraphvizNotFoundError,
    color_name,
    fill_colour,
    measure,
    node_label,
    render_svg,
    to_dot,
)
from torchscan.render.memory import TRAINING_HEADERS, measured_line, peak_where, training_cells
from torchscan.render.text import visible
from torchscan.render.units import format_bytes, format_count, format_percent, format_shape
from torchscan.version import __version__

if TYPE_CHECKING:
    from torchscan.report import Report

__all__ = ["auto_graph_depth", "repr_html", "to_html"]

_MAX_GRAPH_NODES = 40


def _asset(name: str) -> str:
    """A file of ``torchscan/render/assets``, inlined into the page."""
    return resources.files("torchscan.render").joinpath("assets", name).read_text(encoding="utf-8")


_COLUMNS = (
    ("#", "num"),
    ("Layer", "text"),
    ("Type", "text"),
    ("Output shape", "text"),
    ("Output bytes", "num"),
    ("Params", "num"),
    ("FLOPs", "num"),
    ("FLOPs %", "num"),
    ("MACs", "num"),
    ("DMAs", "num"),
    ("Calls", "num"),
)


def _short(row: Row) -> str:
    """The name below its parent row (``layer1.0.add`` under ``layer1.0`` is ``add``), as the tree shows it."""
    prefix = f"{row.parent}."
    return row.name.removeprefix(prefix) if row.parent and row.name.startswith(prefix) else row.name


def _num(value: int, text: str | None = None) -> str:
    """A numeric cell sorting by ``value``; a shortened ``text`` shows the exact value on hover."""
    if text is None:
        return f'<td class="n" data-v="{value}">{value:,}</td>'
    return f'<td class="n" data-v="{value}" title="{value:,}">{escape(text)}</td>'


def _shown(report: Report, show_free: bool) -> tuple[Row, ...]:
    """The rows the table shows: every row, or all but the bookkeeping ones (folded into their parent)."""
    if show_free:
        return report.rows
    return tuple(row for row in report.rows if not is_bookkeeping(row, report.totals))


def _table_rows(report: Report, rows: tuple[Row, ...], interactive: bool) -> list[str]:
    """``<tr>`` lines; ``interactive`` adds the order column and the fold buttons."""
    total = report.totals.flops
    parents = {row.parent for row in rows}
    lines = []
    for order, row in enumerate(rows):
        share = row.flops / total if total else 0.0
        has_children = row.name in parents
        toggle = (
            '<button class="tog" type="button" aria-expanded="true">▾</button>' if interactive and has_children else ""
        )
        spacer = "" if toggle or not interactive else '<span class="tog"></span>'
        number = f'<td class="n" data-v="{order}">{order + 1}</td>' if interactive else ""
        indent = f"padding-left:{(row.depth - 1) * 16 + 4}px"
        kind = "parent" if has_children else "leaf"
        lines.append(
            f'<tr class="{kind}" data-name="{escape(row.name)}" data-parent="{escape(row.parent)}" '
            f'data-depth="{row.depth}" data-order="{order}">'
            f'{number}<td class="name t" style="{indent}" title="{escape(row.name)}">'
            f"{toggle}{spacer}{escape(_short(row))}</td>"
            f'<td class="t">{escape(row.type)}</td><td class="t">{escape(format_shape(row.output_shape))}</td>'
            + _num(row.output_bytes, format_bytes(row.output_bytes))
            + _num(row.params)
            + _num(row.flops, format_count(row.flops))
            + f'<td class="n" data-v="{share:.6f}"><span class="bar" style="width:{round(48 * share)}px"></span>'
            f"{format_percent(row.flops, total)}</td>"
            + _num(row.macs, format_count(row.macs))
            + _num(row.dmas, format_count(row.dmas))
            + _num(row.calls)
            + "</tr>"
        )
    return lines


def _memory(report: Report) -> str:
    """The memory section: static activation peak and where, inference memory, the training table per
    optimizer and the measurement (the data of the text table's memory lines)."""
    memory = report.memory
    if memory is None:
        return '<p class="note">This report has no memory analysis.</p>'
    facts = [
        (
            "Activation peak (static, inputs incl.)",
            format_bytes(memory.activation_peak_bytes),
            f"at {peak_where(memory)}",
        ),
        ("Inference memory (model + activation peak)", format_bytes(memory.inference_peak_bytes), ""),
        ("Saved for backward", format_bytes(memory.saved_activation_bytes), "activations kept by a training step"),
    ]
    cards = "".join(
        f'<div class="card"><div class="k">{escape(key)}</div><div class="v">{escape(value)}</div>'
        + (f'<div class="where">{escape(visible(extra))}</div>' if extra else "")
        + "</div>"
        for key, value, extra in facts
    )
    last = len(TRAINING_HEADERS) - 1
    head = "".join(
        f"<th{'' if index in (0, last) else ' class=n'}>{escape(name)}</th>"
        for index, name in enumerate(TRAINING_HEADERS)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{'' if index in (0, last) else ' class=n'}>{escape(cell)}</td>" for index, cell in enumerate(cells)
        )
        + "</tr>"
        for cells in training_cells(memory)
    )
    measured = measured_line(memory)
    return (
        f'<div class="memrow"><div class="cards">{cards}</div><div><h3>Training step, steady state</h3>'
        f'<table class="mem" id="training"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></div>'
        + (f'<p class="note">{escape(visible(measured))}</p>' if measured else "")
    )


def _cards(report: Report) -> str:
    totals = report.totals
    lower = "" if totals.complete else f'<div class="lower">lower bound: {totals.unknown_ops} op(s) not counted</div>'
    items = [
        ("Total params", f"{totals.params:,}", ""),
        ("Trainable params", f"{totals.trainable_params:,}", ""),
        ("Non-trainable params", f"{totals.non_trainable_params:,}", ""),
        ("Model size", format_bytes(totals.model_bytes), ""),
        ("FLOPs", format_count(totals.flops, "FLOPs"), lower),
        ("MACs", format_count(totals.macs, "MACs"), lower),
        ("DMAs", format_count(totals.dmas, "DMAs"), lower),
    ]
    return "".join(
        f'<div class="card"><div class="k">{escape(key)}</div><div class="v">{escape(value)}</div>{extra}</div>'
        for key, value, extra in items
    )


def _context_line(report: Report) -> str:
    context = report.context
    inputs = ", ".join(format_shape(shape) for shape in context.input_shapes)
    outputs = ", ".join(format_shape(shape) for shape in context.output_shapes)
    mode = "training" if context.training else "eval"
    return (
        f"input {inputs} {'/'.join(context.dtypes)} → output {outputs} · {context.device} · {mode} mode · "
        f"captured with {context.capture} · torch {context.torch_version}"
    )


def _diagnostics(report: Report) -> str:
    if not report.diagnostics:
        return '<p class="note">No diagnostics: every op was counted.</p>'
    items = "".join(
        f'<li><span class="code">[{escape(diagnostic.code)}]</span> {escape(diagnostic.message)}</li>'
        for diagnostic in report.diagnostics
    )
    return f'<ul class="diag">{items}</ul>'


def auto_graph_depth(report: Report, max_nodes: int = _MAX_GRAPH_NODES) -> int:
    """The deepest depth whose collapsed graph has at most ``max_nodes`` row nodes (at least 1)."""
    best = 1
    for depth in range(1, report.max_depth + 1):
        if len(report.rows_at_depth(depth)) > max_nodes:
            break
        best = depth
    return best


def _inline_svg(svg: str) -> str:
    """The ``<svg>`` element of Graphviz output: no XML prolog, DOCTYPE or comments."""
    start = svg.find("<svg")
    return re.sub(r"<!--.*?-->", "", svg[start:], flags=re.DOTALL).strip()


def _flow_fallback(report: Report, depth: int, color_by: ColorBy) -> str:
    """A plain-HTML picture of the collapsed graph: nodes in execution order, non-sequential inputs named."""
    graph = collapse(report, depth)
    nodes: dict[str, CollapsedNode] = {key: data["node"] for key, data in graph.nodes(data=True)}
    measures = {key: measure(node.row, color_by) for key, node in nodes.items() if node.row is not None}
    peak = max(measures.values(), default=0)
    names = {key: visible(node.label) for key, node in nodes.items()}
    items, previous = [], None
    for key, node in nodes.items():
        label, tooltip = node_label(node, report)
        colour = fill_colour(measures[key] / peak if peak else 0.0) if key in measures else "#e8eef7"
        sources = [names[source] for source in graph.predecessors(key) if source != previous]
        extra = f'<div class="from">also from: {escape(", ".join(sources))}</div>' if sources else ""
        body = "<br>".join(escape(line) for line in label.split("\n"))
        items.append(f'<li class="gnode" style="background:{colour}" title="{escape(tooltip)}">{body}{extra}</li>')
        previous = key
    return f'<ol class="flow">{"".join(items)}</ol>'


def _graph_section(report: Report, depth: int, color_by: ColorBy) -> str:
    """The Graphviz picture, or the plain flow and a note saying why when Graphviz is missing or fails."""
    try:
        svg = _inline_svg(render_svg(to_dot(report, depth=depth, color_by=color_by)))
    except (TorchscanError, OSError, subprocess.SubprocessError) as error:
        why = "is not installed" if isinstance(error, GraphvizNotFoundError) else "failed"
        note = f"Graphviz {why}, so a simplified flow is shown instead of the picture: {error}."
        return f'<p class="note">{escape(visible(note))}</p>{_flow_fallback(report, depth, color_by)}'
    return f'<div class="svg-wrap">{svg}</div>'


def to_html(
    report: Report,
    path: str | Path | None = None,
    *,
    graph_depth: int | None = None,
    color_by: ColorBy = "flops",
    table_depth: int = 2,
    show_free: bool = False,
) -> str:
    """One self-contained HTML page (inline CSS, JS and SVG; nothing fetched), written to ``path`` if given.

    Bookkeeping rows (:func:`~torchscan.records.rows.is_bookkeeping`) are folded into their parent in the
    table and the graph, as in the text table, unless ``show_free``.

    It holds the context, the totals, the memory section (static activation peak and where,
    inference memory, the training table per optimizer), the diagnostics, the layer table (sortable columns,
    collapsible tree, opened to ``table_depth``) and the graph collapsed to ``graph_depth``
    (default: the deepest level with at most 40 nodes), as an SVG when Graphviz is installed
    and as a plain-HTML flow otherwise (or when Graphviz fails). Without JavaScript every row is shown.
    """

    depth = graph_depth if graph_depth is not None else auto_graph_depth(report)
    title = f"torchscan · {report.context.model}"
    headers = "".join(
        f'<th data-type="{kind}" data-first="{"asc" if kind == "text" or name == "#" else "desc"}"'
        f"{' class=n' if kind == 'num' else ''}>{escape(name)}</th>"
        for name, kind in _COLUMNS
    )
    depth_buttons = "".join(
        f'<button type="button" data-depth-button="{level}">{level}</button>' for level in range(1, report.max_depth)
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_asset("report.css")}</style>
</head>
<body>
<header>
<h1>{escape(report.context.model)}</h1>
<p class="context">{escape(_context_line(report))}</p>
</header>
<div class="cards" id="totals">{_cards(report)}</div>
<section class="box" id="memory"><h2>Memory</h2>{_memory(report)}</section>
<section class="box" id="diagnostics"><h2>Diagnostics</h2>{_diagnostics(report)}</section>
<div class="panes">
<section class="box" id="summary">
<h2>Layers</h2>
<div class="tools">Show depth: {depth_buttons}<button type="button" data-depth-button="0">all</button>
<span class="note">Click a column to sort, ▾ to fold.</span></div>
<div class="scroll">
<table id="layers" data-initial-depth="{table_depth}">
<thead><tr>{headers}</tr></thead>
<tbody>
{chr(10).join(_table_rows(report, _shown(report, show_free), interactive=True))}
</tbody>
</table>
</div>
</section>
<section class="box" id="graph">
<h2>Graph (depth {depth}, colour: share of {escape(color_name(color_by))})</h2>
<div class="scroll">{_graph_section(report, depth, color_by)}</div>
</section>
</div>
<footer>Generated by torchscan {escape(__version__)}. This file is self-contained and works offline.</footer>
<script>{_asset("report.js")}</script>
</body>
</html>
"""
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page


def repr_html(report: Report, depth: int = 1) -> str:
    """The compact notebook view: totals and the table down to ``depth``; no script, no graph."""
    totals = report.totals
    lower = "" if totals.complete else f" (lower bound: {totals.unknown_ops} op(s) not counted)"
    headers = "".join(f"<th>{escape(name)}</th>" for name, _ in _COLUMNS[1:])
    body = "".join(_table_rows(report, report.rows_to_depth(depth), interactive=False))
    diagnostics = f"<p>{len(report.diagnostics)} diagnostic(s): see <code>report.diagnostics</code>.</p>" * bool(
        report.diagnostics
    )
    return (
        '<div class="torchscan-report">'
        f"<p><b>{escape(report.context.model)}</b>: {totals.params:,} params "
        f"({format_bytes(totals.model_bytes)}), {escape(format_count(totals.flops, 'FLOPs'))}, "
        f"{escape(format_count(totals.macs, 'MACs'))}, {escape(format_count(totals.dmas, 'DMAs'))}{escape(lower)}</p>"
        f'<table><thead><tr style="text-align:left">{headers}</tr></thead><tbody>{body}</tbody></table>'
        f"{diagnostics}</div>"
    )
