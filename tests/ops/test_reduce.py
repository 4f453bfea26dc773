"""Reductions, scans and selections on literal shapes."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from tests.ops.helpers import cost, function_cost, method_cost, spec
from torchscan import crawl_module
from torchscan.records import Cost

T = torch.Tensor
X = spec(4, 6)


@pytest.mark.parametrize(
    ("target", "outputs", "attrs", "expected"),
    [
        (torch.sum, (spec(4),), {"dim": 1}, Cost(flops=20, dmas=28)),
        (torch.mean, (spec(4),), {"dim": 1}, Cost(flops=24, dmas=28)),
        (torch.var, (spec(4),), {"dim": 1}, Cost(flops=96, dmas=28)),
        (torch.std, (spec(4),), {"dim": 1}, Cost(flops=100, dmas=28)),
        (torch.var_mean, (spec(4), spec(4)), {"dim": 1}, Cost(flops=96, dmas=32)),
        (torch.amax, (spec(6),), {"dim": 0}, Cost(flops=18, dmas=30)),
        (torch.max, (spec(4), spec(4, dtype=torch.int64)), {"dim": 1}, Cost(flops=20, dmas=32)),
        (torch.cumsum, (X,), {"dim": 1}, Cost(flops=20, dmas=48)),
        (torch.cumsum, (X,), {"dim": 0}, Cost(flops=18, dmas=48)),
        (torch.topk, (spec(4, 2), spec(4, 2)), {"k": 2, "dim": -1}, Cost(flops=24 * 2, dmas=24 + 16)),
        (torch.sort, (X, X), {"dim": -1}, Cost(flops=24 * math.ceil(math.log2(6)), dmas=72)),
        (torch.sort, (X, X), {"dim": 0}, Cost(flops=24 * 2, dmas=72)),
    ],
)
def test_reductions(target: object, outputs: tuple, attrs: dict, expected: Cost) -> None:
    assert cost(target, (X,), outputs, **attrs) == expected


def test_method_spellings() -> None:
    assert cost(T.cumsum, (X,), (X,), kind="method", args=(0,)) == Cost(flops=18, dmas=48)
    assert cost(T.sort, (X,), (X, X), kind="method", args=(0,)).flops == 48


def test_binary_max_is_elementwise() -> None:
    assert cost(torch.max, (X, X), (X,)) == Cost(flops=24, dmas=72)


class Stats(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, _ = x.topk(2, dim=-1)
        return x.var(-1) + x.std(-1) + x.sum(-1) + x.mean(-1) + x.cumsum(-1)[..., 0] + values.sort(-1)[0][..., 0]


def test_complete() -> None:
    assert crawl_module(Stats(), (3, 5)).totals.complete


def test_topk_heap_comparisons() -> None:
    # k = 1 is a running max: one comparison per element (24); 24 read, value and index written
    assert cost(torch.topk, (X,), (spec(4, 1), spec(4, 1)), k=1) == Cost(flops=24, dmas=24 + 8)
    # x.topk(3) (k by position): a heap of 3, ⌈log2 4⌉ = 2 comparisons per element
    got = cost(T.topk, (X,), (spec(4, 3), spec(4, 3)), kind="method", args=(3,))
    assert got == Cost(flops=48, dmas=24 + 24)


def test_unique_along_a_dim() -> None:
    """unique(x, dim=1) on 3 × 4: n = 4 columns, s = 3 slices: 12·⌈log2 4⌉ + 12 − 3 = 33
    comparisons; along dim 0: n = 3, s = 4: 12·2 + 12 − 4 = 32."""
    x, out = spec(3, 4), spec(3, 4)
    assert cost(torch.unique, (x,), (out,), dim=1).flops == 33
    assert cost(torch.unique, (x,), (out,), dim=-1).flops == 33
    assert cost(torch.unique, (x,), (out,), dim=0).flops == 32


@pytest.mark.parametrize("target", [torch.norm, torch.linalg.vector_norm, T.norm])
def test_p_norm_over_a_dim(target: object) -> None:
    """The 2-norm of each of 4 rows of 6: 24 powers, 4 × 5 adds, 4 roots = 48 FLOPs; 24 read, 4 written."""
    kind = "method" if target is T.norm else "function"
    assert cost(target, (X,), (spec(4),), kind=kind, dim=1) == Cost(flops=48, dmas=28)


def test_logsumexp() -> None:
    """Over dim 1 of (2, 5): max 2·4 comparisons, subtract 10, exp 10, sum 2·4 adds, log 2 and add
    back 2 = 40 FLOPs; reads 10, writes 2."""
    for target, kind in ((torch.logsumexp, "function"), (T.logsumexp, "method")):
        assert cost(target, (spec(2, 5),), (spec(2),), kind=kind, dim=1) == Cost(flops=40, dmas=12)


def test_sort_without_a_dim_sorts_the_last() -> None:
    """``x.sort()``, ``torch.sort(x)`` and ``torch.argsort(x)`` on 3×8 (24 elements) sort rows of 8:
    ⌈log2 8⌉ = 3 comparisons per element, 72 FLOPs; DMAs 24 read + 48 written (values and indices) or
    24 (indices only)."""
    x = torch.randn(3, 8)
    assert method_cost(torch.Tensor.sort, x) == Cost(flops=72, dmas=72)
    assert function_cost(torch.sort, x) == Cost(flops=72, dmas=72)
    assert function_cost(torch.argsort, x) == Cost(flops=72, dmas=48)


def test_cumulative_ops_of_a_zero_dim_tensor() -> None:
    """A 0-d tensor is one row of one element: nothing to add or multiply, 1 read and 1 write."""
    for function in (torch.cumsum, torch.cumprod):
        assert function_cost(function, torch.tensor(2.0), 0) == Cost(dmas=2)


def test_sort_of_a_zero_dim_tensor() -> None:
    """One element: no comparison; sort writes a value and an index (1 + 2 DMAs), argsort an index."""
    assert function_cost(torch.sort, torch.tensor(3.0)) == Cost(dmas=3)
    assert function_cost(torch.argsort, torch.tensor(3.0)) == Cost(dmas=2)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda x: function_cost(torch.nonzero, x), Cost(flops=24, dmas=24 + 5 * 2)),
        (lambda x: function_cost(torch.nonzero, x, as_tuple=True), Cost(flops=24, dmas=24 + 5 * 2)),
        (lambda x: function_cost(torch.argwhere, x), Cost(flops=24, dmas=24 + 5 * 2)),
        (lambda x: method_cost(T.nonzero, x), Cost(flops=24, dmas=24 + 5 * 2)),
        (lambda x: function_cost(torch.ops.aten.nonzero.default, x), Cost(flops=24, dmas=24 + 5 * 2)),
    ],
)
def test_nonzero_compares_each_element_and_writes_the_indices_found(call: Any, expected: Cost) -> None:
    """5 nonzero elements of 4×6: 24 comparisons, 24 reads and 5 index pairs written (K depends on the values: a
    real forward's count)."""
    x = torch.zeros(4, 6)
    x[0, 1] = x[1, 2] = x[2, 3] = x[3, 4] = x[3, 5] = 1.0
    assert call(x) == expected


def test_a_forward_selecting_by_nonzero_is_counted_in_full_by_its_real_forward() -> None:
    """``nonzero``'s size depends on the values: the capture falls back to one real forward (on a private copy),
    whose report is complete (MoE routers: ``torch.greater(counts, 0).nonzero()``)."""

    class Routed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hit = torch.greater(x.sum(dim=-1), 0).nonzero()
            return x[hit[:, 0]] * 2

    report = crawl_module(Routed(), (6,), batch_size=4)
    assert report.context.capture == "real-forward" and report.totals.complete
    assert not [d for d in report.diagnostics if d.code == "unknown-op"]


def test_trace_dist_and_count_nonzero() -> None:
    """``trace`` of a 3×5 matrix: its 3 diagonal elements summed (2 adds); ``dist`` of two 2×4 tensors: 8
    subtractions and the norm (16); ``count_nonzero`` over dim 1 of a 2×4 tensor: 8 comparisons, 6 adds."""
    assert function_cost(torch.trace, torch.randn(3, 5)) == Cost(flops=2, dmas=4)
    assert function_cost(torch.dist, torch.randn(2, 4), torch.randn(2, 4)) == Cost(flops=24, dmas=17)
    assert function_cost(torch.count_nonzero, torch.randn(2, 4), 1) == Cost(flops=14, dmas=8 + 2)


def test_selections_sorts_and_running_extremes() -> None:
    """On 3 rows of 8: a median or k-th value by quickselect (2 comparisons an element expected: 48), the mode by a
    sort and a scan (24·3 + 24), a quantile by a sort and a lerp per output (72 + 9), the running maximum (21
    comparisons, values and indices written), the running log-sum-exp (7 per element after each row's first)."""
    x = torch.randn(3, 8)
    assert function_cost(torch.median, x, -1) == function_cost(torch.kthvalue, x, 2, -1) == Cost(48, 0, 24 + 6)
    assert function_cost(torch.median, x) == Cost(flops=48, dmas=25)
    assert function_cost(torch.mode, x, -1) == Cost(flops=96, dmas=30)
    assert function_cost(torch.quantile, x, 0.5, -1) == Cost(flops=81, dmas=27)
    assert function_cost(torch.quantile, x, torch.tensor([0.25, 0.75]), -1) == Cost(flops=72 + 18, dmas=24 + 2 + 6)
    assert function_cost(torch.cummax, x, -1) == function_cost(torch.cummin, x, 1) == Cost(flops=21, dmas=72)
    assert function_cost(torch.logcumsumexp, x, -1) == Cost(flops=147, dmas=48)


def test_truth_checks_count_as_all_and_any() -> None:
    """``_is_all_true`` / ``_is_any_true`` of 12 booleans (torch.distributions' validation runs them): 11
    and-s / or-s, 12 reads, 1 write, as ``all`` / ``any`` of the same tensor."""
    x = torch.rand(3, 4) > 0.5
    for check, reduction in ((torch._is_all_true, torch.all), (torch._is_any_true, torch.any)):
        assert function_cost(check, x) == function_cost(reduction, x) == Cost(flops=11, dmas=13)
    assert method_cost(torch.Tensor._is_all_true, x) == Cost(flops=11, dmas=13)


@pytest.mark.parametrize(
    ("order", "flops"),
    [("fro", 2 * 24), (1, 2 * 24 - 2), (-1, 2 * 24 - 2), (math.inf, 2 * 24 - 2), (-math.inf, 2 * 24 - 2)],
)
def test_matrix_norms(order: Any, flops: int) -> None:
    """Two 3 × 4 matrices: Frobenius, the 2-norm of the 24 elements (``|x|²`` and the sum, 48 FLOPs; as
    ``vector_norm``); ±1 / ±inf: 24 absolute values, the column (row) sums 24 − 8 (− 6), their extremum 2·3 (2·2):
    46 FLOPs; 24 reads and 2 writes."""
    x = torch.randn(2, 3, 4)
    assert function_cost(torch.linalg.matrix_norm, x, ord=order) == Cost(flops=flops, dmas=26)
    if order == "fro":
        assert function_cost(torch.linalg.matrix_norm, x) == function_cost(torch.linalg.vector_norm, x, dim=(-2, -1))


def test_a_nuclear_norm_is_not_counted() -> None:
    """Singular values: the formula refuses (the op is reported unknown, never a silent 0)."""
    report = crawl_module(_Model(lambda x: torch.linalg.matrix_norm(x, ord="nuc")), (3, 4))
    assert not report.totals.complete
    assert [note.code for note in report.diagnostics] == ["formula-error"]


class _Model(torch.nn.Module):
    def __init__(self, function: Any) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


@pytest.mark.parametrize("right", [False, True])
def test_binary_searches(right: bool) -> None:
    """5 values in 7 sorted boundaries (one row): ⌈log2 8⌉ = 3 comparisons each, 15 FLOPs; 15 boundary reads, 5
    values read, 5 indices written: 25 DMAs. ``bucketize`` is ``searchsorted`` with its operands swapped; a row of
    sorted values per row of queries (2 × 7 against 2 × 5) takes the row's length, not all of them."""
    boundaries, values = torch.arange(7.0), torch.rand(5) * 7
    expected = Cost(flops=15, dmas=25)
    assert function_cost(torch.searchsorted, boundaries, values, right=right) == expected
    assert function_cost(torch.bucketize, values, boundaries, right=right) == expected
    rows = function_cost(torch.searchsorted, torch.arange(14.0).view(2, 7), torch.rand(2, 5) * 14, right=right)
    assert rows == Cost(flops=30, dmas=50)
