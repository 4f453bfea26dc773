"""Shape rules of resampling: ``F.interpolate`` and ``nn.Upsample`` (nearest, nearest-exact, linear,
bilinear, bicubic, trilinear)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from torch.nn import functional as F

from torchscan.graph.rules.common import SEQUENCES, bound, fresh, plain
from torchscan.graph.rules.table import Answer, RuleTable

__all__ = ["TABLE"]

TABLE = RuleTable("upsample")

_MODES = {
    "nearest": (3, 4, 5),
    "nearest-exact": (3, 4, 5),
    "linear": (3,),
    "bilinear": (4,),
    "bicubic": (4,),
    "trilinear": (5,),
}
"""The modes answered, with the input ranks torch takes each at (``area`` is an adaptive pool)."""

_INTERPOLATE = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")


def _resampled(x: Any, size: Any, scale: Any, mode: Any, align_corners: Any, recompute: Any, antialias: Any) -> Answer:
    """``F.interpolate``'s result: a new contiguous tensor of ``x``'s batch and channels and each spatial
    dim ``size`` (an int or one per dim) or ``⌊L · s⌋`` for a ``scale_factor`` ``s`` (a number or one per
    dim; recomputed or not, the output size is that floor), for a contiguous floating-point ``x`` of the
    rank the mode takes; every size at least 1. torch decides the rest: both or neither of ``size`` and
    ``scale_factor``, ``align_corners`` with a nearest mode, ``antialias``, ``area``, another layout (the
    kernels keep a channels-last input's format)."""
    if not plain(x) or not x.dtype.is_floating_point or mode not in _MODES or x.dim() not in _MODES[mode]:
        return None
    if antialias is not False or (align_corners is not None and mode.startswith("nearest")):
        return None
    if align_corners is not None and type(align_corners) is not bool:
        return None
    dims = x.dim() - 2
    spatial = tuple(x.shape[2:])
    if (size is None) == (scale is None) or (size is not None and recompute):
        return None
    if size is not None:
        sizes = (size,) * dims if type(size) is int else tuple(size) if type(size) in SEQUENCES else None
        if sizes is None or len(sizes) != dims or not all(type(item) is int for item in sizes):
            return None
    else:
        scales = (scale,) * dims if type(scale) in (int, float) else tuple(scale) if type(scale) in SEQUENCES else None
        if scales is None or len(scales) != dims or not all(type(item) in (int, float) for item in scales):
            return None
        sizes = tuple(int(length * factor) for length, factor in zip(spatial, scales, strict=True))
    if min(sizes) < 1 or min(spatial) < 1:
        return None
    return fresh((*x.shape[:2], *sizes), x)


@TABLE.register(F.interpolate)
def _interpolate(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``F.interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
    recompute_scale_factor=None, antialias=False)``: see :func:`_resampled`."""
    call = bound(_INTERPOLATE, args, kwargs)
    if call is None:
        return None
    return _resampled(
        call.get("input"),
        call.get("size"),
        call.get("scale_factor"),
        call.get("mode", "nearest"),
        call.get("align_corners"),
        call.get("recompute_scale_factor"),
        call.get("antialias", False),
    )


@TABLE.register(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def _upsample(module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``nn.Upsample`` (and its nearest and bilinear 2-D spellings): ``F.interpolate`` with its settings."""
    if len(args) != 1 or kwargs:
        return None
    return _resampled(
        args[0],
        module.size,
        module.scale_factor,
        module.mode,
        module.align_corners,
        module.recompute_scale_factor,
        False,
    )
