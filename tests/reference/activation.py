"""Pointwise activations by their textbook definitions, softmax and log-softmax.

Each activation is one function of a :class:`~tests.reference.counting.Num`; :func:`pointwise`
maps it over a tensor (one read and one write per element).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from tests.reference.counting import (
    Counted,
    Num,
    Sink,
    Source,
    Tally,
    absolute,
    erf,
    exp,
    indices,
    log,
    maximum,
    minimum,
    total,
)
from tests.reference.counting import sigmoid as _sigmoid
from tests.reference.counting import tanh as _tanh

__all__ = [
    "ACTIVATIONS",
    "log_softmax",
    "pointwise",
    "softmax",
]


def relu(x: Num) -> Num:
    """``max(x, 0)``: 1 comparison."""
    return maximum(x, 0.0)


def relu6(x: Num) -> Num:
    """``min(max(x, 0), 6)``: 2 comparisons (Hardtanh(0, 6))."""
    return minimum(maximum(x, 0.0), 6.0)


def hardtanh(x: Num) -> Num:
    """``min(max(x, −1), 1)``: 2 comparisons."""
    return minimum(maximum(x, -1.0), 1.0)


def leaky_relu(x: Num, slope: float = 0.01) -> Num:
    """``max(x, 0) + slope·min(x, 0)``: 2 comparisons, a multiply, an add."""
    return maximum(x, 0.0) + slope * minimum(x, 0.0)


def elu(x: Num, alpha: float = 1.0) -> Num:
    """``max(x, 0) + min(α·(eˣ − 1), 0)``: exp, subtract, multiply, 2 comparisons, add."""
    return maximum(x, 0.0) + minimum(alpha * (exp(x) - 1.0), 0.0)


def sigmoid(x: Num) -> Num:
    """``1/(1 + e⁻ˣ)``: 4."""
    return _sigmoid(x)


def tanh(x: Num) -> Num:
    """``(eˣ − e⁻ˣ)/(eˣ + e⁻ˣ)``: 6."""
    return _tanh(x)


def silu(x: Num) -> Num:
    """``x·sigmoid(x)``: 5."""
    return x * _sigmoid(x)


def gelu(x: Num) -> Num:
    """``x·(1 + erf(x/√2))/2``: divide, erf, add, multiply, multiply by ½ = 5."""
    return x * (1.0 + erf(x / math.sqrt(2.0))) * 0.5


def gelu_tanh(x: Num) -> Num:
    """``x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2``: x³ (2), ·0.044715, +x, ·√(2/π), tanh (6),
    +1, ·x, ·½ = 14."""
    cube = x * x * x
    return x * (1.0 + _tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * cube))) * 0.5


def softplus(x: Num, beta: float = 1.0, threshold: float = 20.0) -> Num:
    """``β·x > threshold ? x : log(1 + e^{βx})/β`` computed branch-free: multiply, compare, exp,
    add, log, divide = 6."""
    scaled = beta * x
    linear = scaled > threshold
    smooth = log(1.0 + exp(scaled)) / beta
    return x if linear else smooth


def mish(x: Num) -> Num:
    """``x·tanh(log(1 + eˣ))``: softplus (exp, add, log), tanh (6), multiply = 10."""
    return x * _tanh(log(1.0 + exp(x)))


def hardswish(x: Num) -> Num:
    """``x·min(max(x + 3, 0), 6)/6``: add, 2 comparisons, multiply, divide = 5."""
    return x * minimum(maximum(x + 3.0, 0.0), 6.0) / 6.0


def hardsigmoid(x: Num) -> Num:
    """``min(max(x + 3, 0), 6)/6``: add, 2 comparisons, divide = 4."""
    return minimum(maximum(x + 3.0, 0.0), 6.0) / 6.0


def glu_halves(a: torch.Tensor, b: torch.Tensor) -> Counted:
    """GLU on its two halves: ``a·sigmoid(b)`` element by element (sigmoid 4, a product)."""
    tally = Tally()
    first, second = Source("a", a, tally), Source("b", b, tally)
    out = Sink("output", a.shape, tally)
    for index in indices(a.shape):
        out[index] = first[index] * _sigmoid(second[index])
    return Counted(out.tensor(), tally)


def logsigmoid(x: Num) -> Num:
    """``log(sigmoid(x))`` computed stably, ``min(x, 0) − log(1 + e^{−|x|})`` (``−|x| = min(x, −x)``):
    a comparison, a negation and a comparison, exp, add, log, subtract = 7."""
    return minimum(x, 0.0) - log(1.0 + exp(minimum(x, -x)))


def softsign(x: Num) -> Num:
    """``x / (1 + |x|)``: abs, add, divide = 3."""
    return x / (1.0 + absolute(x))


def tanhshrink(x: Num) -> Num:
    """``x − tanh(x)``: tanh's 6 and a subtraction = 7."""
    return x - _tanh(x)


