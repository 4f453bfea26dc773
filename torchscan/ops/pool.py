"""Max, average and adaptive pooling (1-D, 2-D, 3-D; module and functional spellings).

``K`` is the product of the kernel sizes and ``d`` the number of spatial dims. Adaptive pools
read torch's windows: output ``j`` of ``o`` along a dim of ``n`` covers ``[⌊j·n/o⌋, ⌈(j + 1)·n/o⌉)``
(windows overlap when ``o`` does not divide ``n``), so the formula of the plain pool applies with
the total taps ``T = N_out/Π o_i · Π_i Σ_j len_i(j)`` in place of ``N_out·K`` (``T = N_out·K`` with
``K = Π n_i/o_i`` when every ``o_i`` divides ``n_i``). The ATen
spellings a scripted model records (``aten.max_pool2d_with_indices``…) count as the torch spelling
(the indices output is not counted), so a scripted model reports what its eager twin does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.common import adaptive_taps
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("pool")

aten = torch.ops.aten


def _kernel_volume(kernel: int | Sequence[int], dims: int) -> int:
    if isinstance(kernel, int):
        return kernel**dims
    return math.prod(kernel)


def _adaptive_taps(call: OpCall, dims: int) -> int:
    """Input elements read over all outputs: per dim ``Σ_j (⌈(j + 1)·n/o⌉ − ⌊j·n/o⌋)``, multiplied."""
    spatial_in = call.input.shape[-dims:]
    spatial_out = call.output.shape[-dims:]
    per_grid = adaptive_taps(spatial_in, spatial_out)
    grids = call.output.numel // math.prod(spatial_out) if math.prod(spatial_out) else 0
    return grids * per_grid


def _max(n_out: int, volume: int, taps: int | None = None) -> Cost:
    """``taps`` (default ``N_out·K``) input reads, ``taps − N_out`` comparisons."""
    taps = n_out * volume if taps is None else taps
    ops = taps - n_out
    return Cost(flops=ops, macs=ops, dmas=taps + n_out)


def _avg(n_out: int, volume: int, dims: int, taps: int | None = None) -> Cost:
    """``taps`` (default ``N_out·K``) input reads, ``taps − N_out`` adds and ``d`` divisor FLOPs per output."""
    taps = n_out * volume if taps is None else taps
    ops = taps - n_out + dims * n_out
    return Cost(flops=ops, macs=ops, dmas=taps + n_out)


@TABLE.register(
    nn.MaxPool1d, F.max_pool1d, torch.max_pool1d, aten.max_pool1d.default, aten.max_pool1d_with_indices.default, dims=1
)
@TABLE.register(
    nn.MaxPool2d, F.max_pool2d, torch.max_pool2d, aten.max_pool2d.default, aten.max_pool2d_with_indices.default, dims=2
)
@TABLE.register(
    nn.MaxPool3d, F.max_pool3d, torch.max_pool3d, aten.max_pool3d.default, aten.max_pool3d_with_indices.default, dims=3
)
def max_pool(call: OpCall, dims: int) -> Cost:
    """MaxPool: ``FLOPs = MACs = N_out·(K − 1)`` comparisons, ``DMAs = N_out·K + N_out`` (``torch.max_pool2d``, the
    function ``F.max_pool2d`` calls, too: its ``stride=[]`` is the kernel's, and the count reads no stride)."""
    return _max(call.output.numel, _kernel_volume(call.attrs["kernel_size"], dims))


TABLE.declare(nn.MaxPool3d, F.max_pool3d, torch.max_pool3d, saves=Saves.MAX_POOL)

TABLE.declare(nn.MaxPool2d, F.max_pool2d, torch.max_pool2d, saves=Saves.MAX_POOL)

TABLE.declare(nn.MaxPool1d, F.max_pool1d, torch.max_pool1d, saves=Saves.MAX_POOL)


@TABLE.register(nn.AvgPool1d, F.avg_pool1d, aten.avg_pool1d.default, dims=1)
@TABLE.register(nn.AvgPool2d, F.avg_pool2d, aten.avg_pool2d.default, dims=2)
@TABLE.register(nn.AvgPool3d, F.avg_pool3d, aten.avg_pool3d.default, dims=3)
def avg_pool(call: OpCall, dims: int) -> Cost:
    """AvgPool: ``FLOPs = MACs = N_out·(K − 1 + d)``, ``DMAs = N_out·K + N_out``."""
    return _avg(call.output.numel, _kernel_volume(call.attrs["kernel_size"], dims), dims)


TABLE.declare(nn.AvgPool3d, F.avg_pool3d, saves=Saves.AVG_POOL)

TABLE.declare(nn.AvgPool2d, F.avg_pool2d, saves=Saves.AVG_POOL)

TABLE.declare(nn.AvgPool1d, F.avg_pool1d, saves=Saves.AVG_POOL)


@TABLE.register(nn.AdaptiveMaxPool1d, F.adaptive_max_pool1d, torch.adaptive_max_pool1d, dims=1, saves=Saves.MAX_POOL)
@TABLE.register(nn.AdaptiveMaxPool2d, F.adaptive_max_pool2d, aten.adaptive_max_pool2d.default, dims=2)
@TABLE.register(nn.AdaptiveMaxPool3d, F.adaptive_max_pool3d, dims=3, saves=Saves.MAX_POOL)
def adaptive_max_pool(call: OpCall, dims: int) -> Cost:
    """AdaptiveMaxPool: ``FLOPs = MACs = T − N_out``, ``DMAs = T + N_out`` (``T``: module docstring)."""
    return _max(call.output.numel, 0, _adaptive_taps(call, dims))


TABLE.declare(nn.AdaptiveMaxPool2d, F.adaptive_max_pool2d, saves=Saves.MAX_POOL)


@TABLE.register(nn.AdaptiveAvgPool1d, F.adaptive_avg_pool1d, dims=1, saves=Saves.AVG_POOL)
@TABLE.register(
    nn.AdaptiveAvgPool2d,
    F.adaptive_avg_pool2d,
    aten.adaptive_avg_pool2d.default,
    aten._adaptive_avg_pool2d.default,
    dims=2,
)
@TABLE.register(nn.AdaptiveAvgPool3d, F.adaptive_avg_pool3d, dims=3, saves=Saves.AVG_POOL)
def adaptive_avg_pool(call: OpCall, dims: int) -> Cost:
    """AdaptiveAvgPool: ``FLOPs = MACs = T − N_out + d·N_out``, ``DMAs = T + N_out`` (``T``: module docstring)."""
    return _avg(call.output.numel, 0, dims, _adaptive_taps(call, dims))


TABLE.declare(nn.AdaptiveAvgPool2d, F.adaptive_avg_pool2d, saves=Saves.AVG_POOL)


_ADAPTIVE_AVERAGE = {
    nn.AdaptiveAvgPool1d: 1,
    F.adaptive_avg_pool1d: 1,
    nn.AdaptiveAvgPool2d: 2,
    F.adaptive_avg_pool2d: 2,
    nn.AdaptiveAvgPool3d: 3,
    F.adaptive_avg_pool3d: 3,
}
"""The adaptive average pools' spellings (their family's) by the number of dims they pool."""


def averaged_to_one(shape: tuple[int, ...], dims: int) -> bool:
    """Whether an adaptive average pool over the last ``dims`` dims with output ``shape`` pools to size 1 in each:
    torch then takes the mean over those dims (``adaptive_avg_pool2d``: ``input.mean((-1, -2), keepdim=True)``;
    the 1-D pool through the 2-D one, the 3-D pool likewise), whose backward keeps nothing, where any other
    size runs the pooling kernel, whose backward keeps the input."""
    return all(size == 1 for size in shape[-dims:])


def pools_to_one(call: OpCall) -> bool:
    """Whether ``call`` is an adaptive average pool to size 1 in every pooled dim (:func:`averaged_to_one`)."""
    dims = _ADAPTIVE_AVERAGE.get(call.target)
    return dims is not None and len(call.outputs) == 1 and averaged_to_one(call.output.shape, dims)
