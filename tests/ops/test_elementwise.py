"""Binary arithmetic against the counting reference (``tests/reference/elementwise.py``); unary
math, where / masked_fill, casts, pads and copies: tables and complete reports.

Binary ops (``+ − · /``, broadcasting, a Python scalar on either side): FLOPs literal (one per
output element); DMAs read each element of each tensor operand once and write each output once
— departure: the reference reads a broadcast operand once per output element that uses it
(``Tally.reads``), the convention counts its elements once (``Tally.distinct``). A scalar is free.
"""

from __future__ import annotations

import operator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, cost, crawled_cost, function_cost, method_cost, randn, spec
from tests.reference import elementwise as reference
from torchscan import crawl_module
from torchscan.records import Cost

T = torch.Tensor
X = spec(2, 5)


@pytest.mark.parametrize(
    ("target", "per_element"),
    [
        (torch.exp, 1),
        (T.exp, 1),
        (torch.log, 1),
        (torch.sqrt, 1),
        (torch.rsqrt, 2),
        (torch.neg, 1),
        (operator.neg, 1),
        (torch.abs, 1),
        (torch.pow, 1),
        (T.__pow__, 1),
        (torch.reciprocal, 1),
        (T.reciprocal, 1),
        (torch.square, 1),
        (T.square, 1),
        (torch.sign, 1),
        (T.sign, 1),
    ],
)
def test_unary(target: object, per_element: int) -> None:
    assert cost(target, (X,), (X,)) == Cost(flops=10 * per_element, dmas=20)


