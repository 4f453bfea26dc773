"""Storages: which bytes a node's outputs occupy, keyed so views and in-place results share.

Each output tensor carries the id of the storage it lives in (recorded during the fake run), so
views (``view``, ``permute``, ``getitem``, ``chunk``, ``expand``, ``reshape`` of contiguous
data…) and in-place results (``relu_``, ``inplace=True``, ``+=``) share their base's key and
allocate nothing. A storage counts its full size once; parameters and buffers (and views of
them) are persistent — model memory, never activations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from torchscan.records import NodeRecord
from torchscan.records.frozen import frozen_record

__all__ = ["END", "Storages", "input_keys", "is_view", "made_by_forward", "output_bytes", "storage_keys"]

END = 1 << 62
"""A node index after every node: a storage whose last use is ``END`` is held to the end."""


@frozen_record
class Storages:
    """Activation storages of a graph: size, producer index and last reader index.

    ``of_node`` maps a node to the keys of its outputs; ``inputs`` are the graph inputs' keys.
    """

    size: Mapping[Any, int]
    born: Mapping[Any, int]
    last_use: Mapping[Any, int]
    of_node: Mapping[str, tuple[Any, ...]]
    inputs: frozenset[Any]


def output_bytes(record: NodeRecord) -> int:
    """Logical bytes of a node's outputs: ``Σ numel · itemsize`` (a view still has its bytes)."""
    return sum(spec.nbytes for spec in record.outputs)


def storage_keys(record: NodeRecord) -> tuple[tuple[Any, int], ...]:
    """(storage key, bytes) of a node's non-persistent outputs, dtype-aware.

    The key is the recorded storage id, or ``(node, position)`` for an output without one. A
    ``get_attr`` node reads what the model holds (parameters, buffers, tensor attributes): persistent,
    with or without a recorded storage — unless it reads a tensor the forward computes from
    constants (:func:`made_by_forward`), which every call makes anew.
    """
    if record.op == "get_attr":
        if not made_by_forward(record):
            return ()
        return tuple((ref.id, ref.nbytes) for ref in record.storages)
    keys = []
    for position, spec in enumerate(record.outputs):
        ref = record.storages[position] if position < len(record.storages) else None
        if ref is None or ref.id < 0:
            keys.append(((record.name, position), spec.nbytes))
        elif not ref.persistent:
            keys.append((ref.id, ref.nbytes))
    return tuple(keys)


def made_by_forward(record: NodeRecord) -> bool:
    """Whether a ``get_attr`` node reads a tensor the forward computed from constants alone
    (``torch.eye(n)`` in ``forward``, kept by the tracer as a constant of the graph): its storage was
    recorded as an activation's (not persistent). Such a tensor never requires grad."""
    refs = record.storages
    return (
        record.op == "get_attr"
        and len(refs) == len(record.outputs) > 0
        and all(ref.id >= 0 and not ref.persistent for ref in refs)
    )


def input_keys(graph: nx.DiGraph, record: NodeRecord, storages: Storages) -> set[Any]:
    """Storage keys of everything a node reads."""
    return {key for source in graph.predecessors(record.name) for key in storages.of_node.get(source, ())}


def is_view(record: NodeRecord, storages: Storages) -> bool:
    """A node is a view when it allocates no storage of its own."""
    return all(storages.born.get(key) != record.index for key in storages.of_node.get(record.name, ()))
