"""Shape rules of activations, softmax and dropout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from torchscan.graph.rules.common import fresh, in_place, one_input, plain
from torchscan.graph.rules.table import Answer, RuleTable

__all__ = ["TABLE"]

TABLE = RuleTable("activation")


_INPLACE_FUNCTIONS = frozenset({F.relu, F.relu6, F.silu, F.hardswish, F.hardsigmoid, F.mish})


@TABLE.register(nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Mish)
def _pointwise_module(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """Activations: same shape; the input itself when ``inplace``."""
    x = one_input(args, kwargs)
    if x is None or not x.dtype.is_floating_point:
        return None
    if getattr(module, "inplace", False):
        return in_place(x)
    return fresh(x.shape, x)


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
)
def _pointwise_function(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.relu(x, inplace=False)`` and one-argument activations: same shape; ``x`` when in place."""
    if not args or not plain(args[0]) or not args[0].dtype.is_floating_point:
        return None
    x = args[0]
    extra = dict(kwargs)
    if len(args) > 2 or (len(args) == 2 and "inplace" in extra):
        return None
    inplace = args[1] if len(args) == 2 else extra.pop("inplace", False)
    if extra or not isinstance(inplace, bool) or (inplace and function not in _INPLACE_FUNCTIONS):
        return None
    if inplace:
        return in_place(x)
    return fresh(x.shape, x)


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


_CHANNEL_DROPOUT_DIMS = {nn.Dropout1d: (3,), nn.Dropout2d: (4,), nn.Dropout3d: (5,)}
"""The batched rank of channel dropouts: torch refuses some others, and returns a view of an
unbatched input (unsqueezed, then squeezed back), not the input itself."""


@TABLE.register(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
def _dropout(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """Dropout: the input itself in eval mode (or ``p = 0``) or in place, else a new tensor;
    channel dropouts only on batched inputs."""
    x = one_input(args, kwargs)
    if x is None or not x.dtype.is_floating_point or x.dim() not in _CHANNEL_DROPOUT_DIMS.get(type(module), (x.dim(),)):
        return None
    if not module.training or module.p == 0 or module.inplace:
        return in_place(x) if module.training and module.inplace else x
    return fresh(x.shape, x)
