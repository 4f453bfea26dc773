"""Pointwise activations (module, functional, torch.* and tensor-method spellings).

In-place spellings (``F.relu_``, ``Tensor.relu_``, ``inplace=True``) write no new output where
the convention says so (``N_out·[not inplace]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("activation")

T = torch.Tensor


def _writes(call: OpCall, inplace: bool) -> int:
    """Output elements written: 0 for an in-place call."""
    return 0 if inplace or call.get("inplace", False) else call.output.numel


@TABLE.register(nn.ReLU, F.relu, torch.relu, T.relu, inplace=False)
@TABLE.register(F.relu_, torch.relu_, T.relu_, inplace=True)
def relu(call: OpCall, inplace: bool) -> Cost:
    """ReLU: ``FLOPs = N_in``, ``MACs = 0``, ``DMAs = N_in + N_out·[not inplace]``."""
    n_in = call.input.numel
    return Cost(flops=n_in, dmas=n_in + _writes(call, inplace))


@TABLE.register(nn.ReLU6, nn.Hardtanh, F.relu6, F.hardtanh, inplace=False)
@TABLE.register(F.hardtanh_, inplace=True)
def hardtanh(call: OpCall, inplace: bool) -> Cost:
    """ReLU6 / Hardtanh (two comparisons): ``FLOPs = 2·N_in``, ``DMAs = N_in + N_out·[not inplace]``."""
    n_in = call.input.numel
    return Cost(flops=2 * n_in, dmas=n_in + _writes(call, inplace))


@TABLE.register(nn.LeakyReLU, F.leaky_relu, inplace=False)
@TABLE.register(F.leaky_relu_, inplace=True)
def leaky_relu(call: OpCall, inplace: bool) -> Cost:
    """LeakyReLU: ``FLOPs = 4·N_in``, ``DMAs = N_in + 1 + N_out·[not inplace]`` (the slope is read)."""
    n_in = call.input.numel
    return Cost(flops=4 * n_in, dmas=n_in + 1 + _writes(call, inplace))


@TABLE.register(nn.ELU, F.elu, inplace=False)
@TABLE.register(F.elu_, inplace=True)
def elu(call: OpCall, inplace: bool) -> Cost:
    """ELU: ``FLOPs = 6·N_in``, ``DMAs = N_in + 1 + N_out·[not inplace]`` (alpha is read)."""
    n_in = call.input.numel
    return Cost(flops=6 * n_in, dmas=n_in + 1 + _writes(call, inplace))


@TABLE.register(nn.Sigmoid, torch.sigmoid, F.sigmoid, T.sigmoid, T.sigmoid_)
def sigmoid(call: OpCall) -> Cost:
    """Sigmoid ``1 / (1 + exp(-x))``: ``FLOPs = 4·N_in``, ``DMAs = N_in + N_out``."""
    n_in = call.input.numel
    return Cost(flops=4 * n_in, dmas=n_in + call.output.numel)


@TABLE.register(nn.Tanh, torch.tanh, F.tanh, T.tanh, T.tanh_)
def tanh(call: OpCall) -> Cost:
    """Tanh: ``FLOPs = 6·N_in``, ``DMAs = 2·N_in + N_out``."""
    n_in = call.input.numel
    return Cost(flops=6 * n_in, dmas=2 * n_in + call.output.numel)
