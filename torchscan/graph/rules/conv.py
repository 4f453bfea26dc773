"""Shape rules of convolutions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from torchscan.graph.rules.common import fresh, like, one_input, window_size
from torchscan.graph.rules.table import Answer, RuleTable

__all__ = ["TABLE"]

TABLE = RuleTable("conv")


@TABLE.register(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def _conv(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.ConvNd`` (zeros padding): ``(N, C_in, *L) -> (N, C_out, *L_out)``."""
    x = one_input(args, kwargs)
    weight, dims = module.weight, len(module.kernel_size)
    if module.padding_mode != "zeros":  # reflect/replicate/circular pad first: torch checks the sizes
        return None
    if x is None or x.dim() != dims + 2 or not like(x, weight, module.bias) or not weight.is_contiguous():
        return None
    if x.shape[1] != module.in_channels or module.in_channels != weight.shape[1] * module.groups:
        return None
    padding = module.padding
    if isinstance(padding, str):
        if padding != "valid":  # 'same' is computed by torch (asymmetric padding for even kernels)
            return None
        padding = (0,) * dims
    sizes = [
        window_size(
            x.shape[2 + dim], module.kernel_size[dim], module.stride[dim], padding[dim], module.dilation[dim], False
        )
        for dim in range(dims)
    ]
    if any(size <= 0 for size in sizes):
        return None
    return fresh((x.shape[0], weight.shape[0], *sizes), x)
