"""Matrix factorisations and what is built on them: determinants, inverses, linear solves, Cholesky.

Each is counted as the textbook algorithm LAPACK runs (Golub and Van Loan, *Matrix Computations*, 4th ed., §3.2
and §4.2), exactly rather than by its leading term, per ``n × n`` matrix of a batch of ``B``:

- LU with partial pivoting: at step ``k`` (``n − k`` rows below the pivot) ``n − k`` comparisons to choose the
  pivot, ``n − k`` divisions for the multipliers, ``(n − k)²`` multiply-adds for the update:
  ``L(n) = n(n − 1) + 2·Σ (n − k)² = n(n − 1) + n(n − 1)(2n − 1)/3`` FLOPs (``2n³/3`` leading),
  ``MACs = n(n − 1)(2n − 1)/6``;
- a solve with the factors, per right-hand side: forward substitution with the unit lower factor (``n(n − 1)/2``
  multiply-adds), back substitution with the upper one (as many, and ``n`` divisions): ``2n² − n`` FLOPs,
  ``n(n − 1)`` MACs;
- Cholesky: column ``j`` (``j − 1`` columns before it) ``j − 1`` multiply-adds and a root for the diagonal, then
  ``j − 1`` multiply-adds and a division for each of the ``n − j`` elements below:
  ``Σ_j (n − j + 1)·(2(j − 1) + 1)`` FLOPs (``n³/3`` leading), ``MACs = Σ_j (n − j + 1)(j − 1)``.

``DMAs = N_in + N_out`` (each matrix read once, each result written once). Eigen- and singular-value
decompositions are iterative (their work depends on the values) and are not counted here.
"""

from __future__ import annotations

import torch

from torchscan.ops.common import output_elements
from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall, TensorSpec

TABLE = FormulaTable("decompose")

T = torch.Tensor


def _matrices(spec: TensorSpec) -> tuple[int, int]:
    """``(B, n)``: the batch of square matrices of the last two dims."""
    n = spec.shape[-1] if spec.ndim >= 2 else 1
    return (spec.numel // (n * n) if n else 0), n


def lu_flops(n: int) -> tuple[int, int]:
    """``(FLOPs, MACs)`` of an LU factorisation with partial pivoting of one ``n × n`` matrix (module docstring)."""
    macs = n * (n - 1) * (2 * n - 1) // 6
    return n * (n - 1) + 2 * macs, macs


@TABLE.register(torch.det, T.det, torch.linalg.det, extra=1)
@TABLE.register(torch.slogdet, T.slogdet, torch.linalg.slogdet, extra=3)
@TABLE.register(torch.logdet, T.logdet, extra=3)
def determinant(call: OpCall, extra: int) -> Cost:
    """det / slogdet / logdet, from an LU factorisation: ``L(n)``, then the diagonal's product with the pivots' sign
    (``n`` for ``det``), or its magnitudes' logs summed and its signs multiplied (``3n`` for ``slogdet`` and
    ``logdet``): ``FLOPs = B·(L(n) + c·n)``, ``MACs = B·n(n − 1)(2n − 1)/6``, ``DMAs = N_in + N_out``."""
    batch, n = _matrices(call.input)
    flops, macs = lu_flops(n)
    return Cost(flops=batch * (flops + extra * n), macs=batch * macs, dmas=call.input.numel + output_elements(call))


@TABLE.register(torch.inverse, T.inverse, torch.linalg.inv)
def inverse(call: OpCall) -> Cost:
    """inverse as torch computes it, ``linalg.solve(A, I)``: an LU factorisation then a solve for each of the ``n``
    columns of the identity: ``FLOPs = B·(L(n) + n·(2n² − n))`` (``8n³/3`` leading; LAPACK's ``getri``, which
    inverts the factors in place, takes ``2n³``), ``MACs = B·(n(n − 1)(2n − 1)/6 + n²(n − 1))``,
    ``DMAs = N_in + N_out``."""
    batch, n = _matrices(call.input)
    flops, macs = lu_flops(n)
    return Cost(
        flops=batch * (flops + n * (2 * n * n - n)),
        macs=batch * (macs + n * n * (n - 1)),
        dmas=call.input.numel + output_elements(call),
    )


@TABLE.register(torch.linalg.solve)
def solve(call: OpCall) -> Cost:
    """``linalg.solve(A, B)``, an LU factorisation of each ``A`` then a solve per right-hand side (``k`` columns of
    ``B``, or one vector): ``FLOPs = B·(L(n) + k·(2n² − n))``, ``MACs = B·(n(n − 1)(2n − 1)/6 + k·n(n − 1))``,
    ``DMAs = N_A + N_B + N_out``."""
    a, b = call.inputs[0], call.inputs[1]
    batch, n = _matrices(a)
    columns = call.output.numel // (batch * n) if batch and n else 0
    flops, macs = lu_flops(n)
    return Cost(
        flops=batch * (flops + columns * (2 * n * n - n)),
        macs=batch * (macs + columns * n * (n - 1)),
        dmas=a.numel + b.numel + call.output.numel,
    )


@TABLE.register(torch.linalg.cholesky)
def cholesky(call: OpCall) -> Cost:
    """Cholesky, ``A = L·Lᵀ`` column by column (module docstring): ``FLOPs = B·Σ_j (n − j + 1)(2j − 1)``,
    ``MACs = B·Σ_j (n − j + 1)(j − 1)``, ``DMAs = N_in + N_out``."""
    batch, n = _matrices(call.input)
    flops = sum((n - j + 1) * (2 * j - 1) for j in range(1, n + 1))
    macs = sum((n - j + 1) * (j - 1) for j in range(1, n + 1))
    return Cost(flops=batch * flops, macs=batch * macs, dmas=call.input.numel + output_elements(call))
