"""The records of the pipeline's graph: a frozen :class:`NodeRecord` per fx node, under fixed keys.

The graph itself is a ``networkx.DiGraph`` (one node per fx node, edges = data flow) built by
:mod:`torchscan.graph.build`; the passes and the renderers read it through these keys only.
"""

from __future__ import annotations

import networkx as nx

from torchscan.records.frozen import frozen_record
from torchscan.records.ops import OpCall, TensorSpec

__all__ = ["COST", "RECORD", "NodeRecord", "StorageRef", "node_records"]

RECORD = "record"
"""Key of the :class:`NodeRecord` in each networkx node's attributes."""

COST = "cost"
"""Key of a node's :class:`~torchscan.records.ops.Cost` in the report graph's node attributes
(None: no formula; absent: free)."""


@frozen_record
class StorageRef:
    """The storage behind one output tensor: ``id`` is unique within one propagation (views and
    in-place results share their base's id), ``nbytes`` the storage size, ``persistent`` True for
    storages of the model's parameters and buffers, ``trainable`` for those of its parameters that
    require grad."""

    id: int
    nbytes: int
    persistent: bool = False
    trainable: bool = False


@frozen_record
class NodeRecord:
    """One fx node: where it sits, what it computes, what it produced.

    ``index`` is the execution order; ``module_path`` the called module (``call_module``) or
    the innermost module whose forward made the call ('' for the top level).
    """

    name: str
    op: str
    index: int
    module_path: str
    type_name: str
    call: OpCall | None
    outputs: tuple[TensorSpec, ...]
    stack_trace: str | None = None
    storages: tuple[StorageRef, ...] = ()
    """One per tensor of ``outputs``: which storage it lives in (views share their base's)."""
    passthrough: bool = False
    """The call returned some of its own tensor arguments unchanged (e.g. packing a namedtuple)."""
    module_calls: tuple[tuple[str, int], ...] = ()
    """The module calls the node was made in, outermost first: ``(path, k)`` for the ``k``-th call
    (from 0) of the module at ``path``; a ``call_module`` node's own module last."""
    executions: tuple[int, ...] = ()
    """Per user frame of ``stack_trace`` (the innermost ones, outermost first), which run of its line the node
    was made in (:mod:`~torchscan.graph.executions`; () where the capture did not say: read as unknown)."""
    returned: tuple[tuple[str, int, int, int], ...] = ()
    """The user lines that received it as (part of) a module call's result, as ``(file:line, depth, item,
    items)``: the site its stack trace names, how many module calls that frame runs in, and which of a tuple
    result's ``items`` held it (-1: the result itself) (:data:`~torchscan.graph.returned.Receiver`; () where none
    did, or the capture did not say)."""

    @property
    def produces_tensor(self) -> bool:
        return bool(self.outputs)


def node_records(graph: nx.DiGraph) -> list[NodeRecord]:
    """The records of a graph in execution order."""
    return sorted((data[RECORD] for _, data in graph.nodes(data=True)), key=lambda record: record.index)
