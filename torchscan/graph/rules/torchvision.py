"""Shape rules for torchvision's fx-wrapped functions (loaded once torchvision is imported): Swin's
window attention, relative position bias and patch merging's padding, ``torchvision.ops.stochastic_depth``.

Swin's window attention runs ~25 ops per call on fake tensors when dispatched; its output is
a new contiguous tensor of its input's shape, and the relative position bias a new contiguous
``(1, heads, N, N)`` tensor (``N`` = window area), both by torchvision's code
(``torchvision/models/swin_transformer.py``). Declined for anything unusual, as every rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torchvision import ops
from torchvision.models import swin_transformer

from torchscan.graph.rules.common import plain, strided_fake
from torchscan.graph.rules.table import Answer, Fresh, RuleTable, is_tensor

__all__ = ["TABLE"]

TABLE = RuleTable("torchvision")

_ATTENTION = inspect.signature(swin_transformer.shifted_window_attention)
_BIAS = inspect.signature(swin_transformer._get_relative_position_bias)


def _shaped(value: Any, shape: tuple[int, ...], like: torch.Tensor) -> bool:
    """None, or a tensor of ``shape`` with ``like``'s dtype and device."""
    return value is None or (
        is_tensor(value) and tuple(value.shape) == shape and value.dtype == like.dtype and value.device == like.device
    )


@TABLE.register(swin_transformer.shifted_window_attention)
def _window_attention(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``shifted_window_attention(x[N, H, W, C], qkv_weight[3C, C], proj_weight[C, C], bias[1, h, A, A], …)``
    → a new contiguous ``[N, H, W, C]`` (``A`` = window area, ``h`` heads dividing ``C``)."""
    call = _ATTENTION.bind(*args, **kwargs).arguments
    x, qkv, proj, bias = call["input"], call["qkv_weight"], call["proj_weight"], call["relative_position_bias"]
    window, heads = call["window_size"], call["num_heads"]
    if not all(is_tensor(t) for t in (qkv, proj, bias)) or not strided_fake(x) or x.dim() != 4:
        return None
    channels = x.shape[-1]
    if not x.dtype.is_floating_point or any(t.dtype != x.dtype or t.device != x.device for t in (qkv, proj, bias)):
        return None
    if type(heads) is not int or heads <= 0 or channels % heads or len(window) != 2 or min(x.shape[1:3]) <= 0:
        return None
    area = int(window[0]) * int(window[1])
    if tuple(qkv.shape) != (3 * channels, channels) or tuple(proj.shape) != (channels, channels):
        return None
    if tuple(bias.shape) != (1, heads, area, area):
        return None
    if not _shaped(call.get("qkv_bias"), (3 * channels,), x) or not _shaped(call.get("proj_bias"), (channels,), x):
        return None
    if not _shaped(call.get("logit_scale"), (heads, 1, 1), x):
        return None
    return Fresh(tuple(x.shape), x.dtype, x.device)


@TABLE.register(swin_transformer._get_relative_position_bias)
def _position_bias(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``_get_relative_position_bias(table[(2w0−1)(2w1−1), h], index[A·A], window)`` → a new
    contiguous ``[1, h, A, A]``."""
    call = _BIAS.bind(*args, **kwargs).arguments
    table, index, window = call["relative_position_bias_table"], call["relative_position_index"], call["window_size"]
    if not is_tensor(table) or not is_tensor(index) or len(window) != 2:
        return None
    area = int(window[0]) * int(window[1])
    rows = (2 * int(window[0]) - 1) * (2 * int(window[1]) - 1)
    if table.dim() != 2 or table.shape[0] != rows or index.numel() != area * area or index.dtype != torch.int64:
        return None
    if not table.dtype.is_floating_point or table.device != index.device:
        return None
    return Fresh((1, int(table.shape[1]), area, area), table.dtype, table.device)


@TABLE.register(swin_transformer._patch_merging_pad)
def _patch_merging(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``_patch_merging_pad(x[..., H, W, C])`` (pad H and W to even sizes, the four strided 2x2 slices
    concatenated on the last dim) → a new contiguous ``[..., ⌈H/2⌉, ⌈W/2⌉, 4C]`` for a contiguous ``x`` of
    at least three dims, ``H, W ≥ 1`` (another layout may make the pad and the concatenation keep a
    memory format); dispatched through FakeTensor it runs six ops (~3.7 ms a call)."""
    if len(args) != 1 or kwargs or not plain(args[0]):
        return None
    x = args[0]
    if x.dim() < 3 or min(x.shape[-3:-1]) < 1:
        return None
    *lead, height, width, channels = x.shape
    return Fresh((*lead, -(-height // 2), -(-width // 2), 4 * channels), x.dtype, x.device)


_DEPTH = inspect.signature(ops.stochastic_depth)


@TABLE.register(ops.stochastic_depth)
def _stochastic_depth(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``stochastic_depth(input, p, mode, training=True)``: ``input`` itself in eval mode or with
    ``p = 0``; in training a new tensor of its shape (``input · noise``, the noise broadcast from
    ``(N, 1, …)`` or ``(1, …)``) for a contiguous floating-point input; a bad ``p`` or mode is torch's."""
    try:
        call = _DEPTH.bind(*args, **kwargs).arguments
    except TypeError:
        return None
    x, p, mode, training = call.get("input"), call.get("p"), call.get("mode"), call.get("training", True)
    if not strided_fake(x) or type(p) not in (int, float) or not 0.0 <= p <= 1.0 or mode not in ("batch", "row"):
        return None
    if not training or p == 0.0:
        return x
    if not plain(x) or not x.dtype.is_floating_point or x.dim() == 0:
        return None
    return Fresh(tuple(x.shape), x.dtype, x.device)