@pytest.mark.parametrize(
    "op",
    [torch.exp, torch.log, T.log, torch.sqrt, torch.rsqrt, torch.neg, torch.abs, torch.reciprocal, torch.square],
    ids=["exp", "log", "Tensor.log", "sqrt", "rsqrt", "neg", "abs", "reciprocal", "square"],
)
def test_unary_ops_keep_the_receptive_field(op: object) -> None:
    """A pointwise op neither widens nor stops a receptive field: after a 3×3 conv its field is the
    conv's (3, 3), with no receptive-field diagnostic."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return op(self.conv(x).abs() + 1)  # type: ignore[operator]

    report = crawl_module(Net(), (1, 6, 6), receptive_field=True)
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == []
    assert report.rows[-1].receptive_field == report.row("conv").receptive_field == (3, 3)


def test_clamp_counts_its_bounds() -> None:
    assert cost(torch.clamp, (X,), (X,), min=0, max=None) == Cost(flops=10, dmas=20)
    assert cost(torch.clamp, (X,), (X,), min=0, max=6) == Cost(flops=20, dmas=20)
    assert cost(T.clamp_, (X,), (X,), kind="method", args=(0, 1)) == Cost(flops=20, dmas=10)


def test_selections_do_no_arithmetic() -> None:
    mask = spec(2, 5, dtype=torch.bool)
    assert cost(torch.where, (mask, X, X), (X,)) == Cost(dmas=40)
    assert cost(T.masked_fill, (X, mask), (X,), kind="method", args=(mask, 0.0)) == Cost(dmas=30)


def test_casts_are_free_unless_the_dtype_changes() -> None:
    half = spec(2, 5, dtype=torch.float16)
    assert cost(T.float, (X,), (X,), kind="method") == Cost()
    assert cost(T.to, (X,), (half,), kind="method") == Cost(dmas=20)
    assert cost(T.half, (X,), (half,), kind="method") == Cost(dmas=20)


def test_pad_and_copies() -> None:
    assert cost(F.pad, (X,), (spec(2, 7),), pad=(1, 1)) == Cost(dmas=24)
    assert cost(nn.ReflectionPad1d, (spec(1, 2, 5),), (spec(1, 2, 7),), padding=(1, 1)) == Cost(dmas=24)


class Mixed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.where(x > 0, x.exp(), -x).masked_fill(x < -1, 0.0)
        y = F.pad(y, (1, 1)).float().rsqrt().clamp(0, 1) ** 2
        return F.normalize(y.to(torch.float64), dim=-1).abs().log().sqrt()


def test_complete() -> None:
    assert crawl_module(Mixed(), (3, 4)).totals.complete


def test_diff_counts_each_round_and_the_concatenation() -> None:
    x = spec(2, 5)
    # one round along the last dim: 2 rows x 4 differences, each reading 2 and writing 1
    assert cost(torch.diff, (x,), (spec(2, 4),)) == Cost(flops=8, dmas=24)
    # two rounds: 8 then 2 x 3 = 6 outputs
    assert cost(torch.diff, (x,), (spec(2, 3),), n=2) == Cost(flops=14, dmas=42)
    # prepend a column: 12 elements copied (read + written), then 2 x 5 = 10 differences
    assert cost(torch.diff, (x, spec(2, 1)), (spec(2, 5),), prepend=spec(2, 1)) == Cost(flops=10, dmas=54)
    # along dim 0: 1 x 5 differences
    assert cost(torch.Tensor.diff, (x,), (spec(1, 5),), kind="method", dim=0) == Cost(flops=5, dmas=15)


def test_diff_positional_rounds_and_a_full_prepend() -> None:
    x = spec(3, 4)
    # x.diff(2) (rounds given by position): 3 x 3 then 3 x 2 outputs, 15 FLOPs, 3 DMAs each
    assert cost(torch.Tensor.diff, (x,), (spec(3, 2),), kind="method", args=(2,)) == Cost(flops=15, dmas=45)
    # prepend a (3, 2) tensor along the last dim: L = 4 + 2 = 6, 18 elements copied (read and
    # written, 36 DMAs), then 3 x 5 = 15 differences (45 DMAs)
    prepend = spec(3, 2)
    assert cost(torch.diff, (x, prepend), (spec(3, 5),), prepend=prepend) == Cost(flops=15, dmas=81)
    assert torch.diff(torch.zeros(3, 4), prepend=torch.zeros(3, 2)).shape == (3, 5)


def test_clamp_to_one_bound() -> None:
    # one comparison per element; 10 read and 10 written, nothing written in place
    assert cost(torch.clamp_min, (X,), (X,), min=0.0) == Cost(flops=10, dmas=20)
    assert cost(T.clamp_max, (X,), (X,), kind="method", args=(1.0,)) == Cost(flops=10, dmas=20)
    assert cost(T.clamp_min_, (X,), (X,), kind="method", args=(0.0,)) == Cost(flops=10, dmas=10)


def test_diff_output_sizes_match_torch() -> None:
    x = torch.zeros(3, 7)
    for n, dim in ((1, -1), (3, 1), (2, 0)):
        out = torch.diff(x, n=n, dim=dim)
        flops = cost(torch.diff, (spec(3, 7),), (spec(*out.shape),), n=n, dim=dim).flops
        lengths = [(7 if dim != 0 else 3) - k for k in range(1, n + 1)]
        others = 21 // (7 if dim != 0 else 3)
        assert flops == sum(others * length for length in lengths)
        assert out.numel() == others * lengths[-1]


SPELLINGS = {
    "add": (operator.add, torch.add, T.add),
    "sub": (operator.sub, torch.sub, T.sub),
    "mul": (operator.mul, torch.mul, T.mul),
    "div": (operator.truediv, torch.div, T.div),
}


@st.composite
def broadcast_pairs(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """Two shapes that broadcast (sizes set to 1 or dims dropped on either side), or a shape and a
    Python scalar (``None``)."""
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    if draw(st.booleans()):
        return tuple(shape), None

    def thin(dims: list[int]) -> tuple[int, ...]:
        kept = dims[draw(st.integers(0, len(dims) - 1)) :]
        return tuple(size if draw(st.booleans()) else 1 for size in kept)

    return thin(shape), thin(shape)


@given(st.sampled_from(sorted(SPELLINGS)), broadcast_pairs(), st.booleans(), st.integers(0, 2**31))
def test_binary_ops_count_as_the_reference(name: str, shapes: tuple, scalar_first: bool, seed: int) -> None:
    a = randn(seed, *shapes[0])
    b: torch.Tensor | float = randn(seed + 1, *shapes[1]) if shapes[1] is not None else 0.75
    if isinstance(b, float) and scalar_first and name != "div":  # 0.75 − x, 0.75 · x; 0.75 / x may blow up
        a, b = b, a  # type: ignore[assignment]
    counted = reference.binary(name, a, b)
    python_operator, function, method = SPELLINGS[name]
    assert_same(counted.output, python_operator(a, b))
    tally = counted.tally
    want = Cost(flops=tally.flops, dmas=tally.dmas(once=["a", "b"]))
    assert tally.flops == tally.writes["output"]
    assert function_cost(python_operator, a, b) == want
    assert function_cost(function, a, b) == want
    if isinstance(a, torch.Tensor):
        assert method_cost(method, a, b) == want


class Broadcast(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * y


def test_broadcast_product_end_to_end() -> None:
    """(2, 3) · (3,): 6 multiplies; the (3,) operand is read by every row (6 reads, 3 distinct):
    DMAs 6 + 3 + 6 = 15."""
    x, y = randn(0, 2, 3), randn(1, 3)
    counted = reference.binary("mul", x, y)
    assert (counted.tally.reads["b"], counted.tally.distinct("b")) == (6, 3)
    assert crawled_cost(Broadcast(), x, y) == Cost(flops=counted.tally.flops, dmas=counted.tally.dmas(once=["a", "b"]))
    assert crawled_cost(Broadcast(), x, y) == Cost(flops=6, dmas=15)


@pytest.mark.parametrize(
    "function",
    [torch.tan, torch.asin, torch.acos, torch.atan, torch.sinh, torch.cosh, torch.asinh, torch.atanh, torch.arccos],
)
def test_trigonometric_and_hyperbolic_functions_are_one_flop(function: object) -> None:
    """As sin and cos: one transcendental per element (YOSO's ``acos`` was an unknown op)."""
    x = randn(0, 2, 3).clamp(-0.5, 0.5)
    assert function_cost(function, x) == Cost(flops=6, dmas=12)


def test_empty_strided_is_a_factory() -> None:
    """T5Gemma2 makes a buffer by ``torch.empty_strided`` (an unknown op before): it writes its output."""
    assert function_cost(torch.empty_strided, (2, 3), (3, 1)) == Cost(dmas=6)


_SPECIAL = [
    *((name, 1, 1) for name in ("erfc", "digamma", "lgamma", "i0", "sgn", "deg2rad", "rad2deg", "nan_to_num")),
    *((name, 1, 2) for name in ("atan2", "copysign", "heaviside", "nextafter")),
    ("frac", 2, 1),
    ("xlogy", 2, 2),
    ("sinc", 3, 1),
    ("logit", 3, 1),
    ("hypot", 4, 2),
]
"""``(name, FLOPs per element, tensor operands)`` of the special and less common elementwise functions."""


@pytest.mark.parametrize(("name", "flops", "operands"), _SPECIAL, ids=[name for name, _, _ in _SPECIAL])
def test_special_elementwise_functions_in_every_spelling(name: str, flops: int, operands: int) -> None:
    """``torch.<name>``, ``Tensor.<name>`` and in place ``Tensor.<name>_``: ``flops`` per element, every operand
    read, the output written (in place, over the input)."""
    x, other = torch.rand(3, 4) + 0.1, torch.rand(3, 4) + 0.1
    args = (other,) if operands == 2 else ()
    expected = Cost(flops=flops * 12, dmas=12 * operands + 12)
    assert function_cost(getattr(torch, name), x, *args) == expected
    assert method_cost(getattr(T, name), x, *args) == expected
    assert method_cost(getattr(T, name + "_"), x.clone(), *args) == expected


_IN_PLACE = (
    "sin cos tan asin acos atan sinh cosh asinh acosh atanh erf erfinv floor ceil round trunc expm1 log2 log10 log1p "
    "sign square exp2"
)


@pytest.mark.parametrize("name", _IN_PLACE.split())
def test_in_place_spellings_cost_what_their_op_costs(name: str) -> None:
    """``x.sin_()`` as ``x.sin()``: its results are written over ``x``, still written (as ``exp_`` and ``add_``)."""
    x = torch.rand(3, 4) * 0.5 + 0.25
    assert method_cost(getattr(T, name + "_"), x.clone()) == method_cost(getattr(T, name), x)


@pytest.mark.parametrize("name", ["gt", "ge", "lt", "le", "eq", "ne"])
def test_comparisons_in_place_count_as_the_binary_arithmetic_in_place(name: str) -> None:
    """``x.gt_(y)`` as ``x.add_(y)``: one FLOP per element, both operands read, the results written (the binary
    family's in-place spellings write theirs)."""
    x, y = torch.rand(3, 4), torch.rand(3, 4)
    assert method_cost(getattr(T, name + "_"), x.clone(), y) == method_cost(T.add_, x.clone(), y)
    assert method_cost(getattr(T, name + "_"), x.clone(), y) == Cost(flops=12, dmas=36)


def test_an_outer_product_multiplies_once_per_output() -> None:
    a, b = torch.rand(3), torch.rand(5)
    assert function_cost(torch.outer, a, b) == method_cost(T.outer, a, b) == Cost(flops=15, dmas=3 + 5 + 15)
    assert function_cost(torch.ger, a, b) == Cost(flops=15, dmas=23)  # its alias


def test_function_forms_of_in_place_methods_count_as_the_methods() -> None:
    """``torch.sigmoid_(x)`` is ``x.sigmoid_()``, ``torch.arccos_(x)`` is ``x.acos_()``: each function form of an
    in-place method counts as the method (a recorded call binds it as a function: the same inputs)."""
    x = torch.rand(3, 4) * 0.5 + 0.25
    for name in ("sigmoid_", "exp_", "sqrt_", "tanh_", "arccos_", "fix_", "xlogy_", "clamp_min_"):
        args = (0.5,) if name in ("xlogy_", "clamp_min_") else ()
        assert function_cost(getattr(torch, name), x.clone(), *args) == method_cost(
            getattr(T, name), x.clone(), *args
        ), name


def test_method_spellings_and_in_place_forms_of_counted_functions() -> None:
    x, y = torch.rand(3, 4) + 0.5, torch.rand(3, 4) + 0.5
    assert method_cost(T.fmax, x, y) == function_cost(torch.fmax, x, y) == Cost(flops=12, dmas=36)
    assert method_cost(T.float_power, x, 2) == function_cost(torch.float_power, x, 2)
    assert method_cost(T.lerp_, x.clone(), y, 0.5) == method_cost(T.lerp, x, y, 0.5) == Cost(flops=24, dmas=36)
    assert method_cost(T.addcmul_, x.clone(), y, y) == method_cost(T.addcmul, x, y, y) == Cost(flops=36, dmas=48)
    assert method_cost(T.cumprod_, x.clone(), 1) == method_cost(T.cumprod, x, 1)


@pytest.mark.parametrize("p", [1, 3])
def test_the_multivariate_log_gamma_is_p_shifted_log_gammas_summed(p: int) -> None:
    x = torch.rand(3, 4) + p
    expected = Cost(flops=3 * p * 12, dmas=24)
    assert function_cost(torch.mvlgamma, x, p) == method_cost(T.mvlgamma, x, p) == expected
    assert function_cost(torch.special.multigammaln, x, p) == expected  # its alias
    assert method_cost(T.mvlgamma_, x.clone(), p) == expected


@pytest.mark.parametrize(
    ("function", "per_element", "operands"),
    [
        (torch.isnan, 1, 1),
        (torch.Tensor.isposinf, 1, 1),
        (torch.isneginf, 1, 1),
        (torch.signbit, 1, 1),
        (torch.angle, 1, 1),
        (torch.isinf, 2, 1),
        (torch.Tensor.isfinite, 4, 1),
        (torch.conj_physical, 1, 1),
        (torch.logaddexp, 7, 2),
        (torch.Tensor.logaddexp2, 7, 2),
        (torch.isclose, 6, 2),
    ],
)
def test_tests_and_stable_log_sums_count_per_element(function: Any, per_element: int, operands: int) -> None:
    """``isnan`` (x ≠ x), ``isinf`` (|x| = ∞), ``isfinite`` (both, and an and), ``logaddexp`` computed stably
    (``max(a, b) + log1p(exp(−|a − b|))``: 7), ``isclose`` (|a − b| ≤ atol + rtol·|b|: 6): ``k·N_out`` FLOPs, the
    operands read, the output written."""
    args = [torch.randn(2, 3, 4) for _ in range(operands)]
    assert function_cost(function, *args) == Cost(flops=per_element * 24, dmas=24 * operands + 24)


def test_ldexp_is_a_power_and_a_product() -> None:
    x, e = torch.randn(2, 3), torch.randint(-2, 3, (2, 3))
    assert function_cost(torch.ldexp, x, e) == Cost(flops=12, dmas=6 + 6 + 6)


def test_polar_and_complex_from_parts() -> None:
    """``polar`` of 6 magnitudes and angles: a cosine, a sine and two products each (24 FLOPs), 12 reads and 6 writes;
    ``complex(real, imag)`` writes the pairs (no arithmetic): the same result, 18 DMAs."""
    magnitude, angle = torch.rand(2, 3), torch.rand(2, 3)
    assert function_cost(torch.polar, magnitude, angle) == Cost(flops=24, dmas=18)
    assert function_cost(torch.complex, magnitude * angle.cos(), magnitude * angle.sin()) == Cost(dmas=18)
    torch.testing.assert_close(
        torch.polar(magnitude, angle), torch.complex(magnitude * angle.cos(), magnitude * angle.sin())
    )


def test_rotary_embeddings_by_polar_are_complete() -> None:
    """Meta's Llama reference makes its rotary table with ``torch.polar`` (was an unknown op)."""

    class Rotary(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            freqs = torch.outer(torch.arange(x.shape[1]), 1.0 / (10000 ** (torch.arange(0, 8, 2) / 8)))
            table = torch.polar(torch.ones_like(freqs), freqs)
            pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
            return torch.view_as_real(pairs * table).flatten(-2)

    report = crawl_module(Rotary(), (6, 8))
    assert report.totals.complete
