"""Shape rules of convolutions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor
from torch.nn import functional as F
from torch.utils._mode_utils import no_dispatch

from torchscan.graph.fake import fake_tensor
from torchscan.graph.rules.common import SEQUENCES, bound, fresh, plain, strided_fake, window_size
from torchscan.graph.rules.table import Answer, Pending, RuleTable

__all__ = ["TABLE"]

TABLE = RuleTable("conv")


@TABLE.register(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def _conv(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.ConvNd`` (zeros padding): ``(N, C_in, *L) -> (N, C_out, *L_out)``."""
    x = args[0] if len(args) == 1 and not kwargs and strided_fake(args[0]) else None
    if module.padding_mode != "zeros" or x is None:  # reflect/replicate/circular pad first: torch checks the sizes
        return None
    if x.shape[1] != module.in_channels:
        return None
    weight, bias = module.weight, module.bias
    return _convolution(x, weight, bias, module.stride, module.padding, module.dilation, module.groups)


_CONV_NAMES = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


@TABLE.register(F.conv1d, F.conv2d, F.conv3d)
def _conv_function(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.convNd(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)``, as the module."""
    call = bound(_CONV_NAMES, args, kwargs)
    if call is None:
        return None
    x, weight = call.get("input"), call.get("weight")
    dims = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}[function]
    if not strided_fake(x) or not strided_fake(weight) or weight.dim() != dims + 2:
        return None
    bias = call.get("bias")
    if bias is not None and (not strided_fake(bias) or tuple(bias.shape) != (weight.shape[0],)):
        return None
    groups = call.get("groups", 1)
    if type(groups) is not int or groups < 1:
        return None
    try:
        stride, dilation = (_ints(call.get(name, 1), dims) for name in ("stride", "dilation"))
        padding = call.get("padding", 0)
        padding = padding if isinstance(padding, str) else _ints(padding, dims)
    except TypeError:
        return None
    return _convolution(x, weight, bias, stride, padding, dilation, groups)


def _ints(value: Any, count: int) -> tuple[int, ...]:
    """An int or a sequence of ``count`` ints as a tuple (a TypeError otherwise)."""
    if type(value) is int:
        return (value,) * count
    if type(value) in SEQUENCES and len(value) == count and all(type(item) is int for item in value):
        return tuple(value)
    raise TypeError(value)


def _convolution(
    x: Any,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...] | str,
    dilation: tuple[int, ...],
    groups: int,
) -> Answer:
    """A batched convolution with zeros padding: ``(N, C_in, *L) -> (N, C_out, *L_out)``, each
    ``L_out = ⌊(L + 2p − d(k − 1) − 1)/s⌋ + 1`` (``padding="same"``: ``L_out = L``, stride 1); a new
    contiguous tensor for a contiguous input, else laid out as the backend torch selects would lay it out
    (:func:`_strided_result`; not for ``"same"``)."""
    dims = weight.dim() - 2
    if x.dim() != dims + 2 or not weight.is_contiguous() or not x.dtype.is_floating_point:
        return None
    if not all(t is None or (t.dtype == x.dtype and t.device == x.device) for t in (weight, bias)):
        return None
    if x.shape[1] != weight.shape[1] * groups or weight.shape[0] % groups:
        return None
    if any(step < 1 for step in (*stride, *dilation)) or (not isinstance(padding, str) and min(padding) < 0):
        return None
    kernel = weight.shape[2:]
    if padding == "same":  # stride 1 (torch refuses others), d(k − 1) padding in all per dim: L_out = L
        if any(step != 1 for step in stride) or not plain(x):  # an odd total pads the input first: its layout
            return None
        return fresh((x.shape[0], weight.shape[0], *x.shape[2:]), x)
    if isinstance(padding, str):
        if padding != "valid":
            return None
        padding = (0,) * dims
    sizes = [window_size(x.shape[2 + d], kernel[d], stride[d], padding[d], dilation[d], False) for d in range(dims)]
    if any(size <= 0 for size in sizes):
        return None
    shape = (x.shape[0], weight.shape[0], *sizes)
    if not plain(x):  # a strided input (channels-last, permuted tokens): laid out as the backend would
        return _strided_result(x, weight, bias, shape, stride, padding, dilation, groups)
    return fresh(shape, x)


def _strided_result(
    x: Any,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> FakeTensor | None:
    """The result of a convolution of a strided 2-D or 3-D input, laid out as FakeTensor's convolution
    lays it out: in the memory format the backend torch selects for these tensors would give
    (``torch._C._select_conv_backend``, ``_conv_determine_backend_memory_format``: channels-last for a
    channels-last input on CPU), a new fake of ``x``'s mode and device. ``weight`` and ``bias`` are
    fakes or the model's own tensors (read for their metadata only)."""
    if type(x) is not FakeTensor or x.dim() not in (4, 5):
        return None
    weight = weight.fake() if type(weight) is Pending else weight  # the backend reads tensors: made, if pending
    bias = bias.fake() if type(bias) is Pending else bias
    zeros = (0,) * len(padding)  # no output padding: not transposed
    backend = torch._C._select_conv_backend(
        x,
        weight,
        stride=stride,
        padding=padding,
        dilation=dilation,
        transposed=False,
        output_padding=zeros,
        groups=groups,
        bias=bias,
    )
    layout = torch._C._conv_determine_backend_memory_format(x, weight, backend)
    if layout not in (torch.contiguous_format, torch.channels_last, torch.channels_last_3d):
        return None
    with no_dispatch():
        out = torch.empty(shape, dtype=x.dtype, device="meta", memory_format=layout)
    return fake_tensor(x.fake_mode, out, x.device)
