"""Binary elementwise arithmetic in every spelling: ``x + y``, ``torch.add``, ``Tensor.add_``…"""

from __future__ import annotations

import operator

import torch

from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("elementwise")

T = torch.Tensor


@TABLE.register(
    operator.add,
    operator.iadd,
    torch.add,
    T.add,
    T.add_,
    T.__add__,
    T.__radd__,
    T.__iadd__,
    operator.sub,
    operator.isub,
    torch.sub,
    torch.subtract,
    T.sub,
    T.sub_,
    T.__sub__,
    T.__rsub__,
    T.__isub__,
    torch.rsub,
    operator.mul,
    operator.imul,
    torch.mul,
    torch.multiply,
    T.mul,
    T.mul_,
    T.__mul__,
    T.__rmul__,
    T.__imul__,
    operator.truediv,
    operator.itruediv,
    torch.div,
    torch.divide,
    torch.true_divide,
    T.div,
    T.div_,
    T.__truediv__,
    T.__rtruediv__,
    T.__itruediv__,
)
def binary(call: OpCall) -> Cost:
    """add / sub / mul / div: ``FLOPs = N_out``, ``MACs = 0``,
    ``DMAs = (elements of the tensor operands) + N_out`` (a Python scalar operand is free)."""
    n_out = call.output.numel
    return Cost(flops=n_out, dmas=sum(spec.numel for spec in call.inputs) + n_out)
