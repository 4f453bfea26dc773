"""The report: frozen rows, totals, diagnostics and context; roll-up views by depth; exports.

The records it holds live in :mod:`torchscan.records`; its export methods are thin delegates to
:mod:`torchscan.render`, which reads the report and its records only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, field
from typing import TYPE_CHECKING, Any

import networkx as nx

from torchscan.records import SCHEMA_VERSION, Context, Diagnostic, MemoryReport, Row, Totals
from torchscan.records.deferred import deferred_field
from torchscan.records.frozen import frozen_record
from torchscan.render.csv import to_csv
from torchscan.render.dot import to_dot, to_svg
from torchscan.render.graph_attrs import plain_graph
from torchscan.render.html import repr_html, to_html
from torchscan.render.json import to_json
from torchscan.render.table import render_table
from torchscan.render.text import visible
from torchscan.render.units import format_count

if TYPE_CHECKING:
    from pathlib import Path
    from typing import TextIO

    from torchscan.render.dot import ColorBy

__all__ = ["SCHEMA_VERSION", "Context", "Diagnostic", "Report", "Row", "Totals"]


@frozen_record
class Report:
    """Everything torchscan measured about one model and input."""

    rows: tuple[Row, ...] = deferred_field()
    """One row per module and functional call in tree order. A report made by an analysis makes them on their first
    read, from plain records (a reader of the totals alone does not pay for them): the same rows whenever read."""
    totals: Totals
    diagnostics: tuple[Diagnostic, ...] = deferred_field()
    """What the analysis noticed (unknown ops, fallbacks, hooks not run, unused parameters…); the one naming unused
    parameters reads the rows, so a report made by an analysis makes them on their first read too."""
    context: Context
    records: nx.DiGraph = field(compare=False, repr=False, default_factory=nx.DiGraph)
    """The pipeline's graph: a frozen ``NodeRecord`` (and ``Cost``) per fx node, read by the passes."""
    memory: MemoryReport | None = deferred_field(default=None, compare=False)
    """Static inference peak, training estimates, and a real measurement when asked for. A report made by an
    analysis makes it on its first read, from plain records (a fifth to a quarter of the analysis's time, which a
    reader of the counts alone does not pay): the same values whenever it is read."""

    def __repr__(self) -> str:
        """One line: model, params, FLOPs, MACs and whether the counts are complete."""
        totals = self.totals
        complete = "complete" if totals.complete else f"lower bound, {totals.unknown_ops} op(s) not counted"
        return (
            f"<torchscan Report {visible(self.context.model)}: {format_count(totals.params)} params, "
            f"{format_count(totals.flops, 'FLOPs')}, {format_count(totals.macs, 'MACs')}, {complete}>"
        )

    def __str__(self) -> str:
        """The summary table at every depth, fitted to the terminal (:func:`torchscan.render.table.render_table`)."""
        return render_table(self)

    @property
    def max_depth(self) -> int:
        return max((row.depth for row in self.rows), default=0)

    def rows_at_depth(self, depth: int) -> tuple[Row, ...]:
        """The frontier at ``depth``: rows at that depth plus shallower leaves. They partition
        the model, so their sums equal the totals (parameters: untied ones)."""
        return tuple(row for row in self.rows if row.depth == depth or (row.depth < depth and row.is_leaf))

    def rows_to_depth(self, depth: int | None) -> tuple[Row, ...]:
        """Rows down to ``depth`` (all rows when None), in tree order."""
        return self.rows if depth is None else tuple(row for row in self.rows if row.depth <= depth)

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        """Plain JSON-serialisable data (schema ``SCHEMA_VERSION``)."""
        totals: Mapping[str, Any] = asdict(self.totals)
        return {
            "schema_version": SCHEMA_VERSION,
            "context": self.context.to_dict(),
            "totals": dict(totals),
            "layers": [row.to_dict() for row in self.rows_to_depth(depth)],
            "diagnostics": [diagnostic.to_dict() for diagnostic in self.diagnostics],
            "memory": self.memory.to_dict() if self.memory is not None else None,
        }

    # Exports: thin delegates to torchscan.render.

    @property
    def graph(self) -> nx.DiGraph:
        """The model's graph for users: one node per fx node with plain attributes only (op, module
        path, type, shapes, dtype, params, FLOPs, MACs, DMAs, bytes, receptive field when computed),
        edges = data flow; ``nx.write_graphml`` works on it (control characters in names are written
        visibly, e.g. ``\\x1b``). A new copy on each access."""
        return plain_graph(self)

    def to_networkx(self) -> nx.DiGraph:
        """Same as :attr:`graph`."""
        return self.graph

    def to_csv(self, path_or_file: str | Path | TextIO | None = None, depth: int | None = None) -> str:
        """The rows down to ``depth`` as CSV (written to ``path_or_file`` if given); text cells a spreadsheet
        would run as a formula get a leading ``'``."""
        return to_csv(self, path_or_file, depth=depth)

    def to_json(
        self, path_or_file: str | Path | TextIO | None = None, depth: int | None = None, indent: int | None = 2
    ) -> str:
        """``to_dict(depth)`` as JSON (written to ``path_or_file`` if given); see ``torchscan/schema``."""
        return to_json(self, path_or_file, depth=depth, indent=indent)

    def to_dot(self, depth: int | None = None, color_by: ColorBy = "flops") -> str:
        """Graphviz source, modules collapsed to ``depth``, coloured by share of ``color_by``."""
        return to_dot(self, depth=depth, color_by=color_by)

    def to_svg(self, path: str | Path | None = None, depth: int | None = None, color_by: ColorBy = "flops") -> str:
        """:meth:`to_dot` rendered to SVG by Graphviz's ``dot`` (written to ``path`` if given)."""
        return to_svg(self, path, depth=depth, color_by=color_by)

    def to_html(self, path: str | Path | None = None, **options: Any) -> str:
        """A self-contained HTML report (written to ``path`` if given); see :func:`torchscan.render.html.to_html`."""
        return to_html(self, path, **options)

    def _repr_html_(self) -> str:
        return repr_html(self)
