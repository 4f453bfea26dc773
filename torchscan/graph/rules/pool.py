"""Shape rules of pools (windows as a convolution's), adaptive pools and means (a global pool over any dims)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from torchscan.graph.rules.common import SEQUENCES, as_tuple, bound, fresh, one_input, plain, window_size
from torchscan.graph.rules.table import Answer, RuleTable

__all__ = ["TABLE"]

TABLE = RuleTable("pool")


_POOL_DIMS: Mapping[type, int] = MappingProxyType(
    {
        nn.MaxPool1d: 1,
        nn.MaxPool2d: 2,
        nn.MaxPool3d: 3,
        nn.AvgPool1d: 1,
        nn.AvgPool2d: 2,
        nn.AvgPool3d: 3,
        nn.AdaptiveAvgPool1d: 1,
        nn.AdaptiveAvgPool2d: 2,
        nn.AdaptiveAvgPool3d: 3,
        nn.AdaptiveMaxPool1d: 1,
        nn.AdaptiveMaxPool2d: 2,
        nn.AdaptiveMaxPool3d: 3,
    }
)


_ADAPTIVE_FUNCTIONS: Mapping[Any, int] = MappingProxyType(
    {F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3}
)


@TABLE.register(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def _pool(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.MaxPoolNd`` (without indices) and ``nn.AvgPoolNd``: windows as a convolution's."""
    x = one_input(args, kwargs)
    dims = _POOL_DIMS[type(module)]
    if x is None or x.dim() != dims + 2 or getattr(module, "return_indices", False) or not x.dtype.is_floating_point:
        return None
    kernel = as_tuple(module.kernel_size, dims)
    stride = as_tuple(module.stride if module.stride else module.kernel_size, dims)
    padding = as_tuple(module.padding, dims)
    dilation = as_tuple(getattr(module, "dilation", 1), dims)
    if any(2 * pad > k for pad, k in zip(padding, kernel, strict=True)):  # torch's rule: pad ≤ kernel/2
        return None
    if type(module) is nn.AvgPool3d and any(x.shape[2 + dim] < kernel[dim] for dim in range(dims)):
        return None  # avg_pool3d refuses an input smaller than its kernel, padding or not
    sizes = [
        window_size(x.shape[2 + dim], kernel[dim], stride[dim], padding[dim], dilation[dim], module.ceil_mode)
        for dim in range(dims)
    ]
    return fresh((*x.shape[:2], *sizes), x) if all(size > 0 for size in sizes) else None


@TABLE.register(
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
def _adaptive_pool(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.AdaptiveAvgPoolNd`` / ``nn.AdaptiveMaxPoolNd`` (without indices)."""
    x = one_input(args, kwargs)
    return (
        adaptive(x, module.output_size, _POOL_DIMS[type(module)])
        if not getattr(module, "return_indices", False)
        else None
    )


def adaptive(x: Any, output_size: Any, dims: int) -> Answer:
    """``(N, C, *L) -> (N, C, *output_size)``, a ``None`` size keeping the input's."""
    if x is None or not plain(x) or x.dim() != dims + 2 or not x.dtype.is_floating_point or x.shape[1] == 0:
        return None
    if output_size is None or (dims == 1 and isinstance(output_size, (tuple, list)) and None in output_size):
        return None
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * dims
    if len(sizes) != dims:
        return None
    spatial = [int(x.shape[2 + dim]) if size is None else int(size) for dim, size in enumerate(sizes)]
    if any(int(x.shape[2 + dim]) == 0 for dim in range(dims)):
        return None
    return fresh((*x.shape[:2], *spatial), x)


@TABLE.register(*_ADAPTIVE_FUNCTIONS)
def _adaptive_function(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.adaptive_avg_pool{1,2,3}d(x, output_size)``."""
    extra = dict(kwargs)
    if not args or len(args) > 2 or (len(args) == 2 and "output_size" in extra):
        return None
    size = args[1] if len(args) == 2 else extra.pop("output_size", None)
    return None if extra or size is None else adaptive(args[0], size, _ADAPTIVE_FUNCTIONS[function])


@TABLE.register(torch.mean, torch.Tensor.mean)
def _mean(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``x.mean(dim=None, keepdim=False)`` of a contiguous floating-point tensor (no ``dtype``): a new
    contiguous tensor of the shape left once the ``dim`` s are reduced (kept as size 1 with ``keepdim``);
    ``dim`` an int or a sequence of distinct ints in range, or None (every dim: a 0-d result)."""
    call = bound(("input", "dim", "keepdim"), args, kwargs)
    if call is None:
        return None
    x, dim, keep = call.get("input"), call.get("dim"), call.get("keepdim", False)
    if not plain(x) or not x.dtype.is_floating_point or type(keep) is not bool:
        return None
    rank = x.dim()
    if dim is None:
        if "keepdim" in call:  # ``mean(dim=None, keepdim=…)``: torch's overloads decide
            return None
        dims = set(range(rank))
    else:
        items = (dim,) if type(dim) is int else dim
        if type(items) not in SEQUENCES or not items or not all(type(item) is int for item in items):
            return None
        if not all(-max(rank, 1) <= item < max(rank, 1) for item in items):
            return None
        dims = {item % max(rank, 1) for item in items}
        if len(dims) != len(items) or rank == 0:
            return None
    shape = (
        [1 if position in dims else size for position, size in enumerate(x.shape)]
        if keep
        else [size for position, size in enumerate(x.shape) if position not in dims]
    )
    return fresh(shape, x)
