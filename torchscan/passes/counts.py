"""FLOPs, MACs and DMAs of every node, from the op registry."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import networkx as nx

from torchscan.ops import OBJECT_RESULTS
from torchscan.ops.registry import Registry
from torchscan.records import RECORD, Cost, Diagnostic, NodeRecord

__all__ = ["NodeCosts", "count_costs"]

NodeCosts = Mapping[str, Cost | None]
"""Cost of each counted node by name; None marks an op without a (working) formula."""


def count_costs(graph: nx.DiGraph, registry: Registry) -> tuple[dict[str, Cost | None], tuple[Diagnostic, ...]]:
    """Cost of every node that computes tensors, and one diagnostic per uncounted op type.

    Nodes that only handle Python values (``x.size(1)``, shape arithmetic) are free and absent; a call of
    :data:`~torchscan.ops.OBJECT_RESULTS` (its result an object holding tensors) is counted.
    """
    costs: dict[str, Cost | None] = {}
    unknown: dict[str, list[str]] = defaultdict(list)
    failed: dict[str, list[str]] = defaultdict(list)
    for _, data in graph.nodes(data=True):
        record: NodeRecord = data[RECORD]
        if record.call is None or (not record.produces_tensor and record.call.target not in OBJECT_RESULTS):
            continue
        formula = registry.lookup(record.call.target)
        if formula is None and record.passthrough:  # returns its arguments as they are: computes nothing
            costs[record.name] = Cost()
            continue
        if formula is None:
            costs[record.name] = None
            unknown[record.type_name].append(record.name)
            continue
        try:
            costs[record.name] = formula(record.call)
        except Exception as error:
            costs[record.name] = None
            failed[f"{record.type_name}: {error}"].append(record.name)
    diagnostics = [
        Diagnostic(
            code="unknown-op",
            message=f"no formula for {type_name} ({len(names)} call{'s' * (len(names) > 1)}, e.g. fx node "
            f"'{names[0]}'): its cost is missing from the totals, which are a lower bound",
            nodes=tuple(names),
        )
        for type_name, names in unknown.items()
    ]
    diagnostics += [
        Diagnostic(
            code="formula-error",
            message=f"formula failed for {reason} ({len(names)} calls, e.g. '{names[0]}'): not counted",
            nodes=tuple(names),
        )
        for reason, names in failed.items()
    ]
    return costs, tuple(diagnostics)