def selu(x: Num) -> Num:
    """``λ·(max(x, 0) + min(α·(eˣ − 1), 0))`` with torch's constants: ELU's 6 and a multiply = 7."""
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return scale * (maximum(x, 0.0) + minimum(alpha * (exp(x) - 1.0), 0.0))


def celu(x: Num, alpha: float = 1.0) -> Num:
    """``max(x, 0) + min(α·(e^{x/α} − 1), 0)``: divide, exp, subtract, multiply, 2 comparisons, add = 7."""
    return maximum(x, 0.0) + minimum(alpha * (exp(x / alpha) - 1.0), 0.0)


def threshold(x: Num, limit: float = 0.1, value: float = 20.0) -> Num:
    """``x if x > threshold else value``: 1 comparison (``nn.Threshold(0.1, 20)``, the reference's instance)."""
    return x if x > limit else Num(value, x.tally)


def hardshrink(x: Num, lambd: float = 0.5) -> Num:
    """``x if x > λ or x < −λ else 0``, both comparisons made: 2."""
    above, below = x > lambd, x < -lambd
    return x if above or below else Num(0.0, x.tally)


def softshrink(x: Num, lambd: float = 0.5) -> Num:
    """``x − λ if x > λ, x + λ if x < −λ, else 0``, branch-free (both sides computed): 2 comparisons, a
    subtraction and an addition = 4."""
    above, below = x > lambd, x < -lambd
    down, up = x - lambd, x + lambd
    return down if above else (up if below else Num(0.0, x.tally))


def rrelu_eval(x: Num, lower: float = 1 / 8, upper: float = 1 / 3) -> Num:
    """RReLU in eval: LeakyReLU of slope ``(lower + upper)/2`` = 4."""
    return leaky_relu(x, (lower + upper) / 2)


ACTIVATIONS: dict[str, Callable[[Num], Num]] = {
    "relu": relu,
    "relu6": relu6,
    "hardtanh": hardtanh,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "silu": silu,
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "softplus": softplus,
    "mish": mish,
    "hardswish": hardswish,
    "hardsigmoid": hardsigmoid,
    "logsigmoid": logsigmoid,
    "softsign": softsign,
    "tanhshrink": tanhshrink,
    "selu": selu,
    "celu": celu,
    "threshold": threshold,
    "hardshrink": hardshrink,
    "softshrink": softshrink,
    "rrelu_eval": rrelu_eval,
}
"""Every activation of the reference by name (the names of ``torch.nn.functional``, ``gelu_tanh``
for ``gelu(approximate="tanh")``, ``rrelu_eval`` for RReLU in eval)."""


def pointwise(function: Callable[[Num], Num], x: torch.Tensor) -> Counted:
    """``function`` applied to each element: one read, the function's operations, one write."""
    tally = Tally()
    source = Source("input", x, tally)
    out = Sink("output", x.shape, tally)
    for index in indices(x.shape):
        out[index] = function(source[index])
    return Counted(out.tensor(), tally)


def _rows(shape: tuple[int, ...], dim: int) -> list[list[tuple[int, ...]]]:
    dim %= len(shape)
    others = [size if d != dim else 1 for d, size in enumerate(shape)]
    return [[(*lead[:dim], i, *lead[dim + 1 :]) for i in range(shape[dim])] for lead in indices(others)]


def _max(values: list[Num]) -> Num:
    best = values[0]
    for value in values[1:]:
        best = maximum(best, value)
    return best


def softmax(x: torch.Tensor, dim: int) -> Counted:
    """Numerically stable, per row of length ``L``: max (``L − 1`` comparisons), ``x − max`` (``L``),
    exp (``L``), sum (``L − 1``), divide (``L``): ``5L − 2``."""
    tally = Tally()
    source = Source("input", x, tally)
    out = Sink("output", x.shape, tally)
    for row in _rows(tuple(x.shape), dim):
        top = _max([source[index] for index in row])
        powers = [exp(source[index] - top) for index in row]
        summed = total(powers)
        for index, power in zip(row, powers, strict=True):
            out[index] = power / summed
    return Counted(out.tensor(), tally)


def log_softmax(x: torch.Tensor, dim: int) -> Counted:
    """Per row: max (``L − 1``), ``z = x − max`` (``L``), exp (``L``), sum (``L − 1``), log (1),
    ``z − log Σ`` (``L``): ``5L − 1``."""
    tally = Tally()
    source = Source("input", x, tally)
    out = Sink("output", x.shape, tally)
    for row in _rows(tuple(x.shape), dim):
        top = _max([source[index] for index in row])
        shifted = [source[index] - top for index in row]
        log_total = log(total([exp(z) for z in shifted]))
        for index, z in zip(row, shifted, strict=True):
            out[index] = z - log_total
    return Counted(out.tensor(), tally)
