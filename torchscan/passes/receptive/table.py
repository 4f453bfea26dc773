"""Receptive-field rules: the table keyed by op targets, and the helpers rules share.

A rule maps one call and the fields of its input-dependent operands to the field of its output
(:class:`~torchscan.passes.receptive.geometry.Field` or a :class:`~torchscan.passes.receptive.geometry.Marker`),
or raises :class:`~torchscan.passes.receptive.geometry.Unsupported` when it cannot follow the call
exactly. Targets are the same objects as in :mod:`torchscan.ops`: module classes (looked up along
the MRO), functions and ``torch.Tensor`` methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from torchscan.ops.registry import OpLookup, OpTable
from torchscan.passes.receptive.geometry import Field, Marker, Unsupported
from torchscan.records import OpCall, TensorSpec
from torchscan.records.frozen import frozen_record

__all__ = [
    "Operand",
    "Outcome",
    "Rule",
    "RuleLookup",
    "RuleTable",
    "arg",
    "check_output",
    "ints",
    "mix",
    "plain",
    "token_dim",
    "union",
]

Outcome = Field | Marker


@frozen_record
class Operand:
    """An input of a call that depends on the model input: its field and its tensor spec."""

    field: Field
    spec: TensorSpec | None


Rule = Callable[[OpCall, tuple[Operand, ...]], Outcome]


RuleTable = OpTable[Rule]
"""The receptive-field rules of one op family (a target registered twice is refused)."""

RuleLookup = OpLookup[Rule]
"""The merged, read-only rules: module classes along the MRO (unless ``forward`` is overridden)."""


def arg(call: OpCall, name: str, position: int, default: Any = None) -> Any:
    """Argument ``name`` of a call: bound by name, else the ``position``-th positional (after ``self``)."""
    if name in call.attrs:
        value = call.attrs[name]
        return default if value is None else value
    args = call.attrs.get("args", ())
    offset = 1 if call.kind == "function" else 0  # unbound functions keep their input in ``args``
    if len(args) > position + offset:
        value = args[position + offset]
        return default if value is None else value
    return default


def ints(value: Any, count: int, default: int | None = None) -> tuple[int, ...]:
    """An int or sequence of ints as ``count`` ints (an empty/None value gives ``default``)."""
    if value is None or (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 0):
        if default is None:
            raise Unsupported("missing window argument")
        return (default,) * count
    if isinstance(value, int):
        return (value,) * count
    values = tuple(int(v) for v in value)
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise Unsupported(f"expected {count} values, got {values}")
    return values


def union(call: OpCall, operands: Sequence[Operand]) -> Field:
    """The field of an elementwise combination (broadcast) of ``operands``: per unit the hull
    ``[min L, max R]`` of the operands' fields; the layout must agree and match the output (where
    the operands lay it out differently, tokens that run along one dim count as that dim's axis,
    :func:`plain`)."""
    fields = [operand.field for operand in operands]
    if len({(field.axes, field.flat) for field in fields}) > 1:
        fields = [plain(field) for field in fields]
    first = fields[0]
    spans = first.spans
    for field in fields[1:]:
        if field.axes != first.axes or field.flat != first.flat:
            raise Unsupported("operands hold the spatial dims on different axes")
        if field.sizes != first.sizes:
            raise Unsupported(f"operands broadcast along spatial dims ({field.sizes} vs {first.sizes})")
        spans = tuple(a.hull(b) for a, b in zip(spans, field.spans, strict=True))
    result = replace(first, spans=spans, statistics=any(operand.field.statistics for operand in operands))
    check_output(call, result)
    return result


def check_output(call: OpCall, field: Field) -> None:
    """The output must hold the field's grid where the field says."""
    shape = call.output.shape
    if field.flat:
        axis = field.axes[0]
        size = math.prod(field.sizes)
        if axis is None or -axis > len(shape) or shape[axis] != size:
            raise Unsupported(f"output {shape} does not hold the flattened spatial grid {field.sizes}")
        return
    for axis, size in zip(field.axes, field.sizes, strict=True):
        if axis is None:
            continue
        if -axis > len(shape) or shape[axis] != size:
            raise Unsupported(f"output {shape} does not hold the spatial grid {field.sizes}")


def token_dim(field: Field) -> int | None:
    """The spatial dim a flattened token axis runs along, when it runs along one only: the one dim of
    size > 1 (every other has size 1, so token ``t`` is unit ``t`` of that dim); the last dim when
    all have size 1 (row-major, the tokens step along the last dim first); None when several dims
    have size > 1 (a window or a crop over the tokens is then not one over a single dim)."""
    moving = [j for j, n in enumerate(field.sizes) if n > 1]
    if len(moving) > 1:
        return None
    return moving[0] if moving else len(field.sizes) - 1


def plain(field: Field) -> Field:
    """A field flattened into tokens that run along one dim only (:func:`token_dim`) as that dim on
    the token axis, the other (size-1) dims without an axis; any other field as it is."""
    j = token_dim(field) if field.flat else None
    if j is None:
        return field
    return replace(field, axes=tuple(field.axes[0] if i == j else None for i in range(len(field.sizes))), flat=False)


def mix(field: Field, axes: Iterable[int], ndim: int, removed: bool = False) -> Outcome:
    """The field after an op that mixes all positions along ``axes`` (of a rank-``ndim`` input).

    Mixing every spatial axis (or the flattened one) makes the field global; mixing none keeps
    it (shifted when ``removed`` drops the mixed axes); mixing some spatial dims but not all is
    not expressible per dim and raises.
    """
    mixed = {axis - ndim if axis >= 0 else axis for axis in axes}
    touched = {axis for axis in _moving_axes(field) if axis in mixed}
    if touched and touched == _moving_axes(field):
        return Marker.GLOBAL
    if touched:
        raise Unsupported("the op mixes some spatial dims but not all")
    if not removed:
        return field
    shifted = tuple(None if a is None or a in mixed else a + sum(m > a for m in mixed) for a in field.axes)
    return replace(field, axes=shifted)


def _moving_axes(field: Field) -> set[int]:
    """Axes along which the field changes (spatial axes of size > 1)."""
    if field.flat:
        return {a for a in field.axes if a is not None} if math.prod(field.sizes) > 1 else set()
    return {a for a, n in zip(field.axes, field.sizes, strict=True) if a is not None and n > 1}
