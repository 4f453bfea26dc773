"""Graphviz DOT source of the report graph (modules collapsed to a depth) and its SVG via ``dot``."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from torchscan.errors import TorchscanError
from torchscan.records import Row
from torchscan.render.collapse import CollapsedNode, collapse
from torchscan.render.text import visible
from torchscan.render.units import format_bytes, format_count, format_percent, format_shape

if TYPE_CHECKING:
    from torchscan.report import Report

__all__ = ["ColorBy", "GraphvizNotFoundError", "to_dot", "to_svg"]

ColorBy = Literal["flops", "memory", "params"]
"""What the fill colour shows: FLOPs share, memory-access (DMAs) share, or parameter share."""

_COLOR_NAMES = MappingProxyType({"flops": "FLOPs", "memory": "memory accesses (DMAs)", "params": "parameters"})
_LOW = (0xFF, 0xF5, 0xEB)  # light cream, for ~0 share
_HIGH = (0xE6, 0x55, 0x0D)  # orange, for the heaviest node
_INSTALL = (
    "the `dot` program of Graphviz is needed to render SVG and was not found on PATH; install Graphviz "
    "(Debian/Ubuntu: `sudo apt-get install graphviz`, Fedora: `sudo dnf install graphviz`, macOS: "
    "`brew install graphviz`, conda: `conda install -c conda-forge graphviz`, Windows/others: "
    "https://graphviz.org/download/) or export the source with `to_dot()`"
)


class GraphvizNotFoundError(TorchscanError):
    """The Graphviz ``dot`` program is not installed."""


def _quote(text: str) -> str:
    """A DOT double-quoted string that no text can break: ``\\n`` in ``text`` becomes a centred line break,
    other control characters show :func:`visible`-ly, ``\\`` and ``"`` are escaped and ``&`` is written
    ``&amp;`` (Graphviz reads entities in labels)."""
    lines = (visible(line).replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"') for line in text.split("\n"))
    return '"' + "\\n".join(lines) + '"'


def color_name(color_by: ColorBy) -> str:
    """What ``color_by`` measures, in words (ValueError for an unknown choice)."""
    if color_by not in _COLOR_NAMES:
        raise ValueError(f"color_by must be 'flops', 'memory' or 'params', got {color_by!r}")
    return _COLOR_NAMES[color_by]


def measure(row: Row, color_by: ColorBy) -> int:
    """The number of ``row`` that ``color_by`` colours."""
    color_name(color_by)
    return {"flops": row.flops, "memory": row.dmas, "params": row.params}[color_by]


def fill_colour(fraction: float) -> str:
    """Colour of a share relative to the largest one (square-root scale, so small shares show)."""
    weight = math.sqrt(min(max(fraction, 0.0), 1.0))
    channels = (round(low + (high - low) * weight) for low, high in zip(_LOW, _HIGH, strict=True))
    return "#" + "".join(f"{channel:02x}" for channel in channels)


def node_label(node: CollapsedNode, report: Report) -> tuple[str, str]:
    """The (label, tooltip) of a collapsed node: ``\\n``-separated lines, names shown :func:`visible`-ly."""
    if node.row is None:
        lines = [node.label if node.kind == "output" else f"input {node.label}", format_shape(node.shape)]
        if node.dtype:
            lines.append(node.dtype)
        return "\n".join(lines), " ".join(lines)
    row, totals = node.row, report.totals
    name, kind = visible(row.name), visible(row.type)
    if row.calls > 1:  # one node per call: numbers are the row's, over all its calls
        name = f"{name} (call {node.call + 1} of {row.calls})"
    label = "\n".join(
        [
            name,
            kind,
            format_shape(row.output_shape),
            f"{format_count(row.params)} params · {format_count(row.flops, 'FLOPs')} "
            f"({format_percent(row.flops, totals.flops)})",
        ]
    )
    tooltip = (
        f"{name} ({kind}): output {format_shape(row.output_shape)}, {row.params:,} params, "
        f"{row.flops:,} FLOPs, {row.macs:,} MACs, {row.dmas:,} DMAs, "
        f"{format_bytes(row.param_bytes + row.buffer_bytes)} params+buffers"
        + (f", {row.unknown_ops} op(s) not counted" if row.unknown_ops else "")
        + (f" (numbers over all {row.calls} calls)" if row.calls > 1 else "")
    )
    return label, tooltip


def to_dot(report: Report, depth: int | None = None, color_by: ColorBy = "flops") -> str:
    """Graphviz source of the model graph, modules collapsed to ``depth`` (None: every leaf).

    A collapsed module is one node with its aggregated numbers (type, output shape, params,
    FLOPs and FLOPs share); inputs and output are ellipses. The fill colour grows with the
    node's share of ``color_by`` (``"memory"``: memory accesses, DMAs).
    """
    what = color_name(color_by)
    graph = collapse(report, depth)
    measures = {key: measure(data["node"].row, color_by) for key, data in graph.nodes(data=True) if data["node"].row}
    peak = max(measures.values(), default=0)
    title = (
        f"{visible(report.context.model)}: {format_count(report.totals.flops, 'FLOPs')}, "
        f"{format_count(report.totals.params)} params (colour: share of {what})"
    )
    lines = [
        "digraph torchscan {",
        "  graph [rankdir=TB, ranksep=0.3, nodesep=0.3, fontname=Helvetica, fontsize=12, labelloc=t,"
        f" label={_quote(title)}];",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=10, fillcolor="#ffffff"];',
        '  edge [color="#555555", arrowsize=0.6];',
    ]
    for key, data in graph.nodes(data=True):
        node: CollapsedNode = data["node"]
        label, tooltip = node_label(node, report)
        attrs = [f"label={_quote(label)}", f"tooltip={_quote(tooltip)}"]
        if node.row is None:
            attrs += ["shape=ellipse", 'fillcolor="#e8eef7"']
        else:
            attrs.append(f'fillcolor="{fill_colour(measures[key] / peak if peak else 0.0)}"')
            if node.row.unknown_ops:
                attrs += ['color="#c0392b"', "penwidth=2"]
        lines.append(f"  {key} [{', '.join(attrs)}];")
    lines += [f"  {source} -> {target};" for source, target in graph.edges()]
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_program() -> str:
    """Path of Graphviz's ``dot`` or :class:`GraphvizNotFoundError` saying how to install it."""
    program = shutil.which("dot")
    if program is None:
        raise GraphvizNotFoundError(_INSTALL)
    return program


def render_svg(source: str, timeout: float = 300.0) -> str:
    """SVG text of DOT ``source``, rendered by the ``dot`` program."""
    result = subprocess.run(
        [dot_program(), "-Tsvg"], input=source, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise TorchscanError(f"graphviz `dot` failed (exit {result.returncode}): {result.stderr.strip()}")
    return result.stdout


def to_svg(
    report: Report, path: str | Path | None = None, depth: int | None = None, color_by: ColorBy = "flops"
) -> str:
    """The :func:`to_dot` picture as SVG (written to ``path`` when given). Needs Graphviz's ``dot``."""
    svg = render_svg(to_dot(report, depth=depth, color_by=color_by))
    if path is not None:
        Path(path).write_text(svg, encoding="utf-8")
    return svg
