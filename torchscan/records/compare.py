"""Two reports side by side: their rows matched by name, their totals (frozen, plain values).

Every difference is ``B − A``: positive where the second model has more.
"""

from __future__ import annotations

from typing import Any, Literal

from torchscan.records.frozen import frozen_record
from torchscan.records.rows import Context, Row, Totals

__all__ = ["ROW_METRICS", "TOTAL_METRICS", "Comparison", "RowDiff", "RowStatus"]

ROW_METRICS: tuple[str, ...] = ("params", "flops", "macs", "dmas", "output_bytes")
"""The per-row numbers compared (fields of :class:`~torchscan.records.Row`)."""

TOTAL_METRICS: tuple[str, ...] = (
    "params",
    "trainable_params",
    "non_trainable_params",
    "flops",
    "macs",
    "dmas",
    "model_bytes",
)
"""The whole-model numbers compared (attributes of :class:`~torchscan.records.Totals`)."""

RowStatus = Literal["both", "only_a", "only_b"]


@frozen_record
class RowDiff:
    """One row name of either report: ``a`` and ``b`` are its row in each (``None`` where absent)."""

    name: str
    a: Row | None
    b: Row | None

    def __post_init__(self) -> None:
        if self.a is None and self.b is None:
            raise ValueError(f"row {self.name!r} is in neither report")

    @property
    def status(self) -> RowStatus:
        """``both``, ``only_a`` or ``only_b``."""
        if self.a is None:
            return "only_b"
        return "only_a" if self.b is None else "both"

    @property
    def row(self) -> Row:
        """The row of B where it has one, else A's: its depth, parent and kind place it in the tree."""
        row = self.b if self.b is not None else self.a
        assert row is not None  # __post_init__
        return row

    @property
    def depth(self) -> int:
        return self.row.depth

    @property
    def parent(self) -> str:
        return self.row.parent

    def value(self, side: Literal["a", "b"], metric: str) -> int | None:
        """``metric`` of the row in report ``side``; ``None`` where that report has no such row."""
        row = self.a if side == "a" else self.b
        return None if row is None else int(getattr(row, metric))

    def delta(self, metric: str) -> int:
        """``B − A`` of ``metric``; a row absent from a report counts 0 there."""
        return (self.value("b", metric) or 0) - (self.value("a", metric) or 0)

    @property
    def changed(self) -> bool:
        """True when the row is on one side only, changes type, or any of :data:`ROW_METRICS` differs."""
        if self.a is None or self.b is None:
            return True
        return self.a.type != self.b.type or any(self.delta(metric) for metric in ROW_METRICS)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "depth": self.depth,
            "parent": self.parent,
            "type_a": self.a.type if self.a is not None else None,
            "type_b": self.b.type if self.b is not None else None,
        }
        for metric in ROW_METRICS:
            data[f"{metric}_a"] = self.value("a", metric)
            data[f"{metric}_b"] = self.value("b", metric)
            data[f"{metric}_delta"] = self.delta(metric)
        return data


@frozen_record
class Comparison:
    """Report B against report A: totals, activation peaks, and every row of either, matched by name.

    ``rows`` is the union of both reports' rows in tree order: B's order, each row only A has placed
    after the row that precedes it in A. ``label_a``/``label_b`` name the two sides.
    """

    label_a: str
    label_b: str
    context_a: Context
    context_b: Context
    totals_a: Totals
    totals_b: Totals
    rows: tuple[RowDiff, ...]
    activation_peak_a: int | None = None
    """Static inference activation peak of A in bytes (``None`` without a memory report)."""
    activation_peak_b: int | None = None

    def total(self, side: Literal["a", "b"], metric: str) -> int:
        """``metric`` of :data:`TOTAL_METRICS` in report ``side``."""
        return int(getattr(self.totals_a if side == "a" else self.totals_b, metric))

    def total_delta(self, metric: str) -> int:
        """``B − A`` of a total: ``totals_b.metric − totals_a.metric``."""
        return self.total("b", metric) - self.total("a", metric)

    @property
    def activation_peak_delta(self) -> int | None:
        """``B − A`` of the static activation peaks (``None`` unless both reports have one)."""
        if self.activation_peak_a is None or self.activation_peak_b is None:
            return None
        return self.activation_peak_b - self.activation_peak_a

    @property
    def only_a(self) -> tuple[RowDiff, ...]:
        return tuple(row for row in self.rows if row.status == "only_a")

    @property
    def only_b(self) -> tuple[RowDiff, ...]:
        return tuple(row for row in self.rows if row.status == "only_b")

    @property
    def complete(self) -> bool:
        """True when both reports counted every op (else their FLOPs, MACs, DMAs are lower bounds)."""
        return self.totals_a.complete and self.totals_b.complete

    def row(self, name: str) -> RowDiff:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def rows_to_depth(self, depth: int | None) -> tuple[RowDiff, ...]:
        """Rows down to ``depth`` (all when None), in tree order."""
        return self.rows if depth is None else tuple(row for row in self.rows if row.depth <= depth)

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        """Plain JSON-serialisable data: labels, contexts, totals of each side and ``B − A``, rows to ``depth``."""
        totals = {
            metric: {"a": self.total("a", metric), "b": self.total("b", metric), "delta": self.total_delta(metric)}
            for metric in TOTAL_METRICS
        }
        totals["activation_peak_bytes"] = {
            "a": self.activation_peak_a,
            "b": self.activation_peak_b,
            "delta": self.activation_peak_delta,
        }
        return {
            "labels": {"a": self.label_a, "b": self.label_b},
            "context": {"a": self.context_a.to_dict(), "b": self.context_b.to_dict()},
            "complete": self.complete,
            "totals": totals,
            "rows": [row.to_dict() for row in self.rows_to_depth(depth)],
        }
