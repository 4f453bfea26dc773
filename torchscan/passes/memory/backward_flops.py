"""Backward FLOPs/MACs/DMAs per node, from its forward cost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from torchscan.ops import Saves
from torchscan.passes.memory.context import MemoryGraph, memory_graph
from torchscan.passes.memory.families import family_in
from torchscan.passes.params import ParamSummary
from torchscan.records import Cost

__all__ = ["backward_costs"]


def backward_costs(
    graph: nx.DiGraph,
    costs: Mapping[str, Cost | None],
    params: ParamSummary,
    context: MemoryGraph | None = None,
    recomputed: Iterable[str] = (),
) -> dict[str, Cost]:
    """Backward cost per node whose output requires grad.

    - conv / linear / matmul: one forward-sized product per gradient taken — ``dL/dx`` when the
      input requires grad, ``dL/dW`` when the weight is trainable — so ``2×`` the forward FLOPs
      and MACs in the common case, ``1×`` for a first layer on raw input (matmul: always ``2×``).
    - every other op: ``1×`` its forward FLOPs (one pass over the gradient); views and
      ``add``-like ops therefore cost what their forward costs (mostly 0).
    - unknown ops (no forward cost): 0, like their forward.

    - a node a checkpointed call runs again in the backward (``recomputed``:
      :mod:`~torchscan.passes.memory.recompute`): its forward cost on top.

    ``context``: :func:`~torchscan.passes.memory.context.memory_graph` of the graph, when at hand.
    """
    context = memory_graph(graph, params) if context is None else context
    grads, trainable = context.grads, context.trainable
    result: dict[str, Cost] = {}
    for record in context.ordered:
        cost = costs.get(record.name)
        if cost is None or not grads.get(record.name):
            continue
        kind = family_in(record, context.families)
        if kind in (Saves.WEIGHTED, Saves.MATMUL):
            input_grad = any(grads.get(source, False) for source in context.sources[record.name])
            weight_grad = record.op != "call_module" or trainable.get(record.module_path, 0) > 0
            factor = int(input_grad) + int(weight_grad) if kind is Saves.WEIGHTED else 2
            result[record.name] = Cost(flops=cost.flops * factor, macs=cost.macs * factor, dmas=cost.dmas * factor)
        else:
            result[record.name] = Cost(flops=cost.flops, macs=cost.macs, dmas=cost.dmas)
    for name in recomputed:
        cost = costs.get(name)
        if cost is not None:
            result[name] = result[name] + cost if name in result else cost
    return result
