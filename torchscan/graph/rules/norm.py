"""Shape rules of normalisation layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from torchscan.graph.rules.common import fresh, like, one_input, strided_fake
from torchscan.graph.rules.table import Answer, RuleTable

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
    ViT at batch > 1) gets a contiguous result too."""
    x = args[0] if len(args) == 1 and not kwargs and isinstance(module, nn.LayerNorm) else one_input(args, kwargs)
    x = x if x is not None and strided_fake(x) else None
    shape = tuple(module.normalized_shape)
    weights = (module.weight, getattr(module, "bias", None))
    if x is None or not x.dtype.is_floating_point:
        return None
    if any(w is not None and (w.dtype != x.dtype or w.device != x.device) for w in weights):
        return None
    return fresh(x.shape, x) if tuple(x.shape[x.dim() - len(shape) :]) == shape and x.dim() >= len(shape) else None
