"""Elementwise arithmetic in every spelling: ``x + y``, ``torch.add``, ``Tensor.add_``, ``torch.exp``…

Unary math is a table of FLOPs per element (``pointwise(k)``): exp, log, sqrt, neg, abs… count
1; ``rsqrt`` 2 (root and reciprocal); ``clamp`` one comparison per bound; special functions (``digamma``,
``lgamma``, ``i0``, ``erfc``, ``atan2``) 1, as transcendentals; ``frac`` and ``xlogy`` 2, ``sinc`` and ``logit`` 3,
``hypot`` 4; an in-place spelling as its op (its results still written). Logical and bitwise ops
(``&``, ``|``, ``^``, ``~``, ``logical_not``…) count one elementary op per output element, like a
comparison, whatever the dtype. Selections
(``torch.where``, ``masked_fill``) move data and do no arithmetic.
"""

from __future__ import annotations

import operator

import torch

from torchscan.ops.common import argument, pointwise, unary_writes
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("elementwise")

T = torch.Tensor
aten = torch.ops.aten


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
    torch.maximum,
    torch.minimum,
    pointwise=True,
)
@TABLE.register(
    torch.fmax,
    torch.fmin,
    T.fmax,
    T.fmin,
    T.maximum,
    T.minimum,
    torch.floor_divide,
    T.__floordiv__,
    operator.floordiv,
    torch.remainder,
    T.__mod__,
    operator.mod,
    torch.fmod,
    torch.eq,
    torch.ne,
    torch.lt,
    torch.le,
    torch.gt,
    torch.ge,
    T.eq,
    T.ne,
    T.lt,
    T.le,
    T.gt,
    T.ge,
    T.__eq__,
    T.__ne__,
    T.__lt__,
    T.__le__,
    T.__gt__,
    T.__ge__,
    operator.eq,
    operator.ne,
    operator.lt,
    operator.le,
    operator.gt,
    operator.ge,
    aten.add.Tensor,
    aten.add_.Tensor,
    aten.sub.Tensor,
    aten.mul.Tensor,
    aten.mul_.Tensor,
    aten.div.Tensor,
    aten.add.Scalar,
    aten.mul.Scalar,
    aten.div.Scalar,
    aten.maximum.default,
    aten.minimum.default,
    aten.add_.Scalar,
    aten.sub.Scalar,
    aten.sub_.Tensor,
    aten.sub_.Scalar,
    aten.rsub.Tensor,
    aten.rsub.Scalar,
    aten.mul_.Scalar,
    aten.div_.Tensor,
    aten.div_.Scalar,
    aten.remainder.Tensor,
    aten.remainder.Scalar,
    aten.floor_divide.default,  # a traced model's size arithmetic (``channels // groups`` on tensors)
    aten.floor_divide.Scalar,
    aten.eq.Tensor,
    aten.eq.Scalar,
    aten.ne.Tensor,
    aten.ne.Scalar,
    aten.lt.Tensor,
    aten.lt.Scalar,
    aten.le.Tensor,
    aten.le.Scalar,
    aten.gt.Tensor,
    aten.gt.Scalar,
    aten.ge.Tensor,
    aten.ge.Scalar,
    T.remainder,
    T.remainder_,
    T.__rmod__,
    T.__imod__,
    T.fmod,
    T.fmod_,
    T.floor_divide,
    T.floor_divide_,
    T.gt_,
    T.ge_,
    T.lt_,
    T.le_,
    T.eq_,
    T.ne_,
    T.__rfloordiv__,
    T.__ifloordiv__,
    operator.and_,
    operator.or_,
    operator.xor,
    operator.iand,
    operator.ior,
    operator.ixor,
    torch.bitwise_and,
    torch.bitwise_or,
    torch.bitwise_xor,
    torch.logical_and,
    torch.logical_or,
    torch.logical_xor,
    T.bitwise_and,
    T.bitwise_or,
    T.bitwise_xor,
    T.bitwise_and_,
    T.bitwise_or_,
    T.bitwise_xor_,
    T.logical_and,
    T.logical_or,
    T.logical_xor,
    T.logical_and_,
    T.logical_or_,
    T.logical_xor_,
    T.__and__,
    T.__or__,
    T.__xor__,
    T.__rand__,
    T.__ror__,
    T.__rxor__,
    T.__iand__,
    T.__ior__,
    T.__ixor__,
    aten.bitwise_and.Tensor,
    aten.bitwise_and.Scalar,
    aten.bitwise_or.Tensor,
    aten.bitwise_or.Scalar,
    aten.bitwise_xor.Tensor,
    aten.logical_and.default,
    aten.logical_or.default,
    aten.logical_xor.default,
)
def binary(call: OpCall) -> Cost:
    """add / sub / mul / div / remainder / maximum / comparisons / logical and bitwise
    ``& | ^``: ``FLOPs = N_out``, ``MACs = 0``, ``DMAs = (elements of the tensor operands) + N_out``
    (a Python scalar operand is free; an in-place spelling still writes its ``N_out`` results)."""
    n_out = call.output.numel
    return Cost(flops=n_out, dmas=sum(spec.numel for spec in call.inputs) + n_out)


