"""Per-row output bytes for the report's rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import networkx as nx

from torchscan.passes.memory.storage import output_bytes
from torchscan.records import NodeRecord, Row, node_records

__all__ = ["with_output_bytes"]


def with_output_bytes(
    rows: tuple[Row, ...], graph: nx.DiGraph, module_outputs: Mapping[str, tuple[str, ...]]
) -> tuple[Row, ...]:
    """Rows with ``output_bytes`` set: the outputs of the row's node (functional rows: ``Row.node``),
    of its leaf call, or of the node producing its first call's output (traced-through modules)."""
    ordered = node_records(graph)
    by_name = {record.name: record for record in ordered}
    leaf_nodes: dict[str, NodeRecord] = {}
    for record in ordered:
        if record.op == "call_module":
            leaf_nodes.setdefault(record.module_path, record)
    result = []
    for row in rows:
        if row.kind in ("function", "method"):
            record = by_name.get(row.node) if row.node is not None else None
        else:
            record = leaf_nodes.get(row.name)
        if record is None and row.kind == "module":
            names = module_outputs.get(row.name, ())
            record = by_name.get(names[0]) if names else None
        nbytes = output_bytes(record) if record is not None else 0
        result.append(replace(row, output_bytes=nbytes) if nbytes != row.output_bytes else row)
    return tuple(result)
