"""Activations against the counting reference (``tests/reference/activation.py``) and in all
their spellings on literal shapes.

Conventions (``torchscan/ops/__init__.py``): transcendentals (exp, log, erf, pow) are 1 FLOP; the
reference spells sigmoid (4), tanh (6), SiLU (5), GELU (5, or 14 with the tanh approximation),
Mish (10), Softplus (6), Hardswish (5), Hardsigmoid (4), LeakyReLU ``max(x, 0) + slope·min(x, 0)``
(4) and ELU (6) by their textbook definitions, so FLOPs are literal. Softmax is the numerically
stable one (``5L − 2`` a row of ``L``), log-softmax ``5L − 1``. No MACs. DMAs read each input
element once and write each output once, with three departures checked exactly:

- Tanh reads its input **twice** (``2·N_in + N_out``, one read per exponential; GELU's and Mish's
  inner tanh do not);
- LeakyReLU and ELU read their slope / alpha as **one more element** (a scalar hyperparameter);
- an in-place call writes **nothing** (``N_out·[not inplace]``), though it overwrites its input.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, cost, crawled_cost, function_cost, method_cost, module_cost, randn, spec
from tests.reference import activation as reference
from tests.reference.counting import Counted
from torchscan import crawl_module
from torchscan.records import Cost

T = torch.Tensor
aten = torch.ops.aten
X = spec(2, 3, 4)  # N = 24, rows over the last dim R = 6


@pytest.mark.parametrize(
    ("target", "attrs", "per_element"),
    [
        (nn.GELU, {"approximate": "none"}, 5),
        (nn.GELU, {"approximate": "tanh"}, 14),
        (F.gelu, {"approximate": "tanh"}, 14),
        (aten.gelu.default, {}, 5),
        (nn.SiLU, {"inplace": False}, 5),
        (F.silu, {"inplace": False}, 5),
        (nn.Mish, {}, 10),
        (F.mish, {}, 10),
        (nn.Hardswish, {}, 5),
        (F.hardswish, {}, 5),
        (nn.Hardsigmoid, {}, 4),
        (F.hardsigmoid, {}, 4),
        (nn.Softplus, {"beta": 1.0}, 6),
        (F.softplus, {}, 6),
    ],
)
def test_pointwise_activations(target: object, attrs: dict, per_element: int) -> None:
    assert cost(target, (X,), (X,), **attrs) == Cost(flops=per_element * 24, dmas=48)


def test_inplace_writes_nothing() -> None:
    assert cost(nn.SiLU, (X,), (X,), inplace=True) == Cost(flops=5 * 24, dmas=24)
    assert cost(nn.Hardswish, (X,), (X,), inplace=True).dmas == 24


@pytest.mark.parametrize(
    ("target", "per_element"),
    [
        (aten.relu_.default, 1),
        (aten.hardtanh_.default, 2),
        (aten.silu_.default, 5),
        (aten.hardswish_.default, 5),
        (aten.hardsigmoid_.default, 4),
    ],
)
def test_aten_inplace_spellings_write_nothing(target: object, per_element: int) -> None:
    """The ATen in-place overloads (what a scripted or decomposed model records): 24 inputs read,
    nothing written; the out-of-place overload writes its 24 outputs."""
    assert cost(target, (X,), (X,)) == Cost(flops=per_element * 24, dmas=24)
    out_of_place = getattr(aten, str(target).split(".")[1].rstrip("_")).default
    assert cost(out_of_place, (X,), (X,)) == Cost(flops=per_element * 24, dmas=48)


# 6 rows of 4: max 3 comparisons, subtract 4, exp 4, sum 3 adds, divide 4 = 18 a row, 108 in all;
# log-softmax: max 3, subtract 4, exp 4, sum 3, log 1, subtract 4 = 19 a row, 114. DMAs 24 + 24.
SOFTMAX = Cost(flops=108, dmas=48)
LOG_SOFTMAX = Cost(flops=114, dmas=48)
# softmin = softmax of -x: one negation more per element, 22 a row, 132 in all.
SOFTMIN = Cost(flops=132, dmas=48)


@pytest.mark.parametrize(
    ("target", "kind", "attrs", "expected"),
    [
        (nn.Softmax, "module", {"dim": -1}, SOFTMAX),
        (F.softmax, "function", {"dim": 2}, SOFTMAX),
        (torch.softmax, "function", {"dim": -1}, SOFTMAX),
        (T.softmax, "method", {"args": (-1,)}, SOFTMAX),
        (T.softmax, "method", {"args": (), "dim": -1}, SOFTMAX),
        (aten._softmax.default, "function", {"dim": -1, "half_to_float": False}, SOFTMAX),
        (nn.LogSoftmax, "module", {"dim": -1}, LOG_SOFTMAX),
        (F.log_softmax, "function", {"dim": -1}, LOG_SOFTMAX),
        (T.log_softmax, "method", {"args": (-1,)}, LOG_SOFTMAX),
        (nn.Softmin, "module", {"dim": -1}, SOFTMIN),
        (F.softmin, "function", {"dim": -1}, SOFTMIN),
        # 12 rows of 2: 1 + 2 + 2 + 1 + 2 = 8 a row
        (nn.Softmax, "module", {"dim": 0}, Cost(flops=96, dmas=48)),
    ],
)
def test_softmax_spellings(target: object, kind: str, attrs: dict, expected: Cost) -> None:
    assert cost(target, (X,), (X,), kind=kind, **attrs) == expected


class Acts(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(x, approximate="tanh") + F.silu(x) + F.hardswish(x) + F.mish(x)
        return x.softmax(-1) + torch.log_softmax(x, dim=1) + F.softplus(x)


def test_functional_spellings_are_complete() -> None:
    report = crawl_module(Acts(), (3, 4))
    assert report.totals.complete, report.diagnostics


def expected(counted: Counted, extra_reads: int = 0, inplace: bool = False) -> Cost:
    """The convention on the reference's counts: FLOPs literal, each input element read once
    (``extra_reads`` more: the departures of the module docstring), an in-place call's writes not
    counted."""
    tally = counted.tally
    assert tally.macs == 0
    writes = tally.writes["output"] if inplace else 0
    return Cost(flops=tally.flops, dmas=tally.dmas(once=["input"]) + extra_reads - writes)


def _none(n: int) -> int:
    return 0


def _scalar(n: int) -> int:
    return 1


def _twice(n: int) -> int:
    return n


# name → (module, a functional spelling and its keyword arguments, reads beyond one per input element)
ACTIVATIONS: dict[str, tuple[Callable[[], nn.Module], Callable[..., torch.Tensor], dict, Callable[[int], int]]] = {
    "relu": (nn.ReLU, F.relu, {}, _none),
    "relu6": (nn.ReLU6, F.relu6, {}, _none),
    "hardtanh": (nn.Hardtanh, F.hardtanh, {}, _none),
    "leaky_relu": (nn.LeakyReLU, F.leaky_relu, {}, _scalar),
    "elu": (nn.ELU, F.elu, {}, _scalar),
    "sigmoid": (nn.Sigmoid, torch.sigmoid, {}, _none),
    "tanh": (nn.Tanh, torch.tanh, {}, _twice),
    "silu": (nn.SiLU, F.silu, {}, _none),
    "gelu": (nn.GELU, F.gelu, {}, _none),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), F.gelu, {"approximate": "tanh"}, _none),
    "softplus": (nn.Softplus, F.softplus, {}, _none),
    "mish": (nn.Mish, F.mish, {}, _none),
    "hardswish": (nn.Hardswish, F.hardswish, {}, _none),
    "hardsigmoid": (nn.Hardsigmoid, F.hardsigmoid, {}, _none),
    "logsigmoid": (nn.LogSigmoid, F.logsigmoid, {}, _none),
    "softsign": (nn.Softsign, F.softsign, {}, _none),
    "tanhshrink": (nn.Tanhshrink, F.tanhshrink, {}, _twice),
    "selu": (nn.SELU, F.selu, {}, _none),
    "celu": (nn.CELU, F.celu, {}, _scalar),
    "threshold": (lambda: nn.Threshold(0.1, 20.0), F.threshold, {"threshold": 0.1, "value": 20.0}, _none),
    "hardshrink": (nn.Hardshrink, F.hardshrink, {}, _none),
    "softshrink": (nn.Softshrink, F.softshrink, {}, _scalar),
    "rrelu_eval": (lambda: nn.RReLU().eval(), F.rrelu, {}, _scalar),
}


@given(
    st.sampled_from(sorted(ACTIVATIONS)),
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
    st.integers(0, 2**31),
)
def test_activations_count_as_the_reference(name: str, shape: list[int], seed: int) -> None:
    x = 3 * randn(seed, *shape)
    make, function, kwargs, extra = ACTIVATIONS[name]
    counted = reference.pointwise(reference.ACTIVATIONS[name], x)
    module = make()
    assert_same(counted.output, module(x))
    want = expected(counted, extra(x.numel()))
    assert module_cost(module, x) == want
    assert function_cost(function, x, **kwargs) == want


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_end_to_end(name: str) -> None:
    x = 3 * randn(0, 2, 3)
    make, _, _, extra = ACTIVATIONS[name]
    assert crawled_cost(make(), x) == expected(reference.pointwise(reference.ACTIVATIONS[name], x), extra(6))


@pytest.mark.parametrize(
    ("module", "name"),
    [(nn.ReLU(inplace=True), "relu"), (nn.SiLU(inplace=True), "silu"), (nn.Hardswish(inplace=True), "hardswish")],
)
def test_inplace_activations_count_as_the_reference(module: nn.Module, name: str) -> None:
    x = randn(0, 2, 5)
    counted = reference.pointwise(reference.ACTIVATIONS[name], x)
    assert_same(counted.output, module(x.clone()))
    assert module_cost(module, x.clone()) == expected(counted, inplace=True)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4, 2)])
def test_softmax2d_is_a_softmax_over_channels(shape: tuple[int, ...]) -> None:
    """Softmax2d normalises over dim −3 (the channels of a batched or unbatched image): the
    reference's softmax over that dim. On (2, 3, 4, 5): R = 40 rows of 3, 5·120 − 2·40 = 520 FLOPs."""
    x = 3 * randn(0, *shape)
    counted = reference.softmax(x, -3)
    assert_same(counted.output, nn.Softmax2d()(x))
    assert module_cost(nn.Softmax2d(), x) == expected(counted)
    if shape == (2, 3, 4, 5):
        assert expected(counted) == Cost(flops=520, dmas=240)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_keep_the_receptive_field(name: str) -> None:
    """A pointwise activation neither widens nor stops a receptive field: after a 3×3 conv the
    activation's field is the conv's (3, 3), with no receptive-field diagnostic."""
    make = ACTIVATIONS[name][0]
    report = crawl_module(nn.Sequential(nn.Conv2d(1, 2, 3), make()), (1, 6, 6), receptive_field=True)
    assert [d.code for d in report.diagnostics if d.code.startswith("rf-")] == []
    assert report.row("1").receptive_field == report.row("0").receptive_field == (3, 3)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_softmax_counts_as_the_reference(shape: list[int], data: st.DataObject) -> None:
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = 3 * randn(data.draw(st.integers(0, 2**31)), *shape)
    counted = reference.softmax(x, dim)
    assert_same(counted.output, torch.softmax(x, dim))
    assert module_cost(nn.Softmax(dim), x) == expected(counted)
    assert function_cost(F.softmax, x, dim) == expected(counted)
    assert method_cost(T.softmax, x, dim) == expected(counted)
    counted = reference.log_softmax(x, dim)
    assert_same(counted.output, torch.log_softmax(x, dim))
    assert module_cost(nn.LogSoftmax(dim), x) == expected(counted)
    assert function_cost(F.log_softmax, x, dim) == expected(counted)