TABLE.declare(operator.add, torch.add, T.add, T.__add__, T.__radd__, saves=Saves.SUM)
# comparisons, logical and bitwise ops out of place: bool (or integer) results, which autograd never differentiates
# (no backward node, whatever their operands): they keep nothing and allocate only their result (an attention
# mask's ``positions <= limit`` and ``a & b``). In place (``&=``…) they are left to the ATen-level recording.
TABLE.declare(
    *(torch.eq, torch.ne, torch.lt, torch.le, torch.gt, torch.ge, T.eq, T.ne, T.lt, T.le, T.gt, T.ge),
    *(T.__eq__, T.__ne__, T.__lt__, T.__le__, T.__gt__, T.__ge__),
    *(operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge),
    *(torch.logical_and, torch.logical_or, torch.logical_xor, torch.logical_not),
    *(T.logical_and, T.logical_or, T.logical_xor, T.logical_not),
    *(torch.bitwise_and, torch.bitwise_or, torch.bitwise_xor, torch.bitwise_not),
    *(T.bitwise_and, T.bitwise_or, T.bitwise_xor, T.bitwise_not),
    *(T.__and__, T.__or__, T.__xor__, T.__rand__, T.__ror__, T.__rxor__, T.__invert__),
    *(operator.and_, operator.or_, operator.xor, operator.invert),
    saves=Saves.NOTHING,
)
TABLE.declare(
    operator.iadd,
    T.add_,
    operator.sub,
    operator.isub,
    torch.sub,
    torch.subtract,
    torch.rsub,
    T.sub,
    T.sub_,
    T.__iadd__,
    T.__sub__,
    T.__rsub__,
    T.__isub__,
    saves=Saves.NOTHING,
)
# every out-of-place spelling alike; in place (``mul_``, ``*=``, ``div_``, ``/=``) autograd keeps a copy of the
# overwritten operand when the other one requires grad: recorded at the ATen level (no family)
TABLE.declare(operator.mul, torch.mul, torch.multiply, T.mul, T.__mul__, T.__rmul__, saves=Saves.PRODUCT)
TABLE.declare(operator.truediv, torch.div, torch.divide, torch.true_divide, T.div, T.__truediv__, saves=Saves.QUOTIENT)


TABLE.register(torch.exp, T.exp, T.exp_, torch.exp2, T.exp2, torch.expm1, T.expm1, aten.exp.default)(pointwise(1))

TABLE.declare(torch.exp, T.exp, pointwise=True)

TABLE.declare(torch.exp, T.exp, T.exp_, saves=Saves.OUTPUT)
TABLE.register(torch.log, T.log, T.log_, torch.log2, T.log2, torch.log10, T.log10, torch.log1p, T.log1p)(pointwise(1))

TABLE.declare(torch.log, T.log, pointwise=True)
TABLE.register(aten.log.default)(pointwise(1))
TABLE.register(torch.sqrt, T.sqrt, T.sqrt_, aten.sqrt.default)(pointwise(1))

TABLE.declare(torch.sqrt, T.sqrt, pointwise=True)

TABLE.declare(torch.sqrt, T.sqrt, T.sqrt_, saves=Saves.OUTPUT)
TABLE.register(torch.rsqrt, T.rsqrt, T.rsqrt_, aten.rsqrt.default)(pointwise(2))

TABLE.declare(torch.rsqrt, T.rsqrt, pointwise=True)

