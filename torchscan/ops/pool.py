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

from torchscan.ops.common import adaptive_taps, argument
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
@TABLE.register(F.max_pool1d_with_indices, torch.max_pool1d_with_indices, dims=1, saves=Saves.MAX_POOL)
@TABLE.register(F.max_pool2d_with_indices, dims=2, saves=Saves.MAX_POOL)
@TABLE.register(F.max_pool3d_with_indices, dims=3, saves=Saves.MAX_POOL)
def max_pool(call: OpCall, dims: int) -> Cost:
    """MaxPool: ``FLOPs = MACs = N_out·(K − 1)`` comparisons, ``DMAs = N_out·K + N_out`` (``torch.max_pool2d``, the
    function ``F.max_pool2d`` calls, too: its ``stride=[]`` is the kernel's, and the count reads no stride;
    ``F.max_pool2d_with_indices``, what ``F.max_pool2d(..., return_indices=True)`` calls: the indices not counted)."""
    return _max(call.output.numel, _kernel_volume(call.attrs["kernel_size"], dims))


TABLE.declare(nn.MaxPool3d, F.max_pool3d, torch.max_pool3d, saves=Saves.MAX_POOL)

TABLE.declare(nn.MaxPool2d, F.max_pool2d, torch.max_pool2d, saves=Saves.MAX_POOL)

TABLE.declare(nn.MaxPool1d, F.max_pool1d, torch.max_pool1d, saves=Saves.MAX_POOL)


@TABLE.register(nn.LPPool1d, F.lp_pool1d, dims=1)
@TABLE.register(nn.LPPool2d, F.lp_pool2d, dims=2)
@TABLE.register(nn.LPPool3d, F.lp_pool3d, dims=3)
def lp_pool(call: OpCall, dims: int) -> Cost:
    """LPPool, the power mean ``(Σ_window x^p)^{1/p}`` over windows of ``K`` elements (no padding): a power per input
    element, ``K − 1`` adds and a root per output, ``FLOPs = N_in + N_out·K``, ``MACs = N_out·(K − 1)`` (the window
    sums, as AvgPool's), ``DMAs = N_out·K + N_out``. ``p = ∞`` is a MaxPool of ``|x|``: ``FLOPs = MACs`` of the max
    plus ``N_in`` (the abs), ``FLOPs = N_in + N_out·(K − 1)``; ``p = −∞`` the negated min, ``N_in + N_out`` more
    (two negations)."""
    n_in, n_out = call.input.numel, call.output.numel
    volume = _kernel_volume(argument(call, "kernel_size", 1), dims)
    power = float(argument(call, "norm_type", 0, 2.0))
    comparisons = n_out * (volume - 1)
    if math.isinf(power):
        negations = n_in + n_out if power < 0 else 0
        return Cost(flops=n_in + comparisons + negations, macs=comparisons, dmas=n_out * volume + n_out)
    return Cost(flops=n_in + n_out * volume, macs=comparisons, dmas=n_out * volume + n_out)


@TABLE.register(
    nn.FractionalMaxPool2d,
    F.fractional_max_pool2d,
    F.fractional_max_pool2d_with_indices,
    aten.fractional_max_pool2d.default,
    dims=2,
)
@TABLE.register(
    nn.FractionalMaxPool3d,
    F.fractional_max_pool3d,
    F.fractional_max_pool3d_with_indices,
    aten.fractional_max_pool3d.default,
    dims=3,
)
def fractional_max_pool(call: OpCall, dims: int) -> Cost:
    """FractionalMaxPool, a max over a window of ``K`` elements at pseudo-random steps per output: as MaxPool,
    ``FLOPs = MACs = N_out·(K − 1)``, ``DMAs = N_out·K + N_out`` (the indices and the random steps it draws, two
    per plane, not counted: a random draw counts no arithmetic)."""
    return _max(call.output.numel, _kernel_volume(argument(call, "kernel_size", 0), dims))


@TABLE.register(
    nn.MaxUnpool1d, F.max_unpool1d, nn.MaxUnpool2d, F.max_unpool2d, aten.max_unpool2d.default, aten.max_unpool3d.default
)
@TABLE.register(nn.MaxUnpool3d, F.max_unpool3d)
def max_unpool(call: OpCall) -> Cost:
    """MaxUnpool, a max pool's inverse: an output of zeros, each input element written where its index says (a
    scatter): ``FLOPs = MACs = 0``, ``DMAs = 3·N_in + N_out`` (value and index read, the output written whole)."""
    return Cost(dmas=3 * call.input.numel + call.output.numel)


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
@TABLE.register(F.adaptive_max_pool1d_with_indices, dims=1, saves=Saves.MAX_POOL)
@TABLE.register(F.adaptive_max_pool2d_with_indices, dims=2, saves=Saves.MAX_POOL)
@TABLE.register(F.adaptive_max_pool3d_with_indices, aten.adaptive_max_pool3d.default, dims=3, saves=Saves.MAX_POOL)
def adaptive_max_pool(call: OpCall, dims: int) -> Cost:
    """AdaptiveMaxPool: ``FLOPs = MACs = T − N_out``, ``DMAs = T + N_out`` (``T``: module docstring; the
    ``*_with_indices`` functions, what ``return_indices=True`` calls, likewise)."""
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
