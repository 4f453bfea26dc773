"""Liveness of activation storages in inference: when each is allocated and when freed.

The plain rule: a storage is live from the node that first produces it to the last node that
reads any tensor aliasing it; graph inputs are held by the caller for the whole forward, graph
outputs until the end; an argument of a module call lives until that call returns (the caller
holds it). On top, the eager-Python rules of :mod:`~torchscan.passes.memory.eager` extend a
storage bound to a local name and alias ``y += z`` to ``y``.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from torchscan.graph.build import NodeRecord
from torchscan.passes.memory.eager import augmented_source, local_ends
from torchscan.passes.memory.storage import END, Storages, storage_keys

__all__ = ["call_ends", "storages"]


def storages(graph: nx.DiGraph, ordered: list[NodeRecord]) -> Storages:
    """Size, producer and last use of every activation storage (``ordered``: execution order)."""
    size: dict[Any, int] = {}
    born: dict[Any, int] = {}
    last_use: dict[Any, int] = {}
    of_node: dict[str, tuple[Any, ...]] = {}
    inputs: set[Any] = set()
    remap: dict[Any, Any] = {}
    for record in ordered:
        keys = tuple((remap.get(key, key), nbytes) for key, nbytes in storage_keys(record))
        alias = augmented_source(graph, record, of_node)
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
    call_end = call_ends(ordered)
    local_end = local_ends(graph, ordered)
    by_name = {record.name: record for record in ordered}
    for record in ordered:
        for key in of_node[record.name]:
            last_use[key] = max(last_use[key], local_end.get(record.name, -1))
        for source in graph.predecessors(record.name):
            if record.op == "output":
                end = END
            else:  # an argument of a module call lives until the call returns (the caller holds it)
                entered = _common_depth(by_name[source].module_path, record.module_path) + 1
                end = call_end.get((record.index, entered), record.index)
            for key in of_node.get(source, ()):
                last_use[key] = max(last_use[key], end)
    return Storages(size, born, last_use, of_node, frozenset(inputs))


def call_ends(ordered: list[NodeRecord]) -> dict[tuple[int, int], int]:
    """``(i, d) -> j``: the last index of the run of nodes, from node ``i`` on, inside the same
    depth-``d`` module as node ``i`` — the end of that module call."""
    parts = [_parts(record.module_path) for record in ordered]
    ends: dict[tuple[int, int], int] = {}
    for depth in range(1, max((len(p) for p in parts), default=0) + 1):
        following: tuple[str, ...] | None = None
        end = -1
        for position in range(len(ordered) - 1, -1, -1):
            prefix = parts[position][:depth] if len(parts[position]) >= depth else None
            if prefix is None:
                following = None
                continue
            if prefix != following:
                end = ordered[position].index
            ends[(ordered[position].index, depth)] = end
            following = prefix
    return ends


def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def _common_depth(first: str, second: str) -> int:
    """Number of leading path components two module paths share."""
    depth = 0
    for a, b in zip(_parts(first), _parts(second), strict=False):
        if a != b:
            break
        depth += 1
    return depth
