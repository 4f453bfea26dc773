"""The networkx graph the passes read: one node per fx node, a frozen record per node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
from torch import fx, nn

from torchscan.graph.autocast import AUTOCAST, AUTOCAST_NODES
from torchscan.graph.calls import (
    ArgumentBinder,
    CallSite,
    call_site,
    display_type,
    make_call,
    module_path_of,
    resolve_target,
)
from torchscan.graph.checkpoint import CHECKPOINT, CHECKPOINT_NODES, Region
from torchscan.graph.clone import reparametrized_names
from torchscan.graph.executions import EXECUTIONS
from torchscan.graph.functions import FUNCTION, FUNCTION_NODES, FunctionCall
from torchscan.graph.grad_mode import NO_GRAD, NO_GRAD_NODES
from torchscan.graph.returned import RETURNED
from torchscan.graph.shapes import NodeValues, SpecTable
from torchscan.records import RECORD, NodeRecord, tensor_leaves
from torchscan.records.frozen import FrozenDict, frozen_record

__all__ = ["REPARAMETRIZED_NODES", "build_graph"]

REPARAMETRIZED_NODES = "reparametrized_nodes"
"""Graph attribute: the ``call_module`` nodes of modules that compute a tensor of their own from others at each call
(weight norm, spectral norm, pruning, any ``torch.nn.utils.parametrize`` parametrization: the computed weight is an
allocation of the call, which their op's family does not state), a frozenset of names."""


@frozen_record
class _Static:
    """The parts of a node's record that depend on the graph and the copy only (one per capture)."""

    type_name: str
    module_path: str
    module_calls: tuple[tuple[str, int], ...]
    site: CallSite | None
    sources: tuple[str, ...]
    """The nodes this node reads (its data-flow edges' sources)."""
    reparametrized: bool = False
    """A call of a module that computes tensors of its own from others at each call (:func:`reparametrized_names`)."""


def build_graph(
    traced: fx.Graph,
    root: nn.Module,
    values: Mapping[str, NodeValues],
    memo: dict[str, Any] | None = None,
    modules: Mapping[str, nn.Module] | None = None,
) -> nx.DiGraph:
    """A DiGraph with a :class:`NodeRecord` under ``RECORD`` per node of ``traced`` and data-flow edges (the
    nodes made with grad mode disabled under :data:`~torchscan.graph.grad_mode.NO_GRAD_NODES`, those made under
    autocast under :data:`~torchscan.graph.autocast.AUTOCAST_NODES`, those made inside a checkpointed call under
    :data:`~torchscan.graph.checkpoint.CHECKPOINT_NODES`, those made in a custom ``torch.autograd.Function``'s
    forward under :data:`~torchscan.graph.functions.FUNCTION_NODES`, the calls of modules that compute a weight from
    others at each call under :data:`REPARAMETRIZED_NODES`).

    ``memo`` keeps each node's shape-independent parts across builds over the same capture (a sweep);
    ``modules``: ``root.named_modules(remove_duplicate=False)`` as a dict, when the caller has it.
    """
    binder = ArgumentBinder()
    memo = {} if memo is None else memo
    stacks: dict[int, tuple[tuple[str, int], ...]] = {}  # the nodes of one module call share its stack
    specs: SpecTable = {}  # the modules' parameter specs, one per distinct value
    nodes: list[tuple[str, dict[str, NodeRecord]]] = []
    edges: list[tuple[str, str]] = []
    no_grad: list[str] = []
    cast: list[str] = []
    checkpointed: dict[str, Region] = {}
    functions: dict[str, FunctionCall] = {}
    reparametrized: list[str] = []
    for index, node in enumerate(traced.nodes):
        static = memo.get(node.name)
        if static is None:
            if modules is None:
                modules = dict(root.named_modules(remove_duplicate=False))
            static = memo[node.name] = _static(node, root, modules, stacks, specs)
        record = _record(node, index, static, values.get(node.name), binder)
        nodes.append((node.name, {RECORD: record}))
        edges.extend((source, node.name) for source in static.sources)
        meta = node.meta
        if NO_GRAD in meta:
            no_grad.append(node.name)
        if AUTOCAST in meta:
            cast.append(node.name)
        if CHECKPOINT in meta:
            checkpointed[node.name] = meta[CHECKPOINT]
        if FUNCTION in meta:
            functions[node.name] = meta[FUNCTION]
        if static.reparametrized:
            reparametrized.append(node.name)
    graph = nx.DiGraph()
    if no_grad:
        graph.graph[NO_GRAD_NODES] = frozenset(no_grad)
    if cast:
        graph.graph[AUTOCAST_NODES] = frozenset(cast)
    if checkpointed:
        graph.graph[CHECKPOINT_NODES] = FrozenDict(checkpointed)
    if functions:
        graph.graph[FUNCTION_NODES] = FrozenDict(functions)
    if reparametrized:
        graph.graph[REPARAMETRIZED_NODES] = frozenset(reparametrized)
    graph.add_nodes_from(nodes)  # fx order is topological: every edge's source is already a node
    graph.add_edges_from(edges)
    return graph


def _static(
    node: fx.Node,
    root: nn.Module,
    modules: Mapping[str, nn.Module],
    stacks: dict[int, tuple[tuple[str, int], ...]],
    specs: SpecTable | None = None,
) -> _Static:
    """The shape-independent parts of a node's record (``modules``: the root's submodules by path,
    duplicates included; ``stacks``: :func:`_module_calls` by the identity of the module stack read,
    for nodes that share one object; ``specs``: the build's :data:`~torchscan.graph.shapes.SpecTable`)."""
    reparametrized = False
    if node.op == "call_module":
        target = str(node.target)
        module = modules.get(target)
        if module is None:
            module = root.get_submodule(target)
        type_name = type(module).__name__
        reparametrized = bool(reparametrized_names(module))
    elif node.op in ("call_function", "call_method"):
        type_name = display_type(resolve_target(node))  # one name per op, whatever the spelling
    else:
        type_name = node.op
    sources = tuple(source.name for source in node.all_input_nodes)
    key = id(node.meta.get("nn_module_stack"))  # id(None) for nodes without one: no calls either way
    calls = stacks.get(key)
    if calls is None:
        calls = stacks[key] = _module_calls(node)
    path = module_path_of(node)
    return _Static(type_name, path, calls, call_site(node, root, modules, specs, path), sources, reparametrized)


def _record(
    node: fx.Node, index: int, static: _Static, node_values: NodeValues | None, binder: ArgumentBinder
) -> NodeRecord:
    """The record of one fx node."""
    has_values = node_values is not None
    outputs = tuple(tensor_leaves(node_values.output)) if has_values else ()
    return NodeRecord(
        name=node.name,
        op=node.op,
        index=index,
        module_path=static.module_path,
        type_name=static.type_name,
        call=make_call(node, node_values, static.site, binder, outputs)
        if has_values and static.site is not None
        else None,
        outputs=outputs,
        stack_trace=node.stack_trace,
        storages=node_values.storages if has_values else (),
        passthrough=node_values.passthrough if has_values else False,
        module_calls=static.module_calls,
        executions=node.meta.get(EXECUTIONS, ()),
        returned=node.meta.get(RETURNED, ()),
    )


def _module_calls(node: fx.Node) -> tuple[tuple[str, int], ...]:
    """``(path, k)`` per entry of the node's ``nn_module_stack``: the tracer keys a module's first call
    by its path and the ``k``-th by ``path@k``."""
    calls = []
    for key, (path, _) in (node.meta.get("nn_module_stack") or {}).items():
        if key == path:  # a first call (most entries)
            calls.append((str(path), 0))
            continue
        suffix = key[len(path) + 1 :] if key.startswith(f"{path}@") else ""
        calls.append((str(path), int(suffix) if suffix.isdigit() else 0))
    return tuple(calls)
