"""The report's records: rows, totals, diagnostics and context (frozen, plain values)."""

from __future__ import annotations

from dataclasses import asdict
from fractions import Fraction
from typing import Any, Literal

from torchscan.records.frozen import frozen_record

__all__ = [
    "FREE_DMAS_FRACTION",
    "SCHEMA_VERSION",
    "Context",
    "Diagnostic",
    "Row",
    "RowKind",
    "Totals",
    "is_bookkeeping",
]

SCHEMA_VERSION = 2
"""2: functional rows are named by module path and op (``layer1.0.add``), their fx node in ``node``."""

RowKind = Literal["module", "function", "method", "parameter"]


@frozen_record
class Row:
    """One layer of the report, aggregating everything beneath it.

    ``name`` is the module path (``layer1.0.conv1``), ``path.param`` for a parameter held
    directly by a module that is traced through, or, for a functional call, the path of the module
    that made it and the op's display name (the Type): ``layer1.0.add``, then ``layer1.0.add_1``
    for the second ``add`` that module makes (``add``, ``add_1`` at the top level), numbered in
    execution order and skipping any name already taken, so names are unique and the same on every
    run. ``node`` is the fx node of a functional row (the key of its record in ``report.records``);
    None for module and parameter rows. ``params`` counts the parameters this subtree owns (a tied
    parameter is owned by its first module; ``shared_params`` counts the ones used here but owned
    elsewhere).
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
    node: str | None = None
    """The fx node a functional row counts (its record's key in ``report.records``); None otherwise."""
    receptive_field_statistics: bool = False
    """Statistics over positions (batch norm in training, group or instance norm, layer norm over spatial
    dims) lie on the way to this row: strictly its outputs depend on the whole input; ``receptive_field``
    is the classic field, which leaves statistics out."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        for key in ("receptive_field", "effective_stride", "effective_padding"):
            value = data[key]
            data[key] = list(value) if isinstance(value, tuple) else value
        return data


@frozen_record
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


FREE_DMAS_FRACTION = Fraction(1, 10_000)
"""The most DMAs a bookkeeping row may have, as a share of the model's (see :func:`is_bookkeeping`)."""


def is_bookkeeping(row: Row, totals: Totals) -> bool:
    """Whether ``row`` is bookkeeping: folded into its parent in the table and the graph unless
    asked for (``show_free=True``, ``--all-rows``); CSV, JSON and ``report.rows`` keep every row.

    Bookkeeping is a functional row (kind ``function``/``method``) with no FLOPs, no MACs, no
    parameters, no uncounted op, and DMAs of at most :data:`FREE_DMAS_FRACTION` of the model's
    (``dmas ≤ total DMAs / 10⁴``): views and indexing (``getitem``, ``view``, ``expand``), ``size``,
    position ids and other small factories (``arange``, ``new_ones``), casts of small tensors.
    Anything doing arithmetic is shown, however small (comparisons and logical ops count FLOPs
    under the counting conventions, so a mask's ``le``/``bitwise_and`` stay), and so is anything
    moving a noticeable share of the data (a ``cat``, a copying ``reshape``). Modules and parameter
    rows are never bookkeeping.

    Folding is a view: the row's numbers stay in its parent's and in the totals, so no number shown
    changes. The shown rows at a depth sum to the totals except for the folded rows' DMAs (at most
    1/10⁴ of the total each; the table's footer gives their sum).
    """
    return (
        row.kind in ("function", "method")
        and row.flops == 0
        and row.macs == 0
        and row.params == 0
        and row.unknown_ops == 0
        and row.dmas <= totals.dmas * FREE_DMAS_FRACTION
    )


@frozen_record
class Diagnostic:
    """Something the report could not do exactly: ``code`` is machine-readable."""

    code: str
    message: str
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "nodes": list(self.nodes)}


@frozen_record
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
