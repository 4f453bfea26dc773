"""Binary arithmetic with broadcasting: ``a ⊙ b`` for ``⊙`` in ``+ − · /``, either side a tensor or
a Python scalar (a scalar is a constant: never read)."""

from __future__ import annotations

import operator
from collections.abc import Callable

import torch

from tests.reference.counting import Counted, Num, Sink, Source, Tally, indices

__all__ = ["OPERATORS", "binary"]

OPERATORS: dict[str, Callable[[Num | float, Num | float], Num]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
}


def _at(index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The element of a broadcast operand of ``shape`` that output ``index`` reads."""
    tail = index[len(index) - len(shape) :] if shape else ()
    return tuple(0 if size == 1 else i for i, size in zip(tail, shape, strict=True))


def binary(name: str, a: torch.Tensor | float, b: torch.Tensor | float) -> Counted:
    """One operation per output element; each output reads one element of each tensor operand."""
    tally = Tally()
    operands: list[Source | float] = [
        Source(label, value, tally) if isinstance(value, torch.Tensor) else float(value)
        for label, value in (("a", a), ("b", b))
    ]
    shapes = [tuple(value.shape) for value in (a, b) if isinstance(value, torch.Tensor)]
    shape = tuple(torch.broadcast_shapes(*shapes))
    out = Sink("output", shape, tally)
    function = OPERATORS[name]
    for index in indices(shape):
        left, right = (
            operand[_at(index, operand.shape)] if isinstance(operand, Source) else operand for operand in operands
        )
        out[index] = function(left, right)
    return Counted(out.tensor(), tally)
