"""The dynamic programme: the receptive field of every node, in topological order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import field

import networkx as nx
import torch

from torchscan.ops import DEFAULT_REGISTRY, Saves
from torchscan.passes.receptive.geometry import Field, Marker, RField, Span, Unsupported
from torchscan.passes.receptive.rules import DEFAULT_RULES
from torchscan.passes.receptive.table import Operand, Outcome, RuleLookup
from torchscan.records import RECORD, Diagnostic, NodeRecord
from torchscan.records.frozen import FrozenDict, frozen_record

__all__ = ["ReceptiveFields", "receptive_fields"]


@frozen_record
class ReceptiveFields:
    """The outcome of every node that depends on the source input (absent = constant)."""

    outcomes: Mapping[str, Outcome] = field(default_factory=dict)
    source: str | None = None
    diagnostics: tuple[Diagnostic, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcomes", FrozenDict(self.outcomes))

    def statistics(self, node: str) -> bool:
        """Whether statistics over positions lie on the way to the node (:attr:`Field.statistics`)."""
        outcome = self.outcomes.get(node)
        return isinstance(outcome, Field) and outcome.statistics

    def of(self, node: str) -> tuple[RField, ...] | Marker | None:
        """Per-dim fields of a node's output, a marker, or None (does not depend on the input)."""
        outcome = self.outcomes.get(node)
        if outcome is None or isinstance(outcome, Marker):
            return outcome
        return tuple(span.summary() for span in outcome.spans)


def receptive_fields(graph: nx.DiGraph, rules: RuleLookup = DEFAULT_RULES) -> ReceptiveFields:
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
        if record.call is None or not record.produces_tensor or _made_from_sizes(record):
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


def _made_from_sizes(record: NodeRecord) -> bool:
    """Whether the node makes a new tensor from sizes, or from another tensor's shape, dtype and device only
    (``zeros_like``, ``x.new_ones``, ``randn_like``: the op registry's :attr:`~torchscan.ops.Saves.NEW`): no value of
    the input reaches it, so it is a constant to the receptive field, as a factory of literal sizes is. Not
    ``torch.tensor``, ``torch.as_tensor`` and ``x.new_tensor``, which copy the values of a tensor given."""
    target = record.call.target if record.call is not None else None
    return target not in _COPIES_DATA and DEFAULT_REGISTRY.saves(target) is Saves.NEW


_COPIES_DATA = frozenset({torch.tensor, torch.as_tensor, torch.Tensor.new_tensor})


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
