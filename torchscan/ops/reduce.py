"""Reductions: sum and mean over some dims."""

from __future__ import annotations

import torch

from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("reduce")

T = torch.Tensor


@TABLE.register(torch.sum, T.sum)
def reduce_sum(call: OpCall) -> Cost:
    """sum: ``FLOPs = N_in − N_out`` adds, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    n_in, n_out = call.input.numel, call.output.numel
    return Cost(flops=n_in - n_out, dmas=n_in + n_out)


@TABLE.register(torch.mean, T.mean)
def reduce_mean(call: OpCall) -> Cost:
    """mean: ``FLOPs = N_in`` (``N_in − N_out`` adds, ``N_out`` divisions), ``MACs = 0``,
    ``DMAs = N_in + N_out``."""
    n_in, n_out = call.input.numel, call.output.numel
    return Cost(flops=n_in, dmas=n_in + n_out)
