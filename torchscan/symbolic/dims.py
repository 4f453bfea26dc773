"""Named symbolic sizes (:class:`Dim`) in the inputs of an analysis, and their substitution by numbers."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from torchscan.errors import InputError
from torchscan.records import TensorSpec
from torchscan.records.frozen import frozen_record

__all__ = ["Dim", "collect_dims", "grid_values", "has_dims", "substitute", "verification_values"]


@frozen_record
class Dim:
    """A named input size (batch, sequence length, resolution…) that the report keeps as a symbol.

    The size takes the values ``min ≤ n ≤ max`` (``max=None``: unbounded) with ``n % multiple_of == 0``;
    the report's formulas are exact on those values (``Dim("H", min=32, multiple_of=32)`` for a
    network with a total stride of 32, so that every ``floor`` of a stride divides exactly). A string
    in a shape (``input_shape=(3, "H", "W")``, ``batch_size="B"``) is ``Dim(name)``.
    """

    name: str
    min: int = 1
    max: int | None = None
    multiple_of: int = 1

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise InputError(f"a Dim's name must be an identifier (a formula's symbol), got {self.name!r}")
        if self.multiple_of < 1 or self.min < 1:
            raise InputError(f"Dim {self.name!r}: min and multiple_of must be positive")
        if self.max is not None and self.max < self.first:
            raise InputError(f"Dim {self.name!r}: no multiple of {self.multiple_of} in [{self.min}, {self.max}]")

    @property
    def first(self) -> int:
        """The smallest value the size takes: the first multiple of ``multiple_of`` at or above ``min``."""
        return -(-self.min // self.multiple_of) * self.multiple_of

    def admits(self, value: int) -> bool:
        """Whether ``value`` is one of the size's values."""
        upper = self.max is None or value <= self.max
        return isinstance(value, int) and value >= self.min and upper and value % self.multiple_of == 0

    def describe(self) -> str:
        """``H ∈ {32, 64, …} (multiples of 32, 32 ≤ H ≤ 1024)``-like text of the constraint."""
        upper = f" ≤ {self.max}" if self.max is not None else ""
        multiple = f", multiple of {self.multiple_of}" if self.multiple_of > 1 else ""
        return f"{self.min} ≤ {self.name}{upper}{multiple}"


def _dims(value: Any, shape: bool) -> Iterator[Dim]:
    """The sizes in ``value``: :class:`Dim` objects, and strings where ``value`` is (within) a shape
    (``shape``: an ``input_shape``, a batch size, a :class:`TensorSpec`'s shape; elsewhere in ``args``
    and ``kwargs`` a string is a plain argument)."""
    if isinstance(value, Dim):
        yield value
    elif isinstance(value, str):
        if shape:
            yield Dim(value)
    elif isinstance(value, TensorSpec):
        yield from _dims(value.shape, True)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _dims(item, shape)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _dims(item, shape)


def _inputs_dims(input_shape: Any, args: Any, kwargs: Any, batch_size: Any) -> Iterator[Dim]:
    yield from _dims(batch_size, True)
    if not isinstance(input_shape, str):  # a bare string is not a shape (model_inputs says so)
        yield from _dims(input_shape, True)
    yield from _dims(args, False)
    yield from _dims(kwargs, False)


def has_dims(input_shape: Any, args: Any, kwargs: Any, batch_size: Any) -> bool:
    """Whether a symbolic size appears in the inputs of an analysis."""
    return any(True for _ in _inputs_dims(input_shape, args, kwargs, batch_size))


def collect_dims(input_shape: Any, args: Any, kwargs: Any, batch_size: Any) -> tuple[Dim, ...]:
    """The symbolic sizes of the inputs of an analysis, the batch size first, then in order of first
    appearance, one per name; a name given twice with different constraints is an :class:`InputError`."""
    found: dict[str, Dim] = {}
    for dim in _inputs_dims(input_shape, args, kwargs, batch_size):
        known = found.get(dim.name)
        if known is None or known == Dim(dim.name):
            found[dim.name] = dim
        elif dim not in (known, Dim(dim.name)):
            raise InputError(f"size {dim.name!r} is given with two different constraints: {known} and {dim}")
    return tuple(found.values())


def substitute(value: Any, point: Mapping[str, int], shape: bool = False) -> Any:
    """``value`` with every symbolic size replaced by its number in ``point`` (containers rebuilt;
    ``shape`` as for :func:`has_dims`: strings are sizes only within shapes)."""
    if isinstance(value, Dim):
        return point[value.name]
    if isinstance(value, str):
        return point[value] if shape else value
    if isinstance(value, TensorSpec):
        return replace(value, shape=tuple(substitute(size, point, True) for size in value.shape))
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(substitute(item, point, shape) for item in value))
    if isinstance(value, (tuple, list)):
        return type(value)(substitute(item, point, shape) for item in value)
    if isinstance(value, Mapping):
        return {key: substitute(item, point, shape) for key, item in value.items()}
    return value


def grid_values(dim: Dim, count: int, spacing: int = 1) -> tuple[int, ...]:
    """``count`` values of ``dim`` from its first, ``spacing`` steps of ``multiple_of`` apart (fewer
    spacing steps if its ``max`` is near)."""
    step = dim.multiple_of
    if dim.max is not None:
        room = (dim.max - dim.first) // step
        if room + 1 < count:
            raise InputError(
                f"size {dim.name!r} takes {room + 1} value(s) ({dim.describe()}): too few to derive a formula "
                f"of degree {count - 1} in it; widen its range"
            )
        spacing = max(1, min(spacing, room // max(count - 1, 1)))
    return tuple(dim.first + k * spacing * step for k in range(count))


def verification_values(dim: Dim, count: int, avoid: Sequence[int], rng: random.Random, span: int) -> tuple[int, ...]:
    """``count`` values of ``dim`` drawn by ``rng`` among its first ``span`` values (all of them when
    its ``max`` is nearer), avoiding ``avoid`` where the range allows."""
    step = dim.multiple_of
    last = dim.first + (span - 1) * step if dim.max is None else min(dim.max, dim.first + (span - 1) * step)
    values = list(range(dim.first, last + 1, step))
    fresh = [value for value in values if value not in avoid] or values
    return tuple(rng.choice(fresh) for _ in range(count))
