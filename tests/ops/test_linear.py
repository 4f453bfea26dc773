"""Linear layers and matrix products against the counting reference (``tests/reference/linear.py``).

Conventions (``torchscan/ops/__init__.py``): a dot product of length ``k`` is ``k`` MACs and
``2k − 1`` FLOPs, a bias add one more FLOP — the reference's literal counts. Departure, checked
exactly: DMAs count each operand element **once** (``N_in + P + N_out``, ``N_a + N_b + N_out``),
where the reference's dot products read each input element once per output column
(``Tally.reads``): a blocked kernel keeps them in cache.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, crawled_cost, function_cost, method_cost, module_cost, randn, torch_flops
from tests.reference import linear as reference
from tests.reference.counting import Counted
from torchscan import crawl_module
from torchscan.records import Cost


def expected(counted: Counted, *operands: str) -> Cost:
    tally = counted.tally
    return Cost(flops=tally.flops, macs=tally.macs, dmas=tally.dmas(once=operands))


@st.composite
def linears(draw: st.DrawFn) -> tuple[nn.Linear, torch.Tensor]:
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    in_features, out_features = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    module = nn.Linear(in_features, out_features, bias=draw(st.booleans()), dtype=torch.float64)
    seed = draw(st.integers(0, 2**31))
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(randn(seed + 1, *parameter.shape))
    return module, randn(seed, *lead, in_features)


@given(linears())
def test_linear_counts_as_the_reference(case: tuple[nn.Linear, torch.Tensor]) -> None:
    module, x = case
    counted = reference.linear(x, module.weight, module.bias)
    literal_reads = x.numel() * module.out_features  # every input element once per output column
    assert counted.tally.reads["input"] == literal_reads
    with torch.no_grad():
        assert_same(counted.output, module(x))
        assert module_cost(module, x) == expected(counted, "input", "weight", "bias")
        assert function_cost(F.linear, x, module.weight, module.bias) == expected(counted, "input", "weight", "bias")


@given(linears())
def test_linear_end_to_end(case: tuple[nn.Linear, torch.Tensor]) -> None:
    module, x = case
    assert crawled_cost(module, x) == expected(
        reference.linear(x, module.weight, module.bias), "input", "weight", "bias"
    )


@st.composite
def products(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Operand shapes of a matmul: 1-D or more, broadcast batch dims."""
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = draw(st.lists(st.integers(1, 3), max_size=2))
    a_batch = [size if draw(st.booleans()) else 1 for size in batch][draw(st.integers(0, len(batch))) :]
    b_batch = [size if draw(st.booleans()) else 1 for size in batch][draw(st.integers(0, len(batch))) :]
    a = (k,) if draw(st.booleans()) else (*a_batch, m, k)
    b = (k,) if draw(st.booleans()) else (*b_batch, k, n)
    return a, b


@given(products(), st.integers(0, 2**31))
def test_matmul_counts_as_the_reference(shapes: tuple, seed: int) -> None:
    a, b = randn(seed, *shapes[0]), randn(seed + 1, *shapes[1])
    counted = reference.matmul(a, b)
    assert_same(counted.output, torch.matmul(a, b))
    assert function_cost(torch.matmul, a, b) == expected(counted, "a", "b")
    assert function_cost(operator.matmul, a, b) == expected(counted, "a", "b")
    assert method_cost(torch.Tensor.matmul, a, b) == expected(counted, "a", "b")


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31))
def test_bmm_and_mm_count_as_the_reference(batch: int, m: int, k: int, n: int, seed: int) -> None:
    a, b = randn(seed, batch, m, k), randn(seed + 1, batch, k, n)
    counted = reference.matmul(a, b)
    assert_same(counted.output, torch.bmm(a, b))
    assert function_cost(torch.bmm, a, b) == expected(counted, "a", "b")
    single = reference.matmul(a[0], b[0])
    assert function_cost(torch.mm, a[0], b[0]) == expected(single, "a", "b")


def test_a_hand_worked_linear() -> None:
    """Linear 3 → 2 with bias on 2 rows: 4 outputs, each 3 multiplies + 2 adds + the bias = 6 FLOPs
    (24), 3 MACs (12); DMAs: 6 inputs + 6 weights + 2 biases + 4 writes = 18."""
    module = nn.Linear(3, 2, dtype=torch.float64)
    x = randn(0, 2, 3)
    with torch.no_grad():
        assert module_cost(module, x) == Cost(flops=24, macs=12, dmas=18)
        assert expected(reference.linear(x, module.weight, module.bias), "input", "weight", "bias") == Cost(24, 12, 18)


@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**31))
def test_matrix_vector_products_count_as_the_reference(rows: int, depth: int, seed: int) -> None:
    """mv / dot / addmv (a non-square matrix: the contracted length is the vector's, ``k``, not the
    matrix's row count): the reference's matmul of a matrix and a vector, the added term of addmv
    one more add and read per output."""
    a, v, bias = randn(seed, rows, depth), randn(seed + 1, depth), randn(seed + 2, rows)
    counted = reference.matmul(a, v)
    assert_same(counted.output, torch.mv(a, v))
    want = expected(counted, "a", "b")
    assert function_cost(torch.mv, a, v) == want
    assert method_cost(torch.Tensor.mv, a, v) == want
    assert function_cost(torch.addmv, bias, a, v) == want + Cost(flops=rows, dmas=rows)
    counted = reference.matmul(v, v)
    assert_same(counted.output, torch.dot(v, v))
    assert function_cost(torch.dot, v, v) == expected(counted, "a", "b")


