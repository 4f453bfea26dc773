"""Shape rules of activations, softmax and dropout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from torchscan.graph.rules.common import fresh, in_place, plain, strided_fake, strided_pointwise
from torchscan.graph.rules.table import Answer, RuleTable

__all__ = ["TABLE"]

TABLE = RuleTable("activation")


_INPLACE_FUNCTIONS = frozenset({F.relu, F.relu6, F.silu, F.hardswish, F.hardsigmoid, F.mish})


_MODULE_FUNCTIONS: dict[type[nn.Module], Any] = {
    nn.ReLU: F.relu,
    nn.ReLU6: F.relu6,
    nn.SiLU: F.silu,
    nn.GELU: F.gelu,
    nn.Sigmoid: torch.sigmoid,
    nn.Tanh: torch.tanh,
    nn.Hardswish: F.hardswish,
    nn.Hardsigmoid: F.hardsigmoid,
    nn.Mish: F.mish,
}
"""The function each activation module's forward calls (``nn.GELU`` with its ``approximate``)."""


@TABLE.register(*_MODULE_FUNCTIONS)
def _pointwise_module(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """Activations: same shape; the input itself when ``inplace``; a new contiguous tensor for a
    contiguous input, else laid out as the function lays it out (a permuted or channels-last input)."""
    x = args[0] if len(args) == 1 and not kwargs and strided_fake(args[0]) else None
    if x is None or not x.dtype.is_floating_point:
        return None
    if getattr(module, "inplace", False):
        return in_place(x)
    if plain(x):
        return fresh(x.shape, x)
    extra = {"approximate": module.approximate} if type(module) is nn.GELU else {}
    return strided_pointwise(_MODULE_FUNCTIONS[type(module)], (x,), extra)


_KEYWORDS = {F.gelu: {"approximate"}}
"""The keyword arguments of the one-argument activations (besides ``inplace``)."""

_GELU = (None, "none", "tanh")
"""``F.gelu``'s ``approximate`` values (None: not given)."""


@TABLE.register(
    F.relu,
    F.relu6,
    F.silu,
    F.gelu,
    F.hardswish,
    F.hardsigmoid,
    F.mish,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    F.sigmoid,
    F.tanh,
    torch.Tensor.relu,
    torch.Tensor.sigmoid,
    torch.Tensor.tanh,
)
def _pointwise_function(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.relu(x, inplace=False)`` (the functions that take ``inplace``), ``F.gelu(x, approximate=…)``
    and one-argument activations: same shape; ``x`` when in place; laid out as :func:`_pointwise_module`."""
    if not args or not strided_fake(args[0]) or not args[0].dtype.is_floating_point:
        return None
    x, extra = args[0], dict(kwargs)
    if function in _INPLACE_FUNCTIONS:
        if len(args) > 2 or (len(args) == 2 and "inplace" in extra):
            return None
        inplace = args[1] if len(args) == 2 else extra.pop("inplace", False)
        if not isinstance(inplace, bool) or extra:
            return None
        if inplace:
            return in_place(x)
    elif len(args) != 1 or set(extra) - _KEYWORDS.get(function, set()) or extra.get("approximate") not in _GELU:
        return None
    return fresh(x.shape, x) if plain(x) else strided_pointwise(function, (x,), extra)


@TABLE.register(torch.softmax, torch.Tensor.softmax, F.softmax)
def _softmax(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``x.softmax(dim)`` / ``torch.softmax(x, dim)`` (no dtype): same shape, new tensor."""
    extra = dict(kwargs)
    if len(args) == 1 and "dim" in extra:
        args = (args[0], extra.pop("dim"))
    if extra or len(args) != 2 or not plain(args[0]) or type(args[1]) is not int:
        return None
    x, dim = args
    if not x.dtype.is_floating_point or not -max(x.dim(), 1) <= dim < max(x.dim(), 1):
        return None
    return fresh(x.shape, x)


@TABLE.register(nn.Softmax)
def _softmax_module(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.Softmax(dim)``: as ``F.softmax(x, dim)``; without a ``dim`` torch picks one (and warns)."""
    if len(args) != 1 or kwargs or type(module.dim) is not int:
        return None
    return _softmax(F.softmax, (args[0], module.dim), {})


_CHANNEL_DROPOUT_DIMS = {nn.Dropout1d: (3,), nn.Dropout2d: (4,), nn.Dropout3d: (5,)}
"""The batched rank of channel dropouts: torch refuses some others, and returns a view of an
unbatched input (unsqueezed, then squeezed back), not the input itself."""


@TABLE.register(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
def _dropout(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """Dropout: the input itself (any layout) in eval mode (or ``p = 0``) or in place, else a new
    tensor (of a contiguous input); channel dropouts only on batched inputs."""
    x = args[0] if len(args) == 1 and not kwargs and strided_fake(args[0]) else None
    if x is None or not x.dtype.is_floating_point or x.dim() not in _CHANNEL_DROPOUT_DIMS.get(type(module), (x.dim(),)):
        return None
    if not module.training or module.p == 0 or module.inplace:
        return in_place(x) if module.training and module.inplace else x
    return fresh(x.shape, x) if plain(x) else None