TABLE.declare(torch.rsqrt, T.rsqrt, T.rsqrt_, saves=Saves.OUTPUT)
TABLE.register(torch.neg, torch.negative, T.neg, T.neg_, T.__neg__, operator.neg, aten.neg.default)(pointwise(1))

TABLE.declare(torch.neg, T.neg, T.__neg__, operator.neg, pointwise=True)

TABLE.declare(torch.neg, T.neg, T.neg_, T.__neg__, operator.neg, saves=Saves.NOTHING)
TABLE.register(torch.abs, torch.absolute, T.abs, T.abs_, T.__abs__, operator.abs, aten.abs.default)(pointwise(1))

TABLE.declare(torch.abs, T.abs, T.__abs__, pointwise=True)
TABLE.register(torch.reciprocal, T.reciprocal, T.reciprocal_, torch.square, T.square, torch.sign, T.sign)(pointwise(1))

TABLE.declare(torch.reciprocal, T.reciprocal, torch.square, T.square, torch.sign, pointwise=True)
TABLE.register(torch.sin, T.sin, torch.cos, T.cos, torch.erf, T.erf, torch.erfinv, T.erfinv)(pointwise(1))
TABLE.register(
    *(torch.tan, T.tan, torch.asin, torch.arcsin, T.asin, torch.acos, torch.arccos, T.acos),
    *(torch.atan, torch.arctan, T.atan, torch.sinh, T.sinh, torch.cosh, T.cosh),
    *(torch.asinh, torch.arcsinh, T.asinh, torch.acosh, torch.arccosh, T.acosh, torch.atanh, torch.arctanh, T.atanh),
)(pointwise(1))
TABLE.declare(torch.tan, torch.asin, torch.acos, torch.atan, torch.sinh, torch.cosh, pointwise=True)

TABLE.declare(torch.sin, T.sin, torch.cos, T.cos, torch.erf, pointwise=True)
TABLE.register(torch.floor, T.floor, torch.ceil, T.ceil, torch.round, T.round, torch.trunc, T.trunc)(pointwise(1))
TABLE.register(
    torch.pow,
    T.pow,
    T.pow_,
    T.__pow__,
    T.__rpow__,
    T.__ipow__,
    operator.pow,
    operator.ipow,
    torch.float_power,
    T.float_power,
    aten.pow.Tensor_Scalar,
    aten.pow.Tensor_Tensor,
)(pointwise(1))

TABLE.declare(torch.pow, T.pow, T.__pow__, operator.pow, pointwise=True)
TABLE.register(
    torch.bitwise_not,
    T.bitwise_not,
    T.bitwise_not_,
    T.__invert__,
    operator.invert,
    operator.inv,
    torch.logical_not,
    T.logical_not,
    T.logical_not_,
    aten.bitwise_not.default,
    aten.logical_not.default,
)(pointwise(1))
TABLE.register(torch.lerp, T.lerp, T.lerp_)(pointwise(2))
TABLE.register(torch.addcmul, T.addcmul, T.addcmul_, torch.addcdiv, T.addcdiv, T.addcdiv_)(pointwise(3))


@TABLE.register(torch.clamp, torch.clip, T.clamp, T.clip, aten.clamp.default, inplace=False)
@TABLE.register(torch.clamp_, T.clamp_, T.clip_, inplace=True)
def clamp(call: OpCall, inplace: bool) -> Cost:
    """clamp / clip: one comparison per given bound: ``FLOPs = N_in·([min] + [max])``, ``MACs = 0``,
    ``DMAs = N_in + (tensor bounds) + N_out·[not inplace]``."""
    bounds = (argument(call, "min", 0) is not None) + (argument(call, "max", 1) is not None)
    return Cost(flops=call.input.numel * bounds, dmas=sum(s.numel for s in call.inputs) + unary_writes(call, inplace))


TABLE.declare(T.clamp_, pointwise=True)

TABLE.declare(torch.clamp, torch.clip, T.clamp, T.clip, pointwise=True)


