"""The receptive-field columns of the report's rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from fractions import Fraction

from torchscan.passes.receptive.geometry import Marker, RField
from torchscan.passes.receptive.propagate import ReceptiveFields
from torchscan.records import Row

__all__ = ["RowValue", "row_values", "with_receptive_fields"]

RowValue = tuple[int, ...] | tuple[int | float, ...] | str | None


def _stride(jump: Fraction) -> int | float:
    return int(jump) if jump.denominator == 1 else float(jump)


def row_values(fields: tuple[RField, ...] | Marker | None) -> tuple[RowValue, RowValue, RowValue]:
    """``(receptive_field, effective_stride, effective_padding)`` of a row: tuples per spatial dim,
    a marker string (``"global"``, ``"unknown"``), or None."""
    if fields is None:
        return None, None, None
    if isinstance(fields, Marker):
        return fields.value, fields.value, fields.value
    return (
        tuple(f.size for f in fields),
        tuple(_stride(f.jump) for f in fields),
        tuple(f.effective_padding for f in fields),
    )


def with_receptive_fields(
    rows: Sequence[Row],
    fields: ReceptiveFields,
    module_outputs: Mapping[str, tuple[str, ...]],
) -> tuple[Row, ...]:
    """Rows with their receptive-field columns: a module row reads the output node of its first
    call, a functional row its own node (``Row.node``); parameter rows stay empty."""
    result = []
    for row in rows:
        if row.kind == "parameter":
            node = None
        elif row.kind == "module":
            calls = module_outputs.get(row.name, ())
            node = calls[0] if calls else None
        else:
            node = row.node
        size, stride, padding = row_values(fields.of(node) if node is not None else None)
        statistics = node is not None and fields.statistics(node)
        result.append(
            replace(
                row,
                receptive_field=size,
                effective_stride=stride,
                effective_padding=padding,
                receptive_field_statistics=statistics,
            )
        )
    return tuple(result)
