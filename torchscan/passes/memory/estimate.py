"""The memory section of a report, assembled from the passes of this package."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from torchscan.passes.memory.backward_flops import backward_costs
from torchscan.passes.memory.context import CapturedMemory, PlanMemo, memory_graph
from torchscan.passes.memory.internal import Replay
from torchscan.passes.memory.peak import walk
from torchscan.passes.memory.training import OPTIMIZERS, training_step
from torchscan.passes.params import ParamSummary
from torchscan.records import Cost, MemoryReport

__all__ = ["estimate_memory"]


def estimate_memory(
    graph: nx.DiGraph,
    params: ParamSummary,
    costs: Mapping[str, Cost | None] | None = None,
    optimizers: Iterable[str] = tuple(OPTIMIZERS),
    replay: Replay | None = None,
    memo: PlanMemo | None = None,
    captured: CapturedMemory | None = None,
) -> MemoryReport:
    """The memory section of a report: static inference peak, training estimates, backward cost
    (the graph's order, liveness, gradient flags and the calls recorded at the ATen level from
    ``replay`` computed once, shared by all three). ``memo`` keeps what depends on the graph, the
    model's copy and ``params`` only (:class:`~torchscan.passes.memory.context.MemoryPlan`) across
    analyses of one capture at other inputs (:func:`torchscan.sweep`). ``captured``: what of it
    only the capture answers, made while it was at hand (:func:`~torchscan.passes.memory.context.captured_memory`):
    then ``replay`` is not read, and nothing here runs the model's code or reads a tensor."""
    context = memory_graph(graph, params, replay, memo, captured)
    transient = {name: recorded.call.transient for name, recorded in context.calls.items()}
    casts = context.casts
    for name, nbytes in casts.found.items():
        transient[name] = max(0, transient[name] - nbytes)
    peak = walk(context.ordered, context.live, transient=transient, families=context.families, held=casts.held)
    training, saved_bytes, checkpointed = training_step(graph, params, optimizers, context)
    recomputed = [name for call in checkpointed.calls for name in call.ran] if checkpointed is not None else ()
    backward = backward_costs(graph, costs or {}, params, context, recomputed)
    outputs = sum(spec.nbytes for record in context.ordered if record.op == "output" for spec in record.outputs)
    return MemoryReport(
        param_bytes=params.param_bytes,
        buffer_bytes=params.buffer_bytes,
        input_bytes=peak.input_bytes,
        output_bytes=outputs,
        activation_peak_bytes=peak.bytes,
        peak_node=peak.node,
        peak_module_path=peak.module_path,
        saved_activation_bytes=saved_bytes,
        backward_flops=sum(cost.flops for cost in backward.values()),
        backward_macs=sum(cost.macs for cost in backward.values()),
        training=training,
    )
