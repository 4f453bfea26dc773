"""Normalisation layers: batch, layer, group, instance and RMS norms, ``F.normalize``.

``R`` is the number of groups of elements normalised together (rows of a LayerNorm, ``B·G`` for
a GroupNorm, ``B·C`` for an InstanceNorm).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.common import argument, reduced_groups
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("norm")

aten = torch.ops.aten


def _statistics(call: OpCall, count: int) -> int:
    """Bytes of ``count`` statistics a kernel keeps for the backward, in the input's dtype (CPU's kernels,
    measured; CUDA's likely keep float32, the accumulate type, for half inputs: not measured here). An ATen
    spelling that returns them (``native_layer_norm``…) keeps its results instead: the memory pass's rule."""
    return count * call.input.dtype.itemsize


def _uses_batch_statistics(call: OpCall) -> bool:
    """A BatchNorm normalises by batch statistics: in training, or without running ones."""
    return bool(call.get("training", call.training)) or call.spec("running_mean") is None


def _rows(call: OpCall) -> int:
    """``R = N_in / prod(normalized_shape)``: the rows a LayerNorm or an RMSNorm normalises."""
    normalized = argument(call, "normalized_shape", 0, ())
    return call.input.numel // max(math.prod((normalized,) if isinstance(normalized, int) else normalized), 1)


def _groups(call: OpCall) -> int:
    """``B·G``: the groups a GroupNorm normalises (torch refuses an input of fewer than 2 dims)."""
    return call.input.shape[0] * int(argument(call, "num_groups", 0, 1))


def _instances(call: OpCall, dims: int) -> int:
    """``B·C``: the instances an InstanceNorm over ``dims`` spatial dims normalises (0: all but two)."""
    spec = call.input
    spatial_dims = dims or max(spec.ndim - 2, 0)
    return spec.numel // max(math.prod(spec.shape[spec.ndim - spatial_dims :]), 1)


def _instance_batch_statistics(call: OpCall) -> bool:
    """An InstanceNorm normalises by each instance's statistics: unless in eval with running ones."""
    training = bool(call.get("training", call.training))
    return bool(call.attrs.get("use_input_stats", training or not call.get("track_running_stats", False)))


def batch_norm_statistics(call: OpCall) -> int:
    """What a BatchNorm's kernel keeps for its backward: on batch statistics (training, or no running
    ones), the mean and inverse standard deviation of each of its ``C`` channels, ``2·C`` values; on
    running statistics (eval) nothing."""
    return _statistics(call, 2 * call.input.shape[1]) if _uses_batch_statistics(call) else 0


def layer_norm_statistics(call: OpCall) -> int:
    """What a LayerNorm's kernel keeps for its backward: the mean and inverse standard deviation of each
    of its ``R`` rows, ``2·R`` values."""
    return _statistics(call, 2 * _rows(call))


def group_norm_statistics(call: OpCall) -> int:
    """What a GroupNorm's kernel keeps for its backward: the mean and inverse standard deviation of each
    group of each sample, ``2·B·G`` values."""
    return _statistics(call, 2 * _groups(call))


def instance_norm_statistics(call: OpCall, dims: int) -> int:
    """What an InstanceNorm keeps for its backward: torch runs a BatchNorm over a ``(1, B·C, …)`` view
    with its weight and running statistics repeated ``B`` times, and that BatchNorm keeps the repeated
    weight (``B·C`` values, affine) and running statistics (``2·B·C``, tracked), and on batch statistics
    the mean and inverse standard deviation of each of the ``B·C`` instances (``2·B·C``)."""
    repeated = (call.spec("weight") is not None) + 2 * (call.spec("running_mean") is not None)
    return _statistics(call, _instances(call, dims) * (repeated + 2 * _instance_batch_statistics(call)))


@TABLE.register(
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    F.batch_norm,
    torch.batch_norm,  # (input, weight, bias, running_mean, running_var, training, …): read by name, as ATen's
    aten.batch_norm.default,
    aten._native_batch_norm_legit_no_training.default,
    aten.native_batch_norm.default,
    saves=Saves.INPUT,
    saves_extra=batch_norm_statistics,
)
def batch_norm(call: OpCall) -> Cost:
    """BatchNorm over ``C`` channels.

    Eval (running statistics): ``FLOPs = 2·C + 2·N_in + 2·N_in·[affine]`` (per channel add eps and
    sqrt; per element subtract the mean and divide; scale and shift), ``MACs = N_in·(1 + [affine])``,
    ``DMAs = N_in + 1 + 2C + 2C·[affine] + [momentum] + N_out``.

    Training (batch statistics) adds the statistics: ``FLOPs += 4·N_in`` (mean: one add per
    element; variance: subtract, square, add), ``MACs += 2·N_in``; with running statistics tracked,
    their update adds ``FLOPs += 6·C + 1 + [momentum is None]`` and ``DMAs += 1 + 2C``.
    """
    n_in = call.input.numel
    channels = call.input.shape[1]  # (N, C, ...): torch's batch norm rejects a 1-D input
    affine = call.spec("weight") is not None
    tracked = call.spec("running_mean") is not None
    momentum = call.attrs.get("momentum")
    training = _uses_batch_statistics(call)
    flops = 2 * channels + 2 * n_in + 2 * n_in * affine
    macs = n_in * (1 + affine)
    dmas = n_in + 1 + 2 * channels * tracked + 2 * channels * affine + bool(momentum) + call.output.numel
    if training:
        flops += 4 * n_in
        macs += 2 * n_in
        if tracked:
            flops += 6 * channels + 1 + (momentum is None)
            dmas += 1 + 2 * channels
    return Cost(flops=flops, macs=macs, dmas=dmas)


