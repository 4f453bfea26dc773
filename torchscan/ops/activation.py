"""Pointwise activations (module, functional, torch.* and tensor-method spellings).

In-place spellings (``F.relu_``, ``Tensor.relu_``, ``inplace=True``) write no new output where
the convention says so (``N_out·[not inplace]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.common import argument, reduced_groups
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("activation")

T = torch.Tensor
aten = torch.ops.aten


def _writes(call: OpCall, inplace: bool) -> int:
    """Output elements written: 0 for an in-place call."""
    return 0 if inplace or call.get("inplace", False) else call.output.numel


@TABLE.register(nn.ReLU, F.relu, torch.relu, T.relu, aten.relu.default, inplace=False)
@TABLE.register(F.relu_, torch.relu_, T.relu_, aten.relu_.default, inplace=True)
def relu(call: OpCall, inplace: bool) -> Cost:
    """ReLU: ``FLOPs = N_in``, ``MACs = 0``, ``DMAs = N_in + N_out·[not inplace]``."""
    n_in = call.input.numel
    return Cost(flops=n_in, dmas=n_in + _writes(call, inplace))


TABLE.declare(F.relu_, torch.relu_, T.relu_, pointwise=True)

TABLE.declare(nn.ReLU, F.relu, torch.relu, T.relu, pointwise=True)


TABLE.declare(F.relu_, torch.relu_, T.relu_, saves=Saves.OUTPUT)

TABLE.declare(nn.ReLU, F.relu, torch.relu, T.relu, saves=Saves.OUTPUT)


@TABLE.register(nn.ReLU6, nn.Hardtanh, F.relu6, F.hardtanh, aten.hardtanh.default, inplace=False, saves=Saves.INPUT)
@TABLE.register(F.hardtanh_, aten.hardtanh_.default, inplace=True, saves=Saves.INPUT)
def hardtanh(call: OpCall, inplace: bool) -> Cost:
    """ReLU6 / Hardtanh (two comparisons): ``FLOPs = 2·N_in``, ``DMAs = N_in + N_out·[not inplace]``."""
    n_in = call.input.numel
    return Cost(flops=2 * n_in, dmas=n_in + _writes(call, inplace))


TABLE.declare(F.hardtanh_, pointwise=True)

TABLE.declare(nn.ReLU6, nn.Hardtanh, F.relu6, F.hardtanh, pointwise=True)


@TABLE.register(nn.LeakyReLU, F.leaky_relu, aten.leaky_relu.default, inplace=False, pointwise=True)
@TABLE.register(F.leaky_relu_, aten.leaky_relu_.default, inplace=True, pointwise=True)
def leaky_relu(call: OpCall, inplace: bool) -> Cost:
    """LeakyReLU: ``FLOPs = 4·N_in``, ``DMAs = N_in + 1 + N_out·[not inplace]`` (the slope is read)."""
    n_in = call.input.numel
    return Cost(flops=4 * n_in, dmas=n_in + 1 + _writes(call, inplace))


@TABLE.register(nn.PReLU, F.prelu, torch.prelu, torch.Tensor.prelu, aten.prelu.default, aten._prelu_kernel.default)
def prelu(call: OpCall) -> Cost:
    """PReLU, LeakyReLU with a learned slope per channel (or one for all): ``FLOPs = 4·N_in``,
    ``DMAs = N_in + P + N_out`` (the slopes are read)."""
    n_in = call.input.numel
    slopes = sum(spec.numel for spec in call.inputs[1:2]) if len(call.inputs) > 1 else call.numel("weight")
    return Cost(flops=4 * n_in, dmas=n_in + slopes + call.output.numel)


@TABLE.register(nn.GLU, F.glu, aten.glu.default)
def glu(call: OpCall) -> Cost:
    """GLU ``a·sigmoid(b)``, ``a`` and ``b`` the two halves of the input along ``dim``: ``FLOPs = 5·N_out`` (a sigmoid
    of 4 and a product), ``DMAs = N_in + N_out``."""
    n_out = call.output.numel
    return Cost(flops=5 * n_out, dmas=call.input.numel + n_out)


@TABLE.register(nn.LogSigmoid, F.logsigmoid, aten.log_sigmoid_forward.default)
def log_sigmoid(call: OpCall) -> Cost:
    """LogSigmoid ``−softplus(−x)`` computed stably, ``min(x, 0) − log(1 + exp(−|x|))`` (min, abs, neg, exp, add,
    log, sub): ``FLOPs = 7·N_in``, ``DMAs = N_in + N_out``."""
    return _unary(call, 7, inplace=False)


TABLE.declare(nn.LogSigmoid, F.logsigmoid, pointwise=True)


# autograd keeps the input of ``elu`` (``elu_backward(..., is_result=False, self)``), the result of ``elu_``
# (``nn.ELU(inplace=True)`` and ``F.elu(..., inplace=True)`` run ``elu_``)
@TABLE.register(nn.ELU, F.elu, aten.elu.default, inplace=False, saves=Saves.INPUT_OR_RESULT, pointwise=True)
@TABLE.register(F.elu_, aten.elu_.default, inplace=True, saves=Saves.OUTPUT, pointwise=True)
def elu(call: OpCall, inplace: bool) -> Cost:
    """ELU: ``FLOPs = (6 + [scale ≠ 1] + [input_scale ≠ 1])·N_in``, ``DMAs = N_in + 1 + N_out·[not inplace]``
    (alpha is read). ``scale`` and ``input_scale`` are ATen's (``aten.elu``, where SELU and CELU go: a
    multiply of the result by ``scale``, of the input by ``input_scale``); ``nn.ELU`` has neither."""
    n_in = call.input.numel
    scales = sum(argument(call, name, index, 1.0) != 1 for name, index in (("scale", 1), ("input_scale", 2)))
    return Cost(flops=(6 + scales) * n_in, dmas=n_in + 1 + _writes(call, inplace))


# SELU and CELU run ``elu`` (``elu_`` in place): as ELU, autograd keeps the input, or the result of an in-place call
@TABLE.register(nn.SELU, F.selu, inplace=False, saves=Saves.INPUT_OR_RESULT, pointwise=True)
@TABLE.register(torch.selu, aten.selu.default, inplace=False, saves=Saves.INPUT, pointwise=True)
@TABLE.register(F.selu_, torch.selu_, aten.selu_.default, inplace=True, saves=Saves.OUTPUT, pointwise=True)
def selu(call: OpCall, inplace: bool) -> Cost:
    """SELU ``λ·(max(x, 0) + min(α·(eˣ − 1), 0))`` (ELU's 6 and the multiply by ``λ``; ``α`` and ``λ`` are
    fixed constants, not read): ``FLOPs = 7·N_in``, ``DMAs = N_in + N_out·[not inplace]``."""
    return _unary(call, 7, inplace)


@TABLE.register(nn.CELU, F.celu, inplace=False, saves=Saves.INPUT_OR_RESULT, pointwise=True)
@TABLE.register(torch.celu, aten.celu.default, inplace=False, saves=Saves.INPUT, pointwise=True)
@TABLE.register(F.celu_, torch.celu_, aten.celu_.default, inplace=True, saves=Saves.OUTPUT, pointwise=True)
def celu(call: OpCall, inplace: bool) -> Cost:
    """CELU ``max(x, 0) + min(α·(exp(x/α) − 1), 0)`` (divide, exp, subtract, multiply, 2 comparisons, add):
    ``FLOPs = 7·N_in``, ``DMAs = N_in + 1 + N_out·[not inplace]`` (``α`` is read, as ELU's)."""
    n_in = call.input.numel
    return Cost(flops=7 * n_in, dmas=n_in + 1 + _writes(call, inplace))


@TABLE.register(nn.Threshold, F.threshold, torch.threshold, aten.threshold.default, inplace=False, pointwise=True)
@TABLE.register(F.threshold_, torch.threshold_, aten.threshold_.default, inplace=True, pointwise=True)
def threshold(call: OpCall, inplace: bool) -> Cost:
    """Threshold ``x if x > threshold else value`` (one comparison; both constants compared or selected, as
    ReLU's 0): ``FLOPs = N_in``, ``DMAs = N_in + N_out·[not inplace]`` (``Threshold(0, 0)`` counts as ReLU)."""
    return _unary(call, 1, inplace)


# ``threshold_``'s backward reads the input as it was: in place, autograd keeps a copy of it first
TABLE.declare(nn.Threshold, F.threshold, torch.threshold, F.threshold_, torch.threshold_, saves=Saves.INPUT)


@TABLE.register(nn.Hardshrink, F.hardshrink, torch.hardshrink, T.hardshrink, aten.hardshrink.default)
def hardshrink(call: OpCall) -> Cost:
    """Hardshrink ``x if x > λ or x < −λ else 0`` (2 comparisons against constants, as Hardtanh's):
    ``FLOPs = 2·N_in``, ``DMAs = N_in + N_out``."""
    return _unary(call, 2, inplace=False)


TABLE.declare(nn.Hardshrink, F.hardshrink, torch.hardshrink, T.hardshrink, saves=Saves.INPUT, pointwise=True)


@TABLE.register(nn.Softshrink, F.softshrink, aten.softshrink.default, saves=Saves.INPUT, pointwise=True)
def softshrink(call: OpCall) -> Cost:
    """Softshrink ``x − λ if x > λ, x + λ if x < −λ, else 0``, branch-free (2 comparisons, a subtraction, an
    addition): ``FLOPs = 4·N_in``, ``DMAs = N_in + 1 + N_out`` (``λ`` is read, as LeakyReLU's slope)."""
    n_in = call.input.numel
    return Cost(flops=4 * n_in, dmas=n_in + 1 + call.output.numel)


def _rrelu_training(call: OpCall) -> bool:
    """Whether an RReLU call draws its slopes: a module in training, a function told ``training=True``
    (``F.rrelu``'s default is False; ``aten.rrelu_with_noise`` takes it after its noise buffer and bounds)."""
    if call.kind == "module":
        return bool(call.get("training", call.training))
    return bool(argument(call, "training", 3 if call.target in _RRELU_ATEN else 2, False))


@TABLE.register(nn.RReLU, F.rrelu, torch.rrelu, aten.rrelu_with_noise.default, inplace=False, pointwise=True)
@TABLE.register(F.rrelu_, torch.rrelu_, aten.rrelu_with_noise_.default, inplace=True, pointwise=True)
def rrelu(call: OpCall, inplace: bool) -> Cost:
    """RReLU. In eval a LeakyReLU of slope ``(lower + upper)/2``: ``FLOPs = 4·N_in``, ``DMAs = N_in + 1 +
    N_out·[not inplace]``. In training a slope drawn per element in ``[lower, upper]``, ``lower + (upper −
    lower)·u`` (a multiply and an add on the draw, counted for every element as a branch-free kernel would),
    then a comparison and the product: ``FLOPs = 4·N_in``, ``DMAs = N_in + 2 + N_out·[not inplace]`` (both
    bounds read; the slopes drawn are not counted, as Dropout's mask)."""
    n_in = call.input.numel
    reads = 2 if _rrelu_training(call) else 1
    return Cost(flops=4 * n_in, dmas=n_in + reads + _writes(call, inplace))


_RRELU_ATEN = frozenset({aten.rrelu_with_noise.default, aten.rrelu_with_noise_.default})


@TABLE.register(
    nn.Sigmoid, torch.sigmoid, F.sigmoid, T.sigmoid, T.sigmoid_, aten.sigmoid.default, aten.sigmoid_.default
)
def sigmoid(call: OpCall) -> Cost:
    """Sigmoid ``1 / (1 + exp(-x))``: ``FLOPs = 4·N_in``, ``DMAs = N_in + N_out``."""
    n_in = call.input.numel
    return Cost(flops=4 * n_in, dmas=n_in + call.output.numel)


TABLE.declare(nn.Sigmoid, torch.sigmoid, F.sigmoid, T.sigmoid, T.sigmoid_, pointwise=True)


TABLE.declare(nn.Sigmoid, torch.sigmoid, F.sigmoid, T.sigmoid, T.sigmoid_, saves=Saves.OUTPUT)


@TABLE.register(nn.Tanh, torch.tanh, F.tanh, T.tanh, T.tanh_, aten.tanh.default, aten.tanh_.default)
def tanh(call: OpCall) -> Cost:
    """Tanh: ``FLOPs = 6·N_in``, ``DMAs = 2·N_in + N_out``."""
    n_in = call.input.numel
    return Cost(flops=6 * n_in, dmas=2 * n_in + call.output.numel)


TABLE.declare(nn.Tanh, torch.tanh, F.tanh, T.tanh, T.tanh_, pointwise=True)


TABLE.declare(nn.Tanh, torch.tanh, F.tanh, T.tanh, T.tanh_, saves=Saves.OUTPUT)


@TABLE.register(nn.Softsign, F.softsign, saves=Saves.INPUT, pointwise=True)
def softsign(call: OpCall) -> Cost:
    """Softsign ``x / (1 + |x|)`` (abs, add, divide): ``FLOPs = 3·N_in``, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    n_in = call.input.numel
    return Cost(flops=3 * n_in, dmas=n_in + call.output.numel)


@TABLE.register(nn.Tanhshrink, F.tanhshrink, saves=Saves.INPUT, pointwise=True)
def tanhshrink(call: OpCall) -> Cost:
    """Tanhshrink ``x − tanh(x)``: tanh's count and a subtraction, ``FLOPs = 7·N_in``, ``MACs = 0``,
    ``DMAs = 2·N_in + N_out`` (tanh's)."""
    n_in = call.input.numel
    return Cost(flops=7 * n_in, dmas=2 * n_in + call.output.numel)


def _unary(call: OpCall, per_element: int, inplace: bool) -> Cost:
    n_in = call.input.numel
    return Cost(flops=per_element * n_in, dmas=n_in + _writes(call, inplace))


@TABLE.register(nn.GELU, F.gelu, aten.gelu.default, saves=Saves.INPUT)
def gelu(call: OpCall) -> Cost:
    """GELU. Exact ``x·(1 + erf(x/√2))/2`` (erf counted as one op): ``FLOPs = 5·N_in``;
    tanh approximation ``x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2`` (tanh = 6):
    ``FLOPs = 14·N_in``. ``MACs = 0``, ``DMAs = N_in + N_out``."""
    per_element = 14 if argument(call, "approximate", 0, "none") == "tanh" else 5
    return _unary(call, per_element, inplace=False)


TABLE.declare(nn.GELU, F.gelu, pointwise=True)


@TABLE.register(nn.SiLU, F.silu, aten.silu.default, inplace=False, saves=Saves.INPUT)
@TABLE.register(aten.silu_.default, inplace=True, saves=Saves.INPUT)
def silu(call: OpCall, inplace: bool) -> Cost:
    """SiLU ``x·sigmoid(x)`` (sigmoid = 4): ``FLOPs = 5·N_in``, ``DMAs = N_in + N_out·[not inplace]``."""
    return _unary(call, 5, inplace)


TABLE.declare(nn.SiLU, F.silu, pointwise=True)


@TABLE.register(nn.Mish, F.mish, aten.mish.default, inplace=False, saves=Saves.INPUT)
def mish(call: OpCall, inplace: bool) -> Cost:
    """Mish ``x·tanh(softplus(x))`` (softplus = exp, add, log; tanh = 6): ``FLOPs = 10·N_in``,
    ``DMAs = N_in + N_out·[not inplace]``."""
    return _unary(call, 10, inplace)


TABLE.declare(nn.Mish, F.mish, pointwise=True)


@TABLE.register(nn.Hardswish, F.hardswish, aten.hardswish.default, inplace=False, saves=Saves.INPUT)
@TABLE.register(aten.hardswish_.default, inplace=True, saves=Saves.INPUT)
def hardswish(call: OpCall, inplace: bool) -> Cost:
    """Hardswish ``x·relu6(x + 3)/6`` (add, two comparisons, div, mul): ``FLOPs = 5·N_in``,
    ``DMAs = N_in + N_out·[not inplace]``."""
    return _unary(call, 5, inplace)


TABLE.declare(nn.Hardswish, F.hardswish, pointwise=True)


@TABLE.register(nn.Hardsigmoid, F.hardsigmoid, aten.hardsigmoid.default, inplace=False, saves=Saves.INPUT)
@TABLE.register(aten.hardsigmoid_.default, inplace=True, saves=Saves.INPUT)
def hardsigmoid(call: OpCall, inplace: bool) -> Cost:
    """Hardsigmoid ``relu6(x + 3)/6`` (add, two comparisons, div): ``FLOPs = 4·N_in``,
    ``DMAs = N_in + N_out·[not inplace]``."""
    return _unary(call, 4, inplace)


TABLE.declare(nn.Hardsigmoid, F.hardsigmoid, pointwise=True)


@TABLE.register(nn.Softplus, F.softplus, aten.softplus.default, saves=Saves.INPUT)
def softplus(call: OpCall) -> Cost:
    """Softplus ``log(1 + exp(β·x))/β`` with a threshold (mul, exp, add, log, div, compare):
    ``FLOPs = 6·N_in``, ``DMAs = N_in + N_out``."""
    return _unary(call, 6, inplace=False)


TABLE.declare(nn.Softplus, F.softplus, pointwise=True)


def _softmax_dim(call: OpCall) -> int:
    dim = argument(call, "dim", 0)
    if dim is None:  # legacy implicit dim of F.softmax
        return 0 if call.input.ndim in (0, 1, 3) else 1
    return int(dim)


def _softmax(call: OpCall, per_element: int, per_group: int, dim: int | None = None) -> Cost:
    n_in = call.input.numel
    groups = reduced_groups(call.input, _softmax_dim(call) if dim is None else dim)
    return Cost(flops=per_element * n_in + per_group * groups, dmas=n_in + call.output.numel)


@TABLE.register(
    nn.Softmax, F.softmax, torch.softmax, T.softmax, aten.softmax.int, aten._softmax.default, aten._safe_softmax.default
)
def softmax(call: OpCall) -> Cost:
    """Softmax over a dim of length ``L`` (``R = N_in / L`` rows), numerically stable: max
    (``N_in − R`` comparisons), subtract, exp, sum (``N_in − R``), divide:
    ``FLOPs = 5·N_in − 2·R``, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    return _softmax(call, 5, -2)


TABLE.declare(nn.Softmax, F.softmax, torch.softmax, T.softmax, saves=Saves.OUTPUT)


@TABLE.register(nn.Softmax2d)
def softmax2d(call: OpCall) -> Cost:
    """Softmax2d: softmax over the channel dim (``-3``): ``FLOPs = 5·N_in − 2·R``, ``DMAs = N_in + N_out``."""
    return _softmax(call, 5, -2, dim=-3)


@TABLE.register(nn.Softmin, F.softmin)
def softmin(call: OpCall) -> Cost:
    """Softmin = softmax of ``−x``: ``FLOPs = 6·N_in − 2·R``, ``DMAs = N_in + N_out``."""
    return _softmax(call, 6, -2)


@TABLE.register(
    nn.LogSoftmax, F.log_softmax, torch.log_softmax, T.log_softmax, aten.log_softmax.int, aten._log_softmax.default
)
def log_softmax(call: OpCall) -> Cost:
    """LogSoftmax: max (``N_in − R``), subtract, exp, sum (``N_in − R``), log (``R``), subtract:
    ``FLOPs = 5·N_in − R``, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    return _softmax(call, 5, -1)


TABLE.declare(nn.LogSoftmax, F.log_softmax, torch.log_softmax, T.log_softmax, saves=Saves.OUTPUT)


@TABLE.register(F.gumbel_softmax)
def gumbel_softmax(call: OpCall) -> Cost:
    """Gumbel-softmax as torch computes it, over ``dim`` (``R`` rows): noise ``−log(e)`` of an exponential draw
    (a draw counts no arithmetic; the log and the negation do), added to the logits and divided by ``τ`` (4 an
    element), then a softmax (``5·N − 2·R``); ``hard`` makes the one-hot of each row's maximum (``N − R``
    comparisons) and ``y_hard − y_soft + y_soft`` (``2·N``): ``FLOPs = 9·N − 2·R (+ 3·N − R)``, ``MACs = 0``,
    ``DMAs = N_in + N (the draw) + N_out (+ 2·N: the one-hot written and read)``."""
    n = call.input.numel
    rows = reduced_groups(call.input, int(argument(call, "dim", None, -1))) if call.input.ndim else 1
    hard = bool(argument(call, "hard", None, False))
    flops = 9 * n - 2 * rows + ((3 * n - rows) if hard else 0)
    return Cost(flops=flops, dmas=2 * n + call.output.numel + (2 * n if hard else 0))
