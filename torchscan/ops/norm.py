"""Batch normalisation (module and functional spellings)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("norm")


@TABLE.register(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, F.batch_norm)
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
    channels = call.input.shape[1] if call.input.ndim > 1 else call.input.shape[0]
    affine = call.spec("weight") is not None
    tracked = call.spec("running_mean") is not None
    momentum = call.attrs.get("momentum")
    training = bool(call.get("training", call.training)) or not tracked
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
