"""Frozen records that flow through the pipeline, and the keys they are stored under.

- :mod:`.ops` — what a formula sees: :class:`TensorSpec`, :class:`OpCall`, :class:`Cost`;
- :mod:`.graph` — the graph's per-node :class:`NodeRecord` (key ``RECORD``) and cost key ``COST``;
- :mod:`.rows` — the report's :class:`Row`, :class:`Totals`, :class:`Diagnostic`, :class:`Context`;
- :mod:`.memory` — the memory pass's results (:class:`MemoryReport` and its parts);
- :mod:`.compare` — two reports side by side (:class:`Comparison`, one :class:`RowDiff` per row name).

Records import nothing else from torchscan: every layer (ops, graph, passes, report, render) may
read them.
"""

from torchscan.records.compare import ROW_METRICS, TOTAL_METRICS, Comparison, RowDiff, RowStatus
from torchscan.records.graph import COST, RECORD, NodeRecord, StorageRef, node_records
from torchscan.records.memory import ActivationPeak, CpuMeasurement, MeasuredStep, MemoryReport, TrainingEstimate
from torchscan.records.ops import ZERO, CallKind, Cost, OpCall, TensorSpec, tensor_leaves
from torchscan.records.rows import SCHEMA_VERSION, Context, Diagnostic, Row, RowKind, Totals

__all__ = [
    "COST",
    "RECORD",
    "ROW_METRICS",
    "SCHEMA_VERSION",
    "TOTAL_METRICS",
    "ZERO",
    "ActivationPeak",
    "CallKind",
    "Comparison",
    "Context",
    "Cost",
    "CpuMeasurement",
    "Diagnostic",
    "MeasuredStep",
    "MemoryReport",
    "NodeRecord",
    "OpCall",
    "Row",
    "RowDiff",
    "RowKind",
    "RowStatus",
    "StorageRef",
    "TensorSpec",
    "Totals",
    "TrainingEstimate",
    "node_records",
    "tensor_leaves",
]
