"""Helpers shared by the op families: argument lookup across spellings and formula factories.

A formula sees one :class:`OpCall` whatever the spelling: a module call has its configuration
attributes, a function call its arguments bound by name, a tensor method its positional
arguments after ``self`` under ``"args"``. :func:`argument` reads a value under its name or,
failing that, at its position after the data input, so one formula serves every spelling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from torchscan.records import Cost, OpCall, TensorSpec

__all__ = [
    "adaptive_taps",
    "argument",
    "broadcast_elements",
    "normalise_dims",
    "output_elements",
    "pointwise",
    "reduced_groups",
    "unary_writes",
]

_MISSING = object()


def argument(call: OpCall, name: str, index: int | None = None, default: Any = None) -> Any:
    """The argument ``name`` of a call: by name, else at ``index`` (counted after the data input).

    ``None`` values fall back to ``default``. For an unbindable function call the positional
    arguments under ``"args"`` include the data input, so the index is shifted by one.
    """
    value = call.attrs.get(name, _MISSING)
    if value is _MISSING and index is not None:
        positional = call.attrs.get("args", ())
        offset = 1 if call.kind == "function" else 0
        if 0 <= index + offset < len(positional):
            value = positional[index + offset]
    return default if value is _MISSING or value is None else value


def broadcast_elements(*specs: TensorSpec) -> int:
    """Elements of the operands' broadcast shape (the element pairs a binary op compares)."""
    return math.prod(torch.broadcast_shapes(*(spec.shape for spec in specs)))


def output_elements(call: OpCall) -> int:
    """Elements of every output of a call (values and indices alike)."""
    return sum(spec.numel for spec in call.outputs)


def normalise_dims(dims: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """Non-negative dims; ``None`` or an empty sequence means every dim."""
    if dims is None or (isinstance(dims, Sequence) and not dims):
        return tuple(range(ndim))
    if isinstance(dims, int):
        dims = (dims,)
    return tuple(sorted({d % ndim if ndim else 0 for d in dims}))


def reduced_groups(spec: TensorSpec, dims: int | Sequence[int] | None) -> int:
    """``R``: how many independent groups a reduction over ``dims`` of ``spec`` makes."""
    reduced = normalise_dims(dims, spec.ndim)
    size = math.prod(spec.shape[d] for d in reduced) if spec.ndim else 1
    return spec.numel // size if size else 0


def adaptive_taps(spatial_in: Sequence[int], spatial_out: Sequence[int]) -> int:
    """Input elements read by one grid of adaptive windows (torch's ``adaptive_*_pool`` and area
    interpolation): output ``j`` of ``o`` along a dim of ``n`` reads ``[⌊j·n/o⌋, ⌈(j + 1)·n/o⌉)``,
    so ``T = Π_i Σ_j (⌈(j + 1)·n_i/o_i⌉ − ⌊j·n_i/o_i⌋)`` (``Π_i o_i·n_i/o_i`` when every ``o_i`` divides ``n_i``)."""
    return math.prod(
        sum(-(-(j + 1) * n // o) - j * n // o for j in range(o)) for n, o in zip(spatial_in, spatial_out, strict=True)
    )


def unary_writes(call: OpCall, inplace: bool = False) -> int:
    """Output elements written: 0 for an in-place call (``inplace=True`` spelling or attribute)."""
    return 0 if inplace or call.get("inplace", False) else call.output.numel


def pointwise(flops_per_element: int, inplace: bool = False) -> Callable[[OpCall], Cost]:
    """A formula for an elementwise op of ``k`` FLOPs per output element.

    ``FLOPs = k·N_out``, ``MACs = 0``, ``DMAs = (elements of the tensor operands) + N_out·[not inplace]``.
    """

    def formula(call: OpCall) -> Cost:
        n_out = call.output.numel
        reads = sum(spec.numel for spec in call.inputs)
        return Cost(flops=flops_per_element * n_out, dmas=reads + unary_writes(call, inplace))

    formula.__doc__ = (
        f"Elementwise, {flops_per_element} FLOP(s) per element: ``FLOPs = {flops_per_element}·N_out``, "
        "``MACs = 0``, ``DMAs = N_inputs + N_out·[not inplace]``."
    )
    return formula
