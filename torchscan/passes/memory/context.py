"""What several memory rules read, computed once per analysis."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from torchscan.passes.memory.grads import parameter_reads, requires_grad, trainable_bytes
from torchscan.passes.memory.internal import NodeMemory, Replay, recorded_calls
from torchscan.passes.memory.liveness import sources_of, storages
from torchscan.passes.memory.storage import Storages
from torchscan.passes.params import ParamSummary
from torchscan.records import NodeRecord, node_records

__all__ = ["MemoryGraph", "memory_graph"]


@dataclass(frozen=True, slots=True)
class MemoryGraph:
    """A graph as the memory rules read it: execution order, the nodes each node reads (in
    predecessor order), storage liveness, requires-grad flags, trainable bytes per module, the
    trainable parameters each module's call reads (tied ones included) and the calls recorded at
    the ATen level (:mod:`~torchscan.passes.memory.internal`; empty without a replay of the
    capture)."""

    graph: nx.DiGraph
    ordered: list[NodeRecord]
    sources: Mapping[str, tuple[str, ...]]
    live: Storages
    grads: Mapping[str, bool]
    trainable: Mapping[str, int]
    calls: Mapping[str, NodeMemory]
    reads: Mapping[str, Mapping[str, int]]
    """Module path -> the trainable parameters (by owner path) and their bytes a call of it reads."""


def memory_graph(graph: nx.DiGraph, params: ParamSummary, replay: Replay | None = None) -> MemoryGraph:
    """Everything of :class:`MemoryGraph`, each computed once (``replay``: the capture, to record
    the calls worth it at the ATen level)."""
    ordered = node_records(graph)
    sources = sources_of(graph)
    trainable = trainable_bytes(params)
    live = storages(graph, ordered, sources)
    grads = requires_grad(graph, ordered, params, sources, trainable)
    return MemoryGraph(
        graph=graph,
        ordered=ordered,
        sources=sources,
        live=live,
        grads=grads,
        trainable=trainable,
        calls=recorded_calls(replay, ordered, grads) if replay is not None else {},
        reads=parameter_reads(params),
    )