@TABLE.register(torch.clamp_min, T.clamp_min, torch.clamp_max, T.clamp_max, aten.clamp_min.default, inplace=False)
@TABLE.register(T.clamp_min_, T.clamp_max_, inplace=True)
def clamp_one(call: OpCall, inplace: bool) -> Cost:
    """clamp_min / clamp_max: ``FLOPs = N_in``, ``MACs = 0``, ``DMAs = N_in + N_out·[not inplace]``."""
    return Cost(flops=call.input.numel, dmas=sum(s.numel for s in call.inputs) + unary_writes(call, inplace))


@TABLE.register(torch.where, T.where, aten.where.self)
def where(call: OpCall) -> Cost:
    """where (a selection, no arithmetic): ``FLOPs = MACs = 0``,
    ``DMAs = (elements of the condition and tensor operands) + N_out``."""
    return Cost(dmas=sum(spec.numel for spec in call.inputs) + call.output.numel)


TABLE.declare(torch.where, pointwise=True)


@TABLE.register(torch.masked_fill, T.masked_fill, aten.masked_fill.Scalar, aten.masked_fill.Tensor, inplace=False)
@TABLE.register(T.masked_fill_, inplace=True)
def masked_fill(call: OpCall, inplace: bool) -> Cost:
    """masked_fill (a selection, no arithmetic): ``FLOPs = MACs = 0``,
    ``DMAs = N_in + N_mask + N_out·[not inplace]``."""
    return Cost(dmas=sum(spec.numel for spec in call.inputs) + unary_writes(call, inplace))


@TABLE.register(torch.diff, T.diff, aten.diff.default)
def diff(call: OpCall) -> Cost:
    """``torch.diff(x, n, dim, prepend, append)``: ``prepend``/``append`` are concatenated along ``dim``
    first (a copy: ``DMAs = N_cat`` read + ``N_cat`` written), then ``n`` rounds of ``y[i+1] − y[i]``.
    With ``L`` the length along ``dim`` after concatenation and ``M = N_cat / L`` the other elements,
    round ``k`` makes ``N_k = M·(L − k)`` outputs from ``2·N_k`` reads:
    ``FLOPs = Σ_k N_k``, ``MACs = 0``, ``DMAs = [concatenated]·2·N_cat + Σ_k 3·N_k`` (``k = 1..n``)."""
    x = call.inputs[0]
    rounds = int(argument(call, "n", 0, 1))
    dim = int(argument(call, "dim", 1, -1)) % max(len(x.shape), 1)
    extra = call.inputs[1:]
    # torch refuses a prepend/append of another number of dims than the input
    length = x.shape[dim] + sum(spec.shape[dim] for spec in extra)
    others = x.numel // x.shape[dim] if x.shape[dim] else 0
    total = others * length
    outputs = [others * max(length - k, 0) for k in range(1, rounds + 1)]
    copy = 2 * total if extra else 0
    return Cost(flops=sum(outputs), dmas=copy + 3 * sum(outputs))


# special functions (digamma, lgamma, polygamma, i0, erfc, atan2) count 1 FLOP per element, as transcendentals do;
# a sign, a degree/radian scale, a copysign, a step, nextafter and nan_to_num's replacement 1; frac (x − trunc x)
# 2; xlogy (x·log y) 2; sinc (sin πx / πx) 3; logit (log(p / (1 − p))) 3; hypot (√(a² + b²)) 4
_UNARY_1 = ("erfc", "digamma", "lgamma", "i0", "sgn", "deg2rad", "rad2deg", "nan_to_num")
_BINARY_1 = ("atan2", "copysign", "heaviside", "nextafter")
_BY_FLOPS = {1: (*_UNARY_1, *_BINARY_1), 2: ("frac", "xlogy"), 3: ("sinc", "logit"), 4: ("hypot",)}
for _flops, _names in _BY_FLOPS.items():
    _out_of_place = [getattr(owner, name) for name in _names for owner in (torch, T)]
    TABLE.register(*_out_of_place, *(getattr(T, name + "_") for name in _names))(pointwise(_flops))
    TABLE.declare(*_out_of_place, pointwise=True)