def test_softmax_of_a_zero_dim_tensor() -> None:
    """One row of one element: no comparison, subtract, exp, no addition, divide (3 FLOPs);
    log-softmax: subtract, exp, log, subtract (4). 1 read, 1 write."""
    x = torch.tensor(2.0)
    assert function_cost(F.softmax, x, 0) == method_cost(T.softmax, x, 0) == Cost(flops=3, dmas=2)
    assert function_cost(F.log_softmax, x, 0) == Cost(flops=4, dmas=2)


@pytest.mark.parametrize("slopes", [1, 3])
def test_prelu_is_a_leaky_relu_reading_its_slopes(slopes: int) -> None:
    """``max(x, 0) + a·min(x, 0)`` (4 a element) with ``a`` a learned slope per channel (or one): an unknown op
    before (Hugging Face's DAB-DETR). x (2, 3, 4): 96 FLOPs, DMAs 24 read + the slopes + 24 written."""
    module, x = nn.PReLU(slopes, dtype=torch.float64), randn(0, 2, 3, 4)
    want = Cost(flops=4 * 24, dmas=48 + slopes)
    with torch.no_grad():
        assert module_cost(module, x) == want
        assert function_cost(F.prelu, x, module.weight) == want
        assert crawled_cost(module, x) == want
        slope = float(module.weight[0])
        counted = reference.pointwise(lambda v: reference.leaky_relu(v, slope), x)
        assert_same(counted.output, module(x))
        assert counted.tally.flops == want.flops


