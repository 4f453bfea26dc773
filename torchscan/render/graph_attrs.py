"""A plain-attribute copy of the report graph for users' networkx analyses and GraphML export.

``report.records`` holds frozen pipeline records (``NodeRecord``, ``Cost``) that passes read;
:func:`plain_graph` derives a copy whose node attributes are only ``str``/``int``/``float``/``bool``,
so ``nx.write_graphml(report.to_networkx(), path)`` works, whatever the module and class names:
every string (node ids, keys, values, graph attributes) is :func:`~torchscan.render.text.visible`, so valid XML 1.0.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx
import torch

from torchscan.records import COST, RECORD, SCHEMA_VERSION, Cost, NodeRecord, Row, TensorSpec
from torchscan.render.text import visible

if TYPE_CHECKING:
    from torchscan.report import Report

__all__ = ["leaf_row", "plain_graph", "rows_by_node", "shape_text"]

_PLAIN = (bool, int, float, str)


def shape_text(shape: tuple[int, ...] | None) -> str:
    """``(1, 64, 56, 56)`` -> ``"1x64x56x56"``; ``""`` for None; ``"scalar"`` for ``()``."""
    if shape is None:
        return ""
    return "x".join(str(size) for size in shape) if shape else "scalar"


def rows_by_node(rows: Iterable[Row]) -> dict[str, str]:
    """fx node -> name of the functional row that counts it (``Row.node``; rows are not named by node)."""
    return {row.node: row.name for row in rows if row.node is not None}


def leaf_row(record: NodeRecord, rows: Mapping[str, Row], by_node: Mapping[str, str]) -> str | None:
    """Name of the deepest report row that counts ``record`` (None for nodes no row counts:
    inputs, outputs, attribute reads and pure Python arithmetic). ``rows`` by name, ``by_node``
    from :func:`rows_by_node`."""
    if record.op == "call_module":
        path = record.module_path
    elif record.op in ("call_function", "call_method") and record.produces_tensor:
        own = by_node.get(record.name)
        if own is not None:
            return own
        path = record.module_path
    else:
        return None
    while path and path not in rows:  # inside a module counted as one op
        path = path.rpartition(".")[0]
    return path or None


def _flatten(key: str, value: Any) -> Iterator[tuple[str, bool | int | float | str]]:
    """``key=value`` as plain GraphML-compatible pairs (containers flattened or JSON-encoded)."""
    if value is None:
        return
    if isinstance(value, _PLAIN):
        yield key, value
    elif isinstance(value, torch.dtype):
        yield key, str(value).removeprefix("torch.")
    elif isinstance(value, TensorSpec):
        yield key, shape_text(value.shape)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from _flatten(f"{key}_{item.name}", getattr(value, item.name))
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from _flatten(f"{key}_{name}", item)
    elif isinstance(value, (tuple, list)):
        yield key, json.dumps(value, default=str)
    else:
        yield key, str(value)


def _node_attrs(
    record: NodeRecord, data: Mapping[str, Any], rows: Mapping[str, Row], by_node: Mapping[str, str]
) -> dict[str, Any]:
    row_name = leaf_row(record, rows, by_node)
    params = 0
    if record.op == "call_module" and row_name == record.module_path:
        params = rows[row_name].params
    outputs = record.outputs
    attrs: dict[str, Any] = {
        "op": record.op,
        "index": record.index,
        "module_path": record.module_path,
        "type": record.type_name,
        "row": row_name or "",
        "output_shape": shape_text(outputs[0].shape) if outputs else "",
        "output_shapes": ";".join(shape_text(spec.shape) for spec in outputs),
        "dtype": str(outputs[0].dtype).removeprefix("torch.") if outputs else "",
        "bytes": sum(spec.nbytes for spec in outputs),
        "params": params,
    }
    cost: Cost | None = data.get(COST)
    attrs["cost_status"] = "free" if COST not in data else ("unknown" if cost is None else "counted")
    attrs.update(flops=cost.flops if cost else 0, macs=cost.macs if cost else 0, dmas=cost.dmas if cost else 0)
    for key, value in data.items():  # results of other passes (receptive field, memory…)
        if key not in (RECORD, COST):
            attrs.update(_flatten(key, value))
    return attrs


def _visible(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``attrs`` with keys and string values made :func:`visible` (valid XML 1.0)."""
    return {visible(key): visible(value) if isinstance(value, str) else value for key, value in attrs.items()}


def plain_graph(report: Report) -> nx.DiGraph:
    """A copy of ``report.records`` (same nodes and edges) with plain attributes only.

    Per node: ``op``, ``index`` (execution order), ``module_path``, ``type``, ``row`` (the report
    row that counts it), ``output_shape`` (``"1x64x56x56"``), ``output_shapes`` (``;``-joined),
    ``dtype``, ``bytes`` (output bytes), ``params`` (of a called module), ``flops``, ``macs``,
    ``dmas``, ``cost_status`` (``counted``/``unknown``/``free``), plus every attribute another pass
    stored on the node (e.g. receptive field), flattened to plain values. Control characters in names
    and graph attributes are written visibly (an ESC as ``\\x1b``), node ids (fx names) too.
    """
    rows = {row.name: row for row in report.rows}
    by_node = rows_by_node(report.rows)
    totals = report.totals
    plain = nx.DiGraph(
        model=visible(report.context.model),
        schema_version=SCHEMA_VERSION,
        flops=totals.flops,
        macs=totals.macs,
        dmas=totals.dmas,
        params=totals.params,
        complete=totals.complete,
    )
    for name, data in report.records.nodes(data=True):
        plain.add_node(visible(name), **_visible(_node_attrs(data[RECORD], data, rows, by_node)))
    plain.add_edges_from((visible(source), visible(target)) for source, target in report.records.edges())
    return plain
