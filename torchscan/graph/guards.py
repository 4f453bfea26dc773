"""Values a trace read from its shape pass to go on (:class:`Guard`), and whether they hold for another
input: sizes Python code branched on or used as numbers, and tensor metadata (rank, dtype, device)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from torchscan.graph.rules import Pending
from torchscan.records.frozen import frozen_record

__all__ = ["METADATA", "READ", "Guard", "guards_hold"]


@frozen_record
class Guard:
    """A value the trace read from the shape pass to go on (Python code branching on a size, using a
    size as an ``int``, iterating a shape): the graph holds for another input only where the same
    reading of the same node gives the same value (:func:`guards_hold`)."""

    node: str
    kind: str
    """How the value was read: ``bool``, ``index``, ``int``, ``float``, ``len``, or a tensor's metadata
    (:data:`METADATA`: ``ndim``, ``dtype``, ``device``)."""
    value: Any


def _length(value: Any) -> int:
    """``len`` of a node's value: a tensor's (or a pending one's) first size."""
    if isinstance(value, (torch.Tensor, Pending)):
        if not value.shape:
            raise TypeError("len() of a 0-d tensor")
        return int(value.shape[0])
    return len(value)


READ: Mapping[str, Callable[[Any], Any]] = {
    "bool": bool,
    "index": operator.index,
    "int": int,
    "float": float,
    "len": _length,
    "ndim": lambda value: len(value.shape),
    "dtype": lambda value: value.dtype,
    "device": lambda value: value.device,
}
"""How a :class:`Guard`'s kind reads a node's value."""

METADATA = frozenset({"ndim", "dtype", "device"})
"""Guard kinds that read a tensor's metadata, not its sizes: fixed where the graph is (its ops are
rank-, dtype- and device-specific), so reading one adds no node and specializes no size."""


def guards_hold(guards: Sequence[Guard], results: Mapping[str, Any]) -> bool:
    """Whether every guard reads the same value from ``results`` (a node's result by name)."""
    try:
        return all(READ[guard.kind](results[guard.node]) == guard.value for guard in guards)
    except Exception:  # a value that no longer reads so (a tensor now, a missing node)
        return False