@pytest.mark.parametrize("dim", [-1, 1])
def test_glu_gates_one_half_by_the_sigmoid_of_the_other(dim: int) -> None:
    """``a·sigmoid(b)`` over the halves along ``dim`` (Wav2Vec2-Conformer's convolution module: an unknown op
    before): 5 FLOPs an output element, each input element read once."""
    x = randn(0, 2, 4, 6)
    a, b = x.chunk(2, dim)
    counted = reference.glu_halves(a, b)
    assert_same(counted.output, F.glu(x, dim))
    want = Cost(flops=counted.tally.flops, dmas=x.numel() + a.numel())
    assert want.flops == 5 * a.numel()
    assert module_cost(nn.GLU(dim), x) == want
    assert function_cost(F.glu, x, dim) == want


def test_rrelu_in_training_reads_both_bounds() -> None:
    """RReLU in training draws a slope per element in ``[lower, upper]``: 4 FLOPs an element as in eval (a
    LeakyReLU of the mean slope), both bounds read (24 + 2 + 24); in place nothing written; ``F.rrelu``'s
    ``training`` defaults to False, ``aten.rrelu_with_noise`` takes it fifth (its noise buffer second)."""
    assert cost(nn.RReLU, (X,), (X,), training=True) == Cost(flops=96, dmas=50)
    assert cost(nn.RReLU, (X,), (X,), training=False) == Cost(flops=96, dmas=49)
    assert cost(nn.RReLU, (X,), (X,), training=True, inplace=True) == Cost(flops=96, dmas=26)
    assert cost(F.rrelu, (X,), (X,)) == Cost(flops=96, dmas=49)
    with torch.random.fork_rng():
        assert function_cost(F.rrelu, randn(0, 2, 3, 4), training=True) == Cost(flops=96, dmas=50)
    assert cost(aten.rrelu_with_noise.default, (X, X), (X,), args=(X, X, 0.1, 0.3, True)) == Cost(flops=96, dmas=50)