TABLE.register(torch.polygamma, T.polygamma, T.polygamma_)(pointwise(1))
TABLE.declare(torch.polygamma, T.polygamma, pointwise=True)
# in place, as their out-of-place ops count: the results are written over the input, still written (as ``exp_`` and
# ``add_``; only the activations, ``clamp_`` and ``masked_fill_`` drop the write, as the published table counts
# ``relu_``); the comparisons in place (``gt_``…) are counted with the binary arithmetic
TABLE.register(
    *(T.sin_, T.cos_, T.tan_, T.asin_, T.acos_, T.atan_, T.sinh_, T.cosh_, T.asinh_, T.acosh_, T.atanh_),
    *(T.erf_, T.erfinv_, T.floor_, T.ceil_, T.round_, T.trunc_, T.expm1_, T.log2_, T.log10_, T.log1p_),
    *(T.exp2_, T.float_power_, T.sign_, T.square_),
)(pointwise(1))


@TABLE.register(torch.outer, T.outer)
def outer(call: OpCall) -> Cost:
    """The outer product of two vectors (``a_i·b_j``): one multiply per output element, ``FLOPs = N_out``,
    ``MACs = 0`` (nothing is summed), ``DMAs = N_a + N_b + N_out``."""
    return Cost(flops=call.output.numel, dmas=sum(spec.numel for spec in call.inputs) + call.output.numel)


@TABLE.register(torch.polar, aten.polar.default)
def polar(call: OpCall) -> Cost:
    """``polar(abs, angle)``, the complex ``abs·cos(angle) + i·abs·sin(angle)`` (rotary position embeddings' table):
    a cosine, a sine and two products per element, ``FLOPs = 4·N_out``, ``MACs = 0``, ``DMAs = N_abs + N_angle +
    N_out``."""
    n_out = call.output.numel
    return Cost(flops=4 * n_out, dmas=sum(spec.numel for spec in call.inputs) + n_out)


@TABLE.register(torch.complex, aten.complex.default)
def complex_from_parts(call: OpCall) -> Cost:
    """``complex(real, imag)``: each pair written as one complex element, no arithmetic, ``FLOPs = MACs = 0``,
    ``DMAs = N_real + N_imag + N_out``."""
    return Cost(dmas=sum(spec.numel for spec in call.inputs) + call.output.numel)


TABLE.declare(torch.complex, saves=Saves.NOTHING)  # linear in its parts: the gradient needs no value


@TABLE.register(torch.mvlgamma, T.mvlgamma, T.mvlgamma_)
def mvlgamma(call: OpCall) -> Cost:
    """The multivariate log-gamma of dimension ``p``, ``Σ_{i<p} lgamma(x − i/2) + c``: per element ``p`` shifts,
    ``p`` log-gammas and ``p`` adds, ``FLOPs = 3·p·N_out``, ``MACs = 0``, ``DMAs = N_in + N_out`` (in place too)."""
    p = int(argument(call, "p", 0, 1))
    return Cost(flops=3 * p * call.output.numel, dmas=call.input.numel + call.output.numel)


TABLE.declare(torch.mvlgamma, T.mvlgamma, pointwise=True)


# tests and bit reads (``isnan`` x ≠ x, ``isposinf``, ``isneginf``, ``signbit``, ``isreal``: one comparison; ``isinf``
# |x| = ∞: 2; ``isfinite`` x = x and |x| ≠ ∞: 4), ``angle`` (a comparison of a real input, an atan2 of a complex one),
# ``conj_physical`` (the imaginary parts negated), ``ldexp`` (x·2^e: a power and a product), ``logaddexp`` and
# ``logaddexp2`` computed stably, ``max(a, b) + log1p(exp(−|a − b|))`` (7), ``isclose`` |a − b| ≤ atol + rtol·|b| (a
# subtraction, two abs, a product, an addition, a comparison: 6)
_TESTS = {
    1: ("isnan", "isposinf", "isneginf", "signbit", "isreal", "angle"),
    2: ("isinf", "ldexp"),
    4: ("isfinite",),
    6: ("isclose",),
    7: ("logaddexp", "logaddexp2"),
}
for _flops, _names in _TESTS.items():
    _spellings = [getattr(owner, name) for name in _names for owner in (torch, T)]
    TABLE.register(*_spellings, *(getattr(T, f"{name}_") for name in _names if hasattr(T, f"{name}_")))(
        pointwise(_flops)
    )
    TABLE.declare(*_spellings, pointwise=True)
TABLE.register(torch.conj_physical, T.conj_physical, T.conj_physical_)(pointwise(1))
TABLE.declare(torch.conj_physical, T.conj_physical, pointwise=True)
