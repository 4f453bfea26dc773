"""Per-row output bytes for the report's rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import networkx as nx

from torchscan.passes.memory.storage import output_bytes
from torchscan.records import NodeRecord, Row, node_records

__all__ = ["row_output_bytes", "with_output_bytes"]


def row_output_bytes(
    graph: nx.DiGraph, module_outputs: Mapping[str, tuple[str, ...]]
) -> Callable[[str, str, str | None], int]:
    """``bytes_of(name, kind, node)``: a row's ``output_bytes`` from its name, kind and node (what
    :func:`with_output_bytes` sets; :func:`~torchscan.passes.rows.build_rows` takes it to make each row
    once): the outputs of the row's node (functional rows: ``Row.node``), of its leaf call, or of the
    node producing its first call's output (traced-through modules); 0 for none."""
    ordered = node_records(graph)
    by_name = {record.name: record for record in ordered}
    leaf_nodes: dict[str, NodeRecord] = {}
    for record in ordered:
        if record.op == "call_module":
            leaf_nodes.setdefault(record.module_path, record)

    def bytes_of(name: str, kind: str, node: str | None) -> int:
        if kind in ("function", "method"):
            record = by_name.get(node) if node is not None else None
        else:
            record = leaf_nodes.get(name)
        if record is None and kind == "module":
            names = module_outputs.get(name, ())
            record = by_name.get(names[0]) if names else None
        return output_bytes(record) if record is not None else 0

    return bytes_of


def with_output_bytes(
    rows: tuple[Row, ...], graph: nx.DiGraph, module_outputs: Mapping[str, tuple[str, ...]]
) -> tuple[Row, ...]:
    """Rows with ``output_bytes`` set (:func:`row_output_bytes`)."""
    bytes_of = row_output_bytes(graph, module_outputs)
    result = []
    for row in rows:
        nbytes = bytes_of(row.name, row.kind, row.node)
        result.append(replace(row, output_bytes=nbytes) if nbytes != row.output_bytes else row)
    return tuple(result)