def test_rrelu_in_training_is_analysed_without_drawing() -> None:
    """An RReLU in training is counted from shapes: the global generator is left as found."""
    model = nn.Sequential(nn.Linear(4, 6), nn.RReLU()).train()
    before = torch.get_rng_state()
    report = crawl_module(model, (4,))
    assert torch.equal(before, torch.get_rng_state())
    assert report.totals.complete
    assert report.row("1").flops == 4 * 6
    assert report.row("1").dmas == 6 + 2 + 6


@pytest.mark.parametrize(
    ("target", "per_element", "reads"),
    [(F.selu_, 7, 0), (torch.selu_, 7, 0), (F.celu_, 7, 1), (F.threshold_, 1, 0), (torch.threshold_, 1, 0)],
)
def test_inplace_spellings_of_the_newer_activations_write_nothing(target: object, per_element: int, reads: int) -> None:
    assert cost(target, (X,), (X,)) == Cost(flops=per_element * 24, dmas=24 + reads)


def test_aten_elu_counts_the_scales_selu_and_celu_run_it_with() -> None:
    """SELU and CELU decompose to ``aten.elu(x, alpha, scale, input_scale)`` at the ATen level (a scripted model's
    recording): a scale other than 1 is one more multiply an element, so a scripted SELU or CELU counts 7 FLOPs an
    element as the eager module does, and a plain ELU 6."""
    assert cost(aten.elu.default, (X,), (X,)) == Cost(flops=6 * 24, dmas=49)
    assert cost(aten.elu.default, (X,), (X,), args=(X, 1.67, 1.05, 1.0)) == Cost(flops=7 * 24, dmas=49)
    assert cost(aten.elu.default, (X,), (X,), args=(X, 2.0, 1.0, 0.5)) == Cost(flops=7 * 24, dmas=49)
    scripted = crawl_module(torch.jit.script(nn.Sequential(nn.SELU(), nn.CELU(2.0))), (2, 3), batch_size=None)
    eager = crawl_module(nn.Sequential(nn.SELU(), nn.CELU(2.0)), (2, 3), batch_size=None)
    assert scripted.totals.flops == eager.totals.flops == 2 * 7 * 6


@pytest.mark.parametrize(("hard", "flops", "dmas"), [(False, 9 * 24 - 6, 72), (True, 9 * 24 - 6 + 72 - 3, 120)])
def test_gumbel_softmax_counts_its_noise_and_softmax(hard: bool, flops: int, dmas: int) -> None:
    """3 rows of 8 logits: the noise's log and negation, the addition and the division by τ (4·24), the softmax
    (5·24 − 2·3); ``hard`` the rows' maxima (24 − 3) and the straight-through sum (2·24). Analysed from shapes: the
    global generator is left as found (a real call draws from it)."""
    logits = torch.randn(3, 8)
    with torch.random.fork_rng():
        assert function_cost(F.gumbel_softmax, logits, tau=0.5, hard=hard) == Cost(flops=flops, dmas=dmas)

    class Discrete(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.logits = nn.Linear(4, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.gumbel_softmax(self.logits(x), tau=0.5, hard=hard)

    model = Discrete()
    before = torch.get_rng_state()
    report = crawl_module(model, (4,), batch_size=3)
    assert torch.equal(before, torch.get_rng_state())
    assert report.totals.complete
    assert report.row("gumbel_softmax").flops == flops
