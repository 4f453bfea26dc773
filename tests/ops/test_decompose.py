"""Factorisations on hand-worked sizes: LU with partial pivoting (``L(n)``), its determinant, inverse and solve,
Cholesky; batches of matrices; the leading terms of Golub and Van Loan (``2n³/3``, ``n³/3``; the inverse ``8n³/3``
as torch computes it)."""

from __future__ import annotations

import pytest
import torch

from tests.ops.helpers import function_cost, method_cost
from torchscan import crawl_module
from torchscan.ops.decompose import lu_flops
from torchscan.records import Cost


def _spd(*shape: int) -> torch.Tensor:
    """Symmetric positive definite matrices (a Cholesky factor exists)."""
    a = torch.randn(*shape, dtype=torch.float64)
    return a @ a.mT + shape[-1] * torch.eye(shape[-1], dtype=torch.float64)


def test_lu_of_a_three_by_three_matrix_by_hand() -> None:
    """Step 1: 2 comparisons, 2 divisions, 4 multiply-adds (12 FLOPs); step 2: 1, 1 and 1 (4): 16 FLOPs, 5 MACs."""
    assert lu_flops(3) == (16, 5)
    assert lu_flops(1) == (0, 0)


@pytest.mark.parametrize(
    ("function", "extra"),
    [(torch.det, 3), (torch.linalg.det, 3), (torch.slogdet, 9), (torch.linalg.slogdet, 9), (torch.logdet, 9)],
)
def test_determinants_are_an_lu_and_the_diagonal(function: object, extra: int) -> None:
    """A batch of 4 matrices of 3×3: ``4·(16 + c·3)`` FLOPs (the diagonal's product and sign, ``c = 1``; its logs,
    sum and signs, ``c = 3``), ``4·5`` MACs; 36 read, the results written."""
    x = _spd(4, 3, 3)
    outputs = 8 if function in (torch.slogdet, torch.linalg.slogdet) else 4
    assert function_cost(function, x) == Cost(flops=4 * (16 + extra), macs=20, dmas=36 + outputs)


def test_inverse_and_solve_are_an_lu_and_its_substitutions() -> None:
    """3×3: the LU (16, 5) and a solve per right-hand side (2·9 − 3 = 15 FLOPs, 6 MACs): the inverse's 3 columns
    of the identity (16 + 45, 5 + 18), ``linalg.solve`` with 2 columns (16 + 30, 5 + 12) or a vector (16 + 15)."""
    a = _spd(3, 3)
    assert function_cost(torch.inverse, a) == function_cost(torch.linalg.inv, a) == Cost(61, 23, 18)
    assert method_cost(torch.Tensor.inverse, a) == Cost(61, 23, 18)
    assert function_cost(torch.linalg.solve, a, torch.randn(3, 2, dtype=torch.float64)) == Cost(46, 17, 9 + 6 + 6)
    assert function_cost(torch.linalg.solve, a, torch.randn(3, dtype=torch.float64)) == Cost(31, 11, 9 + 3 + 3)


def test_cholesky_column_by_column() -> None:
    """3×3: column 1, 3 elements of 1 FLOP (a root, two divisions); column 2, 2 of 3; column 3, 1 of 5: 14 FLOPs,
    0 + 2 + 2 = 4 MACs; a batch of 2 twice that."""
    a = _spd(2, 3, 3)
    assert function_cost(torch.linalg.cholesky, a) == Cost(28, 8, 18 + 18)


@pytest.mark.parametrize("n", [64, 256])
def test_the_leading_terms_are_golub_and_van_loan_s(n: int) -> None:
    """Large matrices: the LU's FLOPs over ``2n³/3``, Cholesky's over ``n³/3`` and the inverse's over ``8n³/3`` (torch
    solves with the identity) tend to 1 (within 5% at 64, 1.5% at 256)."""
    a = _spd(n, n)
    tolerance = 0.05 if n == 64 else 0.015
    assert abs(lu_flops(n)[0] / (2 * n**3 / 3) - 1) < tolerance
    assert abs(function_cost(torch.linalg.inv, a).flops / (8 * n**3 / 3) - 1) < tolerance
    assert abs(function_cost(torch.linalg.cholesky, a).flops / (n**3 / 3) - 1) < tolerance


class _Flow(torch.nn.Module):
    """A normalising flow's log-determinant term, as such layers compute it."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.eye(4) + 0.1 * torch.randn(4, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x @ self.weight, torch.linalg.slogdet(self.weight)[1]


def test_a_model_with_a_log_determinant_is_complete() -> None:
    report = crawl_module(_Flow(), (4,), batch_size=8)
    assert report.totals.complete, report.diagnostics
