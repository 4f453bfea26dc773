"""Fully connected layers and matrix products."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("linear")


@TABLE.register(nn.Linear, F.linear)
def linear(call: OpCall) -> Cost:
    """Linear (``k`` in features): ``FLOPs = N_out·(2k − 1 + [bias])``, ``MACs = N_out·k``,
    ``DMAs = N_in + P + N_out``."""
    weight = call.spec("weight")
    if weight is None:
        raise ValueError("linear without a weight")
    k = weight.shape[-1] if weight.ndim else 1
    n_out = call.output.numel
    has_bias = call.spec("bias") is not None
    params = weight.numel + call.numel("bias")
    return Cost(flops=n_out * (2 * k - 1 + has_bias), macs=n_out * k, dmas=call.input.numel + params + n_out)


@TABLE.register(
    torch.matmul,
    torch.mm,
    torch.bmm,
    operator.matmul,
    operator.imatmul,
    torch.Tensor.matmul,
    torch.Tensor.mm,
    torch.Tensor.bmm,
    torch.Tensor.__matmul__,
)
def matmul(call: OpCall) -> Cost:
    """``[.., m, k] @ [.., k, n]`` (broadcast batch): ``MACs = batch·m·n·k = N_out·k``,
    ``FLOPs = N_out·(2k − 1)``, ``DMAs = N_a + N_b + N_out``."""
    a, b = call.inputs[:2]
    k = a.shape[-1] if a.ndim else 1
    n_out = call.output.numel
    return Cost(flops=n_out * (2 * k - 1), macs=n_out * k, dmas=a.numel + b.numel + n_out)
