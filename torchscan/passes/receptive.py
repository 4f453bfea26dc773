"""Receptive field of every node with respect to the model input, per spatial dim.

A dynamic programme over the graph in topological order (the shape of networkx's
``dag_longest_path``): each node combines the fields of its predecessors (read under the
``RECORD`` key) through the rule of its op (:mod:`torchscan.passes.rf_windows`,
:mod:`torchscan.passes.rf_layout`). Merges take, per output unit, the hull of the paths' fields
(Distill, "Computing Receptive Fields of Convolutional Neural Networks", 2019: multi-path
networks need the left-most and right-most bounds over paths, and the paths must share one
effective stride). ``GLOBAL`` (the field is the whole input) absorbs everything; ``UNKNOWN``
(an op whose geometry cannot be followed, with a diagnostic) stops the field for every
descendant — never a guess.

The source is the first model input of rank ``≥ 3``, read as ``(N, C, *spatial)``; other inputs
count as constants. Definitions per spatial dim (:class:`~torchscan.passes.rf_geometry.RField`):
``size`` = input units seen by one output unit, ``jump`` = effective stride, ``start`` = first
input unit seen by output unit 0 (``effective padding = −start``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType

import networkx as nx

from torchscan.passes import rf_layout, rf_windows
from torchscan.passes.rf_geometry import Field, Marker, RField, Span, Unsupported
from torchscan.passes.rf_table import Operand, Outcome, RuleTable
from torchscan.records import RECORD, Diagnostic, NodeRecord, Row

__all__ = [
    "DEFAULT_RULES",
    "Field",
    "Marker",
    "RField",
    "ReceptiveFields",
    "RuleTable",
    "receptive_fields",
    "with_receptive_fields",
]

DEFAULT_RULES = RuleTable.merged((rf_windows.TABLE, rf_layout.TABLE))


@dataclass(frozen=True, slots=True)
class ReceptiveFields:
    """The outcome of every node that depends on the source input (absent = constant)."""

    outcomes: Mapping[str, Outcome] = field(default_factory=dict)
    source: str | None = None
    diagnostics: tuple[Diagnostic, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcomes", MappingProxyType(dict(self.outcomes)))

    def of(self, node: str) -> tuple[RField, ...] | Marker | None:
        """Per-dim fields of a node's output, a marker, or None (does not depend on the input)."""
        outcome = self.outcomes.get(node)
        if outcome is None or isinstance(outcome, Marker):
            return outcome
        return tuple(span.summary() for span in outcome.spans)


def receptive_fields(graph: nx.DiGraph, rules: RuleTable = DEFAULT_RULES) -> ReceptiveFields:
    """The receptive field of every node (module docstring); a pure function of the graph."""
    outcomes: dict[str, Outcome] = {}
    source: str | None = None
    unknown_ops: dict[str, list[str]] = defaultdict(list)
    stopped: dict[str, list[str]] = defaultdict(list)
    for name in nx.topological_sort(graph):
        record: NodeRecord = graph.nodes[name][RECORD]
        if record.op == "placeholder":
            if source is None and record.outputs and record.outputs[0].ndim >= 3:
                source = name
                outcomes[name] = _identity(record.outputs[0].shape[2:])
            continue
        if record.call is None or not record.produces_tensor:
            continue
        operands = _operands(graph, name, outcomes)
        if not operands:
            continue
        markers = {operand for operand in operands if isinstance(operand, Marker)}
        if markers:
            outcomes[name] = Marker.GLOBAL if Marker.GLOBAL in markers else Marker.UNKNOWN
            continue
        rule = rules.lookup(record.call.target)
        if rule is None:
            outcomes[name] = Marker.UNKNOWN
            unknown_ops[record.type_name].append(name)
            continue
        try:
            outcomes[name] = rule(record.call, tuple(op for op in operands if isinstance(op, Operand)))
        except Exception as error:  # Unsupported, or a call the rule did not expect
            outcomes[name] = Marker.UNKNOWN
            reason = str(error) if isinstance(error, Unsupported) else f"{type(error).__name__}: {error}"
            stopped[f"{record.type_name}: {reason}"].append(name)
    return ReceptiveFields(outcomes, source, _diagnostics(graph, source, unknown_ops, stopped))


def _identity(spatial: Sequence[int]) -> Field:
    d = len(spatial)
    return Field(spans=(Span.identity(),) * d, sizes=tuple(spatial), axes=tuple(range(-d, 0)))


def _operands(graph: nx.DiGraph, name: str, outcomes: Mapping[str, Outcome]) -> list[Operand | Marker]:
    operands: list[Operand | Marker] = []
    for pred in graph.predecessors(name):
        outcome = outcomes.get(pred)
        if outcome is None:
            continue
        if isinstance(outcome, Marker):
            operands.append(outcome)
        else:
            outputs = graph.nodes[pred][RECORD].outputs
            operands.append(Operand(outcome, outputs[0] if outputs else None))
    return operands


def _diagnostics(
    graph: nx.DiGraph,
    source: str | None,
    unknown_ops: Mapping[str, list[str]],
    stopped: Mapping[str, list[str]],
) -> tuple[Diagnostic, ...]:
    diagnostics: list[Diagnostic] = []
    if source is None:
        diagnostics.append(
            Diagnostic(
                code="rf-no-spatial-input",
                message="no model input has spatial dims (rank >= 3): no receptive field computed",
            )
        )
    for type_name, names in unknown_ops.items():
        diagnostics.append(
            Diagnostic(
                code="rf-unknown-op",
                message=f"no receptive-field rule for {type_name} (e.g. fx node '{names[0]}'): "
                "the receptive field is unknown from there on",
                nodes=tuple(names),
            )
        )
    for reason, names in stopped.items():
        diagnostics.append(
            Diagnostic(
                code="rf-unsupported",
                message=f"receptive field not followed through {reason} (e.g. fx node '{names[0]}'): "
                "unknown from there on",
                nodes=tuple(names),
            )
        )
    return tuple(diagnostics)


RowValue = tuple[int, ...] | tuple[int | float, ...] | str | None


def _stride(jump: Fraction) -> int | float:
    return int(jump) if jump.denominator == 1 else float(jump)


def row_values(fields: tuple[RField, ...] | Marker | None) -> tuple[RowValue, RowValue, RowValue]:
    """``(receptive_field, effective_stride, effective_padding)`` of a row: tuples per spatial dim,
    a marker string (``"global"``, ``"unknown"``), or None."""
    if fields is None:
        return None, None, None
    if isinstance(fields, Marker):
        return fields.value, fields.value, fields.value
    return (
        tuple(f.size for f in fields),
        tuple(_stride(f.jump) for f in fields),
        tuple(f.effective_padding for f in fields),
    )


def with_receptive_fields(
    rows: Sequence[Row],
    fields: ReceptiveFields,
    module_outputs: Mapping[str, tuple[str, ...]],
) -> tuple[Row, ...]:
    """Rows with their receptive-field columns: a module row reads the output node of its first
    call, a functional row its own node; parameter rows stay empty."""
    result = []
    for row in rows:
        if row.kind == "parameter":
            node = None
        elif row.kind == "module":
            calls = module_outputs.get(row.name, ())
            node = calls[0] if calls else None
        else:
            node = row.name
        size, stride, padding = row_values(fields.of(node) if node is not None else None)
        result.append(replace(row, receptive_field=size, effective_stride=stride, effective_padding=padding))
    return tuple(result)
