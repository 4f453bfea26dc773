"""Shape rules of binary arithmetic (broadcast) and pointwise functions of one tensor."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import torch

from torchscan.graph.rules.common import broadcast, fresh, plain, strided_fake, strided_pointwise
from torchscan.graph.rules.table import Answer, RuleTable, is_tensor

__all__ = ["TABLE"]

TABLE = RuleTable("elementwise")


_DIVISIONS = frozenset({operator.truediv, torch.div})


@TABLE.register(
    operator.add,
    operator.mul,
    operator.sub,
    operator.truediv,
    torch.add,
    torch.mul,
    torch.sub,
    torch.div,
    torch.Tensor.__add__,
    torch.Tensor.__mul__,
    torch.Tensor.__sub__,
    torch.Tensor.__truediv__,
    torch.Tensor.__radd__,
    torch.Tensor.__rmul__,
    torch.Tensor.add,
    torch.Tensor.mul,
)
def _binary(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``a + b``, ``a * b``, ``a - b``, ``a / b`` (operators and ``torch.add``/``mul``/``sub``/``div``
    without keywords): two same-dtype tensors (broadcast), or a tensor and a Python number; a new
    contiguous tensor for contiguous operands, else laid out as the op lays them out
    (:func:`~torchscan.graph.rules.common.strided_pointwise`: a layer scale times a permuted block)."""
    if len(args) != 2 or kwargs:
        return None
    first, second = args
    tensors = [arg for arg in args if is_tensor(arg)]
    if not tensors or not all(strided_fake(tensor) for tensor in tensors):
        return None
    like = tensors[0]
    if not like.dtype.is_floating_point or any(t.dtype != like.dtype or t.device != like.device for t in tensors):
        return None
    if len(tensors) == 1:
        scalar = second if first is like else first
        if type(scalar) not in (int, float) or (function in _DIVISIONS and scalar == 0 and first is like):
            return None
        return fresh(like.shape, like) if plain(like) else strided_pointwise(function, args, kwargs)
    shape = broadcast([first.shape, second.shape])
    if shape is None:
        return None
    if min(first.dim(), second.dim()) == 0 and first.dim() != second.dim():  # 0-dim tensors: torch decides
        return None
    return fresh(shape, like) if plain(first) and plain(second) else strided_pointwise(function, args, kwargs)


_UNARY_NAMES = ("neg", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "abs", "reciprocal", "square", "erf")
"""Pointwise functions of one tensor answered by :func:`_unary`, as ``torch.<name>`` and ``Tensor.<name>``."""


@TABLE.register(
    operator.neg,
    torch.Tensor.__neg__,
    *(getattr(torch, name) for name in _UNARY_NAMES),
    *(getattr(torch.Tensor, name) for name in _UNARY_NAMES),
)
def _unary(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``-x``, ``x.cos()``, ``torch.exp(x)``…: one floating-point tensor, no other argument: a new
    contiguous tensor of its shape and dtype for a contiguous one, else laid out as the op lays it out."""
    if len(args) != 1 or kwargs or not strided_fake(args[0]) or not args[0].dtype.is_floating_point:
        return None
    return fresh(args[0].shape, args[0]) if plain(args[0]) else strided_pointwise(function, args, kwargs)
