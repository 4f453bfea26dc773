"""The report graph with modules collapsed to a depth: one node per call of each report row at that depth.

A module called twice (the ReLU of torchvision's ``BasicBlock``) is two nodes, one per call, so the
drawn graph is a DAG exactly when the model's dataflow is one.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import networkx as nx

from torchscan.records import RECORD, NodeRecord, Row
from torchscan.records.frozen import frozen_record
from torchscan.records.rows import is_bookkeeping
from torchscan.render.graph_attrs import leaf_row, rows_by_node

if TYPE_CHECKING:
    from torchscan.report import Report

__all__ = ["CollapsedNode", "collapse"]


@frozen_record
class CollapsedNode:
    """One node of the collapsed graph: a report row (its aggregated numbers), an input or the output."""

    id: str
    kind: str  # "row" | "input" | "output"
    label: str
    row: Row | None = None
    shape: tuple[int, ...] | None = None
    dtype: str = ""
    call: int = 0
    """Which call of the row's module this node is (from 0); its row's numbers cover all its calls."""


def _group(row: Row, rows: dict[str, Row], depth: int) -> Row:
    while row.depth > depth:
        row = rows[row.parent]
    return row


def collapse(report: Report, depth: int | None = None, show_free: bool = False) -> nx.DiGraph:
    """Data flow between the calls of the rows at ``depth`` (leaves above it stay whole; None: full depth).

    A module row is one node per call (``NodeRecord.module_calls``); a node made by a module that sits
    outside the calls of the row it collapses into (a module shared across the tree) stays with its
    own row.

    Nodes are keyed ``n0, n1…`` in execution order with a :class:`CollapsedNode` under ``"node"``;
    an edge joins two nodes when a tensor flows between their fx nodes, through bypassed nodes
    (attribute reads, Python arithmetic) if need be. Self-loops are dropped. Bookkeeping rows
    (:func:`~torchscan.records.rows.is_bookkeeping`) are bypassed too unless ``show_free``: folded
    into their parent, as in the table.
    """
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    depth = report.max_depth if depth is None else depth
    rows = {row.name: row for row in report.rows}
    by_node = rows_by_node(report.rows)
    ordered: list[NodeRecord] = sorted(
        (data[RECORD] for _, data in report.records.nodes(data=True)), key=lambda record: record.index
    )

    keys: dict[str, str] = {}  # fx node -> group key
    nodes: dict[str, CollapsedNode] = {}
    last: dict[str, NodeRecord] = {}  # group key -> its last fx node (a later call's output)
    for record in ordered:
        if record.op == "placeholder":
            key = f"input:{record.name}"
            spec = record.outputs[0] if record.outputs else None
            node = CollapsedNode(
                "",
                "input",
                record.name,
                shape=spec.shape if spec else None,
                dtype=str(spec.dtype).removeprefix("torch.") if spec else "",
            )
        elif record.op == "output":
            key, node = "output", CollapsedNode("", "output", "output")
        else:
            name = leaf_row(record, rows, by_node)
            if name is None:
                continue
            row = _group(rows[name], rows, depth)
            # Folding: a bookkeeping row that would be a node of its own is bypassed like an attribute
            # read (its data flows through); inside a collapsed ancestor it is part of that node as usual.
            if row.name == name and not show_free and is_bookkeeping(row, report.totals):
                continue
            calls = dict(record.module_calls)
            if row.kind == "module" and row.name not in calls and row.name != name:
                row = rows[name]  # made outside the calls of the row it belongs to: its own row's node
            call = calls.get(row.name, 0) if row.kind == "module" else 0
            key = f"row:{row.name}@{call}"
            node = CollapsedNode("", "row", row.name, row=row, shape=row.output_shape, call=call)
            last[key] = record
        keys[record.name] = key
        nodes.setdefault(key, node)

    outputs = report.context.output_shapes
    graph = nx.DiGraph()
    ids = {key: f"n{index}" for index, key in enumerate(nodes)}
    for key, node in nodes.items():
        if node.kind == "output" and len(outputs) == 1:
            node = CollapsedNode("", "output", "output", shape=outputs[0])
        if node.call > 0:  # the table shows a row's first call; a later call shows its own output
            node = dataclasses.replace(node, shape=_call_output(last[key]))
        graph.add_node(ids[key], node=dataclasses.replace(node, id=ids[key]))

    sources: dict[str, set[str]] = {}  # fx node -> group keys whose tensors reach it
    for record in ordered:
        preds = report.records.predecessors(record.name)
        incoming = set().union(*(sources.get(pred, set()) for pred in preds))
        key = keys.get(record.name)
        if key is None:
            sources[record.name] = incoming
            continue
        sources[record.name] = {key}
        graph.add_edges_from((ids[source], ids[key]) for source in incoming if source != key)
    return graph


def _call_output(record: NodeRecord) -> tuple[int, ...] | None:
    """The output shape of a call: its last node's first output."""
    return record.outputs[0].shape if record.outputs else None