def _group_norm_cost(call: OpCall, groups: int) -> Cost:
    n_in = call.input.numel
    has_weight = call.spec("weight") is not None
    has_bias = call.spec("bias") is not None
    params = call.numel("weight") + call.numel("bias")
    return Cost(
        flops=6 * n_in + 2 * groups + n_in * has_weight + n_in * has_bias,
        macs=n_in * (1 + (has_weight or has_bias)),
        dmas=n_in + params + call.output.numel,
    )


@TABLE.register(
    nn.LayerNorm,
    F.layer_norm,
    torch.layer_norm,
    aten.layer_norm.default,
    aten.native_layer_norm.default,
    saves=Saves.INPUT,
    saves_extra=layer_norm_statistics,
)
def layer_norm(call: OpCall) -> Cost:
    """LayerNorm over the trailing ``normalized_shape`` (``R = N_in / prod(normalized_shape)``):
    ``FLOPs = 6·N_in + 2·R + N_in·[weight] + N_in·[bias]``, ``MACs = N_in·(1 + [affine])``,
    ``DMAs = N_in + P + N_out``."""
    return _group_norm_cost(call, _rows(call))


@TABLE.register(
    nn.GroupNorm,
    F.group_norm,
    torch.group_norm,
    aten.group_norm.default,
    saves=Saves.INPUT,
    saves_extra=group_norm_statistics,
)
def group_norm(call: OpCall) -> Cost:
    """GroupNorm with ``G`` groups (``R = B·G``): ``FLOPs = 6·N_in + 2·R + N_in·[weight] + N_in·[bias]``,
    ``MACs = N_in·(1 + [affine])``, ``DMAs = N_in + P + N_out``."""
    return _group_norm_cost(call, _groups(call))


@TABLE.register(aten.native_group_norm.default, saves=Saves.INPUT)
def native_group_norm(call: OpCall) -> Cost:
    """``aten.native_group_norm(input, weight, bias, N, C, HxW, group, eps)``: as GroupNorm with
    ``R = N·group``."""
    batch = int(argument(call, "N", 2, 1))
    return _group_norm_cost(call, batch * int(argument(call, "group", 5, 1)))


@TABLE.register(nn.InstanceNorm1d, dims=1, saves=Saves.INPUT, saves_extra=instance_norm_statistics)
@TABLE.register(nn.InstanceNorm2d, dims=2, saves=Saves.INPUT, saves_extra=instance_norm_statistics)
@TABLE.register(nn.InstanceNorm3d, dims=3, saves=Saves.INPUT, saves_extra=instance_norm_statistics)
@TABLE.register(
    F.instance_norm,
    torch.instance_norm,  # (input, weight, bias, running_mean, running_var, use_input_stats, …): by name
    aten.instance_norm.default,
    dims=0,
    saves=Saves.INPUT,
    saves_extra=instance_norm_statistics,
)
def instance_norm(call: OpCall, dims: int) -> Cost:
    """InstanceNorm over the ``d`` spatial dims of each ``(b, c)`` (``R = N_in / prod(spatial)``):
    ``FLOPs = 6·N_in + 2·R + N_in·[weight] + N_in·[bias]``, ``MACs = N_in·(1 + [affine])``,
    ``DMAs = N_in + P + N_out``. Normalised with running statistics (eval with
    ``track_running_stats``) it is a BatchNorm in eval."""
    if not _instance_batch_statistics(call):
        return batch_norm(call)
    return _group_norm_cost(call, _instances(call, dims))


@TABLE.register(nn.RMSNorm, F.rms_norm, torch.rms_norm, aten.rms_norm.default)
def rms_norm(call: OpCall) -> Cost:
    """RMSNorm ``x / sqrt(mean(x²) + eps) · w`` (square, sum, mean division, scale; eps add and
    sqrt per group): ``FLOPs = 4·N_in + 2·R + N_in·[weight]``, ``MACs = N_in·(1 + [weight])``,
    ``DMAs = N_in + P + N_out``."""
    groups = _rows(call)
    n_in = call.input.numel
    has_weight = call.spec("weight") is not None
    return Cost(
        flops=4 * n_in + 2 * groups + n_in * has_weight,
        macs=n_in * (1 + has_weight),
        dmas=n_in + call.numel("weight") + call.output.numel,
    )


@TABLE.register(F.normalize)
def normalize(call: OpCall) -> Cost:
    """``F.normalize`` (Lp norm over ``dim``, ``R`` rows): ``|x|^p`` and sum (``2·N_in``), root and
    clamp to eps (``2·R``), divide (``N_in``): ``FLOPs = 3·N_in + 2·R``, ``MACs = 0``,
    ``DMAs = N_in + N_out``."""
    n_in = call.input.numel
    groups = reduced_groups(call.input, argument(call, "dim", 1, 1))
    return Cost(flops=3 * n_in + 2 * groups, dmas=n_in + call.output.numel)


@TABLE.register(nn.LocalResponseNorm, F.local_response_norm, nn.CrossMapLRN2d, pointwise=True)
def local_response_norm(call: OpCall) -> Cost:
    """LocalResponseNorm over ``n = size`` channels: square, window sum (``n − 1`` adds), scale,
    add ``k``, power, divide: ``FLOPs = N_in·(n + 4)``, ``MACs = 0``, ``DMAs = N_in + N_out``
    (``nn.CrossMapLRN2d``, its legacy form, the same steps)."""
    size = int(argument(call, "size", 0, 1))
    n_in = call.input.numel
    return Cost(flops=n_in * (size + 4), dmas=n_in + call.output.numel)
