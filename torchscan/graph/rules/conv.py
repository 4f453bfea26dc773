"""Shape rules of convolutions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._mode_utils import no_dispatch

from torchscan.graph.rules.common import fresh, plain, strided_fake, window_size
from torchscan.graph.rules.table import Answer, RuleTable

__all__ = ["TABLE"]

TABLE = RuleTable("conv")


@TABLE.register(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def _conv(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.ConvNd`` (zeros padding): ``(N, C_in, *L) -> (N, C_out, *L_out)``."""
    x = args[0] if len(args) == 1 and not kwargs and strided_fake(args[0]) else None
    weight, dims = module.weight, len(module.kernel_size)
    if module.padding_mode != "zeros":  # reflect/replicate/circular pad first: torch checks the sizes
        return None
    if x is None or x.dim() != dims + 2 or not weight.is_contiguous():
        return None
    if not all(t is None or (t.dtype == x.dtype and t.device == x.device) for t in (weight, module.bias)):
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
    if not plain(x):  # a strided input (channels-last, permuted tokens): the layout is the meta kernel's
        return _by_meta_kernel(module, x, padding)
    return fresh((x.shape[0], weight.shape[0], *sizes), x)


def _by_meta_kernel(module: nn.Module, x: FakeTensor, padding: Any) -> FakeTensor | None:
    """The result of a convolution of a strided 2-D or 3-D input, laid out as FakeTensor's convolution
    lays it out: in the memory format the backend torch selects for these tensors would give
    (``torch._C._select_conv_backend``, ``_conv_determine_backend_memory_format``: channels-last for a
    channels-last input on CPU), a new fake of ``x``'s mode and device."""
    weight, bias = module.weight, module.bias  # fakes, or the model's own (read for their metadata only)
    if type(x) is not FakeTensor or x.dim() not in (4, 5):
        return None
    zeros = (0,) * len(padding)  # no output padding: not transposed
    backend = torch._C._select_conv_backend(
        x,
        weight,
        stride=module.stride,
        padding=padding,
        dilation=module.dilation,
        transposed=False,
        output_padding=zeros,
        groups=module.groups,
        bias=bias,
    )
    layout = torch._C._conv_determine_backend_memory_format(x, weight, backend)
    if layout not in (torch.contiguous_format, torch.channels_last, torch.channels_last_3d):
        return None
    shape = (
        x.shape[0],
        weight.shape[0],
        *(
            window_size(x.shape[2 + d], module.kernel_size[d], module.stride[d], padding[d], module.dilation[d], False)
            for d in range(len(padding))
        ),
    )
    with no_dispatch():
        out = torch.empty(shape, dtype=x.dtype, device="meta", memory_format=layout)
    return FakeTensor(x.fake_mode, out, x.device)
