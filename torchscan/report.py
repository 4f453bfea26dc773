"""The report: frozen rows, totals, diagnostics and context; roll-up views by depth."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import networkx as nx

if TYPE_CHECKING:
    from pathlib import Path
    from typing import TextIO

    from torchscan.passes.memory import MemoryReport
    from torchscan.render.dot import ColorBy

__all__ = ["SCHEMA_VERSION", "Context", "Diagnostic", "Report", "Row", "Totals"]

SCHEMA_VERSION = 1

RowKind = Literal["module", "function", "method", "parameter"]


@dataclass(frozen=True, slots=True)
class Row:
    """One layer of the report, aggregating everything beneath it.

    ``name`` is the module path (``layer1.0.conv1``), the fx node name of a functional call
    (``add_3``), or ``path.param`` for a parameter held directly by a module that is traced
    through. ``params`` counts the parameters this subtree owns (a tied parameter is owned by
    its first module; ``shared_params`` counts the ones used here but owned elsewhere).
    """

    name: str
    type: str
    kind: RowKind
    depth: int
    parent: str
    is_leaf: bool
    output_shape: tuple[int, ...] | None
    params: int
    trainable_params: int
    shared_params: int
    param_bytes: int
    buffer_bytes: int
    flops: int
    macs: int
    dmas: int
    unknown_ops: int
    calls: int
    receptive_field: tuple[int, ...] | str | None = None
    effective_stride: tuple[int | float, ...] | str | None = None
    effective_padding: tuple[int, ...] | str | None = None
    output_bytes: int = 0
    """Bytes of the output tensor(s) of this row's (first) call: ``Σ numel · itemsize``."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        for key in ("receptive_field", "effective_stride", "effective_padding"):
            value = data[key]
            data[key] = list(value) if isinstance(value, tuple) else value
        return data


@dataclass(frozen=True, slots=True)
class Totals:
    """Whole-model numbers. ``flops``/``macs``/``dmas`` are lower bounds when not ``complete``."""

    params: int
    trainable_params: int
    non_trainable_params: int
    param_bytes: int
    buffer_bytes: int
    flops: int
    macs: int
    dmas: int
    complete: bool
    unknown_ops: int

    @property
    def model_bytes(self) -> int:
        return self.param_bytes + self.buffer_bytes


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Something the report could not do exactly: ``code`` is machine-readable."""

    code: str
    message: str
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "nodes": list(self.nodes)}


@dataclass(frozen=True, slots=True)
class Context:
    """How the numbers were obtained."""

    model: str
    torch_version: str
    capture: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    device: str
    training: bool

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shapes"] = [list(shape) for shape in self.input_shapes]
        data["output_shapes"] = [list(shape) for shape in self.output_shapes]
        data["dtypes"] = list(self.dtypes)
        return data


@dataclass(frozen=True, slots=True)
class Report:
    """Everything torchscan measured about one model and input."""

    rows: tuple[Row, ...]
    totals: Totals
    diagnostics: tuple[Diagnostic, ...]
    context: Context
    records: nx.DiGraph = field(compare=False, repr=False, default_factory=nx.DiGraph)
    """The pipeline's graph: a frozen ``NodeRecord`` (and ``Cost``) per fx node, read by the passes."""
    memory: MemoryReport | None = field(default=None, compare=False)
    """Static inference peak, training estimates, and a real measurement when asked for."""

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

    # Exports: thin delegates to torchscan.render (imported here to avoid import cycles).

    @property
    def graph(self) -> nx.DiGraph:
        """The model's graph for users: one node per fx node with plain attributes only (op, module
        path, type, shapes, dtype, params, FLOPs, MACs, DMAs, bytes, receptive field when computed),
        edges = data flow; ``nx.write_graphml`` works on it (control characters in names are written
        visibly, e.g. ``\\x1b``). A new copy on each access."""
        from torchscan.render.graph_attrs import plain_graph

        return plain_graph(self)

    def to_networkx(self) -> nx.DiGraph:
        """Same as :attr:`graph`."""
        return self.graph

    def to_csv(self, path_or_file: str | Path | TextIO | None = None, depth: int | None = None) -> str:
        """The rows down to ``depth`` as CSV (written to ``path_or_file`` if given); text cells a spreadsheet
        would run as a formula get a leading ``'``."""
        from torchscan.render.csv import to_csv

        return to_csv(self, path_or_file, depth=depth)

    def to_json(
        self, path_or_file: str | Path | TextIO | None = None, depth: int | None = None, indent: int | None = 2
    ) -> str:
        """``to_dict(depth)`` as JSON (written to ``path_or_file`` if given); see ``torchscan/schema``."""
        from torchscan.render.json import to_json

        return to_json(self, path_or_file, depth=depth, indent=indent)

    def to_dot(self, depth: int | None = None, color_by: ColorBy = "flops") -> str:
        """Graphviz source, modules collapsed to ``depth``, coloured by share of ``color_by``."""
        from torchscan.render.dot import to_dot

        return to_dot(self, depth=depth, color_by=color_by)

    def to_svg(self, path: str | Path | None = None, depth: int | None = None, color_by: ColorBy = "flops") -> str:
        """:meth:`to_dot` rendered to SVG by Graphviz's ``dot`` (written to ``path`` if given)."""
        from torchscan.render.dot import to_svg

        return to_svg(self, path, depth=depth, color_by=color_by)

    def to_html(self, path: str | Path | None = None, **options: Any) -> str:
        """A self-contained HTML report (written to ``path`` if given); see :func:`torchscan.render.html.to_html`."""
        from torchscan.render.html import to_html

        return to_html(self, path, **options)

    def _repr_html_(self) -> str:
        from torchscan.render.html import repr_html

        return repr_html(self)
