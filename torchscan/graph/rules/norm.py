"""Shape rules of normalisation layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from torchscan.graph.rules.common import SEQUENCES, bound, fresh, like, one_input, plain, strided_fake
from torchscan.graph.rules.table import Answer, RuleTable, is_tensor

__all__ = ["TABLE"]

TABLE = RuleTable("norm")


@TABLE.register(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
def _batch_norm(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.BatchNormNd``: same shape (1-D takes ``(N, C)`` or ``(N, C, L)``)."""
    x = one_input(args, kwargs)
    dims = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}[type(module)]
    if x is None or x.dim() not in dims or x.shape[1] != module.num_features or not x.dtype.is_floating_point:
        return None
    if not like(x, module.weight, module.bias, module.running_mean, module.running_var):
        return None
    if module.training and x.numel() // x.shape[1] <= 1:  # torch refuses one value per channel in training
        return None
    return fresh(x.shape, x)


@TABLE.register(nn.LayerNorm, nn.RMSNorm)
def _trailing_norm(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.LayerNorm`` / ``nn.RMSNorm``: same shape; the trailing dims must equal ``normalized_shape``.
    Layer norm makes its input contiguous first, so a strided input (a transposed attention output,
    ViT at batch > 1) gets a contiguous result too; RMS norm as :func:`_rms_input` says."""
    x = args[0] if len(args) == 1 and not kwargs else None
    x = x if x is not None and (strided_fake(x) if isinstance(module, nn.LayerNorm) else _rms_input(x)) else None
    shape = tuple(module.normalized_shape)
    weights = (module.weight, getattr(module, "bias", None))
    if x is None or not x.dtype.is_floating_point:
        return None
    if any(w is not None and (w.dtype != x.dtype or w.device != x.device) for w in weights):
        return None
    return fresh(x.shape, x) if tuple(x.shape[x.dim() - len(shape) :]) == shape and x.dim() >= len(shape) else None


def _rms_input(x: Any) -> bool:
    """An input whose RMS norm is a new contiguous tensor: a contiguous one, or one of at most 3 dims
    of any strides (a transposed patch embedding); a strided 4-D or 5-D input may be kept in its
    memory format (channels-last in, channels-last out): torch decides there."""
    return plain(x) or (strided_fake(x) and x.dim() <= 3)


_LAYER_NORM = ("input", "normalized_shape", "weight", "bias", "eps")
_RMS_NORM = ("input", "normalized_shape", "weight", "eps")
_BATCH_NORM = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")


def _matches(tensor: Any, x: torch.Tensor, shape: tuple[int, ...]) -> bool:
    """``tensor`` is None, or a fake of ``shape`` with ``x``'s dtype and device."""
    return tensor is None or (
        strided_fake(tensor) and tuple(tensor.shape) == shape and tensor.dtype == x.dtype and tensor.device == x.device
    )


@TABLE.register(F.layer_norm, F.rms_norm)
def _layer_norm(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.layer_norm(input, normalized_shape, weight, bias, eps)``, ``F.rms_norm(input,
    normalized_shape, weight, eps)``: a new contiguous tensor of the input's shape (layer norm makes
    the input contiguous first, as :func:`_trailing_norm`; rms norm's input as :func:`_rms_input`), its
    trailing dims ``normalized_shape``, the weight (and bias) of that shape, dtype and device;
    ``rms_norm``'s ``eps`` may be None (the dtype's)."""
    rms = function is F.rms_norm
    call = bound(_RMS_NORM if rms else _LAYER_NORM, args, kwargs)
    if call is None:
        return None
    x, normalized, eps = call.get("input"), call.get("normalized_shape"), call.get("eps", None if rms else 1e-5)
    if not (_rms_input(x) if rms else strided_fake(x)) or not x.dtype.is_floating_point:
        return None
    if not (type(eps) in (int, float) or (rms and eps is None)):
        return None
    if type(normalized) not in SEQUENCES or not all(type(size) is int for size in normalized):
        return None
    shape = tuple(normalized)
    if not shape or x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape) :]) != shape:
        return None
    if not (_matches(call.get("weight"), x, shape) and _matches(call.get("bias"), x, shape)):
        return None
    return fresh(x.shape, x)


@TABLE.register(F.batch_norm)
def _functional_batch_norm(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)`` on a
    contiguous ``(N, C, …)`` input: a new contiguous tensor of its shape; every statistic and affine
    tensor None or ``(C,)`` of its dtype and device; in training more than one value per channel."""
    call = bound(_BATCH_NORM, args, kwargs)
    if call is None:
        return None
    x, training = call.get("input"), call.get("training", False)
    if not plain(x) or x.dim() < 2 or not x.dtype.is_floating_point or type(training) is not bool:
        return None
    if any(type(call.get(name, 0.1)) not in (int, float) for name in ("momentum", "eps")):
        return None
    channels = (int(x.shape[1]),)
    if not all(_matches(call.get(name), x, channels) for name in ("running_mean", "running_var", "weight", "bias")):
        return None
    if (call.get("running_mean") is None) != (call.get("running_var") is None) or (
        not training and call.get("running_mean") is None
    ):
        return None
    if training and x.numel() // x.shape[1] <= 1:  # torch refuses one value per channel in training
        return None
    return fresh(x.shape, x)


_GROUP_NORM = ("input", "num_groups", "weight", "bias", "eps")


def _grouped(x: Any, groups: Any, weight: Any, bias: Any) -> Answer:
    """A group norm of ``x`` in ``groups`` groups: a new contiguous tensor of its shape, for a contiguous
    floating-point ``x`` of at least 2 dims, not empty, whose channels (dim 1) the groups divide, and
    a weight and bias of ``(C,)`` or None; torch decides anything else (its channels-last kernel too)."""
    if not plain(x) or not x.dtype.is_floating_point or x.dim() < 2 or x.numel() == 0:
        return None
    if type(groups) is not int or groups < 1 or x.shape[1] % groups:
        return None
    channels = (x.shape[1],)
    for tensor in (weight, bias):  # the module's own tensors (real until a dispatch needs fakes) or fakes
        if tensor is not None and not (
            is_tensor(tensor)
            and tuple(tensor.shape) == channels
            and tensor.dtype == x.dtype
            and tensor.device == x.device
        ):
            return None
    return fresh(x.shape, x)


@TABLE.register(nn.GroupNorm)
def _group_norm_module(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.GroupNorm(num_groups, num_channels)``: as :func:`_grouped`, its channels ``num_channels``."""
    x = one_input(args, kwargs)
    if x is None or x.dim() < 2 or x.shape[1] != module.num_channels:
        return None
    return _grouped(x, module.num_groups, module.weight, module.bias)


@TABLE.register(F.group_norm)
def _group_norm(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.group_norm(input, num_groups, weight=None, bias=None, eps=1e-5)``: as :func:`_grouped`."""
    call = bound(_GROUP_NORM, args, kwargs)
    if call is None or type(call.get("eps", 1e-5)) not in (int, float):
        return None
    return _grouped(call.get("input"), call.get("num_groups"), call.get("weight"), call.get("bias"))


_NORMALIZE = ("input", "p", "dim", "eps", "out")


@TABLE.register(F.normalize)
def _normalize(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.normalize(input, p=2.0, dim=1, eps=1e-12)`` of a contiguous floating tensor: ``input`` divided
    by its norms along ``dim`` (broadcast back), a new contiguous tensor of its shape; a ``dim`` out of
    range, an empty input, ``out=``, or a strided input (the division follows its layout): torch's."""
    call = bound(_NORMALIZE, args, kwargs)
    if call is None or call.get("out") is not None:
        return None
    x, p, dim, eps = call.get("input"), call.get("p", 2.0), call.get("dim", 1), call.get("eps", 1e-12)
    if not plain(x) or not x.dtype.is_floating_point or type(p) not in (int, float) or type(eps) not in (int, float):
        return None
    rank = max(x.dim(), 1)
    if type(dim) is not int or not -rank <= dim < rank or x.dim() == 0 or x.numel() == 0:
        return None  # an empty tensor's norm may have no value (p = inf): torch decides
    return fresh(x.shape, x)
