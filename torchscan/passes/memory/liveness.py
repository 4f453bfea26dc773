"""Liveness of activation storages in inference: when each is allocated and when freed.

The plain rule: a storage is live from the node that first produces it to the last node that reads any
tensor aliasing it; graph inputs are held by the caller for the whole forward, graph outputs until the
end; an argument of a module call lives until that call returns (the caller holds it) — the outermost
call the reader runs in that its source was not made in, read from the calls each node was made in
(:attr:`~torchscan.records.NodeRecord.module_calls`: a module called twice is two calls, a forward
calling a grandchild's module directly enters no call of the child). Tensors that objects of the output
hold (a cache object's keys and values) and those the forward leaves in the model's own state (a table a
module computes at its first call and keeps) are held to the end like the outputs (:data:`HELD_OUTPUTS`). On
top, the eager-Python rules of :mod:`~torchscan.passes.memory.eager` extend a storage bound to a local
name and alias ``y += z`` to ``y``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from torchscan.passes.memory.eager import augmented_source, common_depth, is_augmentable, local_ends
from torchscan.passes.memory.frames import LIBRARY_MODULES, Frame, frames_by_node
from torchscan.passes.memory.storage import END, Storages, storage_keys
from torchscan.records import NodeRecord
from torchscan.records.frozen import frozen_record

__all__ = ["HELD_OUTPUTS", "StaticLiveness", "call_ends", "sources_of", "static_liveness", "storages"]

HELD_OUTPUTS = "held_outputs"
"""Graph attribute: names of the nodes whose tensors the caller keeps alive to the end, as the output:
those that objects of the forward's output hold (a cache object, replaced by None in the output's data)
and those the model's own state holds once the forward has run (a table a module computes at its first
call and keeps: :mod:`~torchscan.graph.held`)."""


def sources_of(graph: nx.DiGraph) -> dict[str, tuple[str, ...]]:
    """Node -> the nodes it reads, in the graph's predecessor order."""
    return {name: tuple(predecessors) for name, predecessors in graph.pred.items()}


@frozen_record
class StaticLiveness:
    """What liveness reads of a graph that its node names, ops, module paths and stack traces decide
    (never its shapes or storages): one per capture, reused for every input of a sweep.

    ``reads[i]`` and ``frames[i]``: what node ``i`` (execution order) reads and its user frames;
    ``augmented[i]``: whether it is an ``y += z`` that eager runs in place (its storage is then its
    first operand's, decided per input); ``held``: node -> the last index its outputs are held by
    the plain rule's readers (a module-call argument until the call returns, the output to the end)
    and by a local name (:func:`~torchscan.passes.memory.eager.local_ends`), ``max`` of them all.
    """

    reads: list[tuple[str, ...]]
    frames: list[tuple[Frame, ...]]
    augmented: list[bool]
    held: dict[str, int]


def static_liveness(
    graph: nx.DiGraph, ordered: Sequence[NodeRecord], sources: Mapping[str, tuple[str, ...]] | None = None
) -> StaticLiveness:
    """The :class:`StaticLiveness` of a graph (``ordered``: execution order; ``sources``:
    :func:`sources_of` the graph, when already at hand). Reads of the records only names, ops,
    indices, module paths, type names, stack traces and whether a node has tensor outputs."""
    sources = sources_of(graph) if sources is None else sources
    reads = [sources[record.name] for record in ordered]
    frames = frames_by_node(ordered)
    library = graph.graph.get(LIBRARY_MODULES, frozenset())
    call_end = call_ends(ordered)
    local_end = local_ends(ordered, frames, [frozenset(names) for names in reads], library, call_end)
    calls = {record.name: record.module_calls for record in ordered}
    held: dict[str, int] = dict(local_end)
    entered_at: dict[tuple[int, int], int] = {}  # by the ids of (source's calls, reader's calls): shared tuples
    for position, record in enumerate(ordered):
        own, ends = record.module_calls, call_end[position]
        for source in reads[position]:
            if record.op == "output":
                end = END
            else:  # an argument of a module call lives until the call returns (the caller holds it)
                theirs = calls[source]
                pair = (id(theirs), id(own))
                entered = entered_at.get(pair)
                if entered is None:  # the number of calls both were made in: the reader's next is the one entered
                    entered = entered_at[pair] = common_depth(theirs, own)
                end = ends[entered] if entered < len(ends) else record.index
            if end > held.get(source, -1):
                held[source] = end
    augmented = [is_augmentable(record, frames[position]) for position, record in enumerate(ordered)]
    return StaticLiveness(reads, frames, augmented, held)


def storages(
    graph: nx.DiGraph,
    ordered: Sequence[NodeRecord],
    sources: Mapping[str, tuple[str, ...]] | None = None,
    static: StaticLiveness | None = None,
) -> Storages:
    """Size, producer and last use of every activation storage (``ordered``: execution order;
    ``sources``: :func:`sources_of` the graph, ``static``: :func:`static_liveness` of it, when
    already at hand: a sweep keeps it per capture)."""
    static = static_liveness(graph, ordered, sources) if static is None else static
    reads, frames, augmented = static.reads, static.frames, static.augmented
    size: dict[Any, int] = {}
    born: dict[Any, int] = {}
    last_use: dict[Any, int] = {}
    of_node: dict[str, tuple[Any, ...]] = {}
    inputs: set[Any] = set()
    remap: dict[Any, Any] = {}
    for position, record in enumerate(ordered):
        keys = tuple((remap.get(key, key), nbytes) for key, nbytes in storage_keys(record))
        alias = augmented_source(record, frames[position], reads[position], of_node) if augmented[position] else None
        if alias is not None and len(keys) == 1:
            remap[keys[0][0]] = alias  # later views and in-place ops of the result alias it too
            keys = ((alias, size[alias]),)
        of_node[record.name] = tuple(key for key, _ in keys)
        for key, nbytes in keys:
            if key not in size:
                size[key] = nbytes
                born[key] = record.index
                last_use[key] = record.index
            if record.op == "placeholder":
                inputs.add(key)
                last_use[key] = END
    for name in graph.graph.get(HELD_OUTPUTS, ()):
        for key in of_node.get(name, ()):
            last_use[key] = END
    for name, end in static.held.items():
        for key in of_node.get(name, ()):
            if end > last_use[key]:
                last_use[key] = end
    return Storages(size, born, last_use, of_node, frozenset(inputs))


def call_ends(ordered: Sequence[NodeRecord]) -> list[list[int]]:
    """``ends[i][d]``: the last index of the run of nodes, from node ``i`` on, made in the same call as node
    ``i``'s ``d``-th (outermost first, :attr:`~torchscan.records.NodeRecord.module_calls`) — the end of that call."""
    parts = [record.module_calls for record in ordered]
    ends: list[list[int]] = [[] for _ in ordered]
    following: tuple[Any, ...] = ()
    after: list[int] = []
    for position in range(len(ordered) - 1, -1, -1):
        own, index = parts[position], ordered[position].index
        common = common_depth(own, following)
        ends[position] = after = [after[depth] if depth < common else index for depth in range(len(own))]
        following = own
    return ends
