"""The networkx graph the passes read: one node per fx node, a frozen record per node."""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx
from torch import fx, nn

from torchscan.graph.calls import ArgumentBinder, display_type, make_call, module_path_of, resolve_target
from torchscan.graph.shapes import NodeValues
from torchscan.records import RECORD, NodeRecord, tensor_leaves

__all__ = ["build_graph"]


def build_graph(traced: fx.Graph, root: nn.Module, values: Mapping[str, NodeValues]) -> nx.DiGraph:
    """A DiGraph with a :class:`NodeRecord` under ``RECORD`` per node of ``traced`` and data-flow edges."""
    binder = ArgumentBinder()
    modules = dict(root.named_modules(remove_duplicate=False))
    nodes: list[tuple[str, dict[str, NodeRecord]]] = []
    edges: list[tuple[str, str]] = []
    for index, node in enumerate(traced.nodes):
        nodes.append((node.name, {RECORD: _record(node, index, root, modules, values.get(node.name), binder)}))
        edges.extend((source.name, node.name) for source in node.all_input_nodes)
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)  # fx order is topological: every edge's source is already a node
    graph.add_edges_from(edges)
    return graph


def _record(
    node: fx.Node,
    index: int,
    root: nn.Module,
    modules: Mapping[str, nn.Module],
    node_values: NodeValues | None,
    binder: ArgumentBinder,
) -> NodeRecord:
    """The record of one fx node (``modules``: the root's submodules by path, duplicates included)."""
    if node.op == "call_module":
        target = str(node.target)
        module = modules.get(target)
        type_name = type(module if module is not None else root.get_submodule(target)).__name__
    elif node.op in ("call_function", "call_method"):
        type_name = display_type(resolve_target(node))  # one name per op, whatever the spelling
    else:
        type_name = node.op
    return NodeRecord(
        name=node.name,
        op=node.op,
        index=index,
        module_path=module_path_of(node),
        type_name=type_name,
        call=make_call(node, node_values, root, binder, modules) if node_values is not None else None,
        outputs=tuple(tensor_leaves(node_values.output)) if node_values is not None else (),
        stack_trace=node.stack_trace,
        storages=node_values.storages if node_values is not None else (),
        passthrough=node_values.passthrough if node_values is not None else False,
        module_calls=_module_calls(node),
    )


def _module_calls(node: fx.Node) -> tuple[tuple[str, int], ...]:
    """``(path, k)`` per entry of the node's ``nn_module_stack``: the tracer keys a module's first call
    by its path and the ``k``-th by ``path@k``."""
    calls = []
    for key, (path, _) in (node.meta.get("nn_module_stack") or {}).items():
        suffix = key[len(path) + 1 :] if key.startswith(f"{path}@") else ""
        calls.append((str(path), int(suffix) if suffix.isdigit() else 0))
    return tuple(calls)