def test_a_hand_worked_matrix_vector_product() -> None:
    """(3 × 5) @ (5,): 3 dot products of length 5, 5 MACs and 5 multiplies + 4 adds each:
    15 MACs, 27 FLOPs; 15 + 5 elements read, 3 written: 23 DMAs."""
    assert function_cost(torch.mv, randn(0, 3, 5), randn(1, 5)) == Cost(flops=27, macs=15, dmas=23)


@st.composite
def triangular_systems(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, dict[str, bool]]:
    n, others = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    batch = draw(st.lists(st.integers(1, 2), max_size=2))
    flags = {name: draw(st.booleans()) for name in ("upper", "left", "unitriangular")}
    seed = draw(st.integers(0, 2**31))
    a = randn(seed, *batch, n, n) + 4 * torch.eye(n, dtype=torch.float64)  # well conditioned
    a = a.triu() if flags["upper"] else a.tril()
    b = randn(seed + 1, *batch, *((n, others) if flags["left"] else (others, n)))
    return a, b, flags


@given(triangular_systems())
def test_triangular_solves_count_as_substitution(case: tuple[torch.Tensor, torch.Tensor, dict[str, bool]]) -> None:
    """Qwen3-Next's gated delta rule solves triangular systems: an unknown op before (its totals a lower bound)."""
    a, b, flags = case
    counted = reference.solve_triangular(a, b, **flags)
    assert_same(counted.output, torch.linalg.solve_triangular(a, b, **flags))
    assert function_cost(torch.linalg.solve_triangular, a, b, **flags) == expected(counted, "A", "B")


def test_inner_products_count_as_pytorch_s_counter_does() -> None:
    """``inner`` contracts the last dims (a dot product of ``k`` per output element): its MACs are half of what
    PyTorch's FlopCounterMode counts for it (it runs a matrix product); ``vdot`` is one dot product."""
    a, b = torch.randn(3, 5), torch.randn(4, 5)

    class Inner(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.inner(x, y)

    got = function_cost(torch.inner, a, b)
    assert got == Cost(flops=12 * 9, macs=12 * 5, dmas=15 + 20 + 12)
    assert 2 * got.macs == torch_flops(Inner(), a, b)
    assert function_cost(torch.vdot, torch.randn(6), torch.randn(6)) == Cost(flops=11, macs=6, dmas=13)
    assert function_cost(torch.inner, a, torch.tensor(2.0)) == Cost(flops=15, dmas=15 + 1 + 15)


def test_outer_style_products() -> None:
    """``kron`` of 2×3 and 4×5: 480 products; ``addr`` of a 3×4 matrix and the outer product of a 3- and a
    4-vector: 12 products and 12 adds, one scaling more per output for ``alpha ≠ 1``; ``cross`` of 5 3-vectors:
    6 products and 3 subtractions each (3 per output element)."""
    assert function_cost(torch.kron, torch.randn(2, 3), torch.randn(4, 5)) == Cost(flops=120, dmas=6 + 20 + 120)
    m, u, v = torch.randn(3, 4), torch.randn(3), torch.randn(4)
    assert function_cost(torch.addr, m, u, v) == Cost(flops=24, dmas=12 + 3 + 4 + 12)
    assert function_cost(torch.addr, m, u, v, alpha=2.0) == Cost(flops=36, dmas=31)
    assert function_cost(torch.addr, m, u, v, beta=0) == Cost(flops=12, dmas=31)
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    assert function_cost(torch.cross, a, b, dim=1) == function_cost(torch.linalg.cross, a, b) == Cost(45, 0, 45)


@given(
    batch=st.lists(st.integers(1, 3), min_size=1, max_size=2),
    features=st.integers(1, 8),
    out=st.integers(1, 8),
    bias=st.booleans(),
    dtype=st.sampled_from([torch.qint8, torch.float16]),
)
def test_dynamic_quantized_linear_counts_the_float_product_and_the_quantization(
    batch: list[int], features: int, out: int, bias: bool, dtype: torch.dtype
) -> None:
    """torch.ao's dynamically quantized ``Linear`` is traced (its kernel has no fake one: the analysis ran a real
    forward and reported the layer unknown) and counted as the float layer (``N_out·k`` MACs, the bias) plus, with an
    int8 weight, the input's quantization (7 FLOPs an element) and the sums' dequantization (3 each)."""
    layer = torch.ao.nn.quantized.dynamic.Linear(features, out, bias_=bias, dtype=dtype)
    report = crawl_module(layer, (*batch[1:], features), batch_size=batch[0])
    n_in, n_out = math.prod(batch) * features, math.prod(batch) * out
    quantized = dtype == torch.qint8
    assert report.context.capture == "torch.fx" and report.totals.complete
    assert not [d for d in report.diagnostics if d.code == "real-forward"]
    assert report.totals.macs == n_out * features
    assert report.totals.flops == n_out * (2 * features - 1 + bias) + quantized * (7 * n_in + 3 * n_out)
    assert report.totals.dmas == n_in + features * out + bias * out + n_out
    assert report.context.output_shapes == (tuple(layer(torch.randn(*batch, features)).shape),)
