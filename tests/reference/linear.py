"""Linear layers and matrix products: one dot product per output element."""

from __future__ import annotations

import torch

from tests.reference.counting import Counted, Sink, Source, Tally, dot, indices

__all__ = ["linear", "matmul"]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Counted:
    """``y[.., o] = Σ_i x[.., i]·w[o, i] (+ b[o])``: a dot product of length ``in_features`` per output."""
    tally = Tally()
    source, weights = Source("input", x, tally), Source("weight", weight, tally)
    biases = Source("bias", bias, tally) if bias is not None else None
    lead, features = tuple(x.shape[:-1]), x.shape[-1]
    out = Sink("output", (*lead, weight.shape[0]), tally)
    for row in indices(lead):
        for o in range(weight.shape[0]):
            acc = dot((source[(*row, i)], weights[(o, i)]) for i in range(features))
            out[(*row, o)] = acc + biases[(o,)] if biases is not None else acc
    return Counted(out.tensor(), tally)


def _broadcast_index(index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The element of a tensor of ``shape`` (right-aligned, size-1 dims broadcast) at ``index``."""
    index = index[len(index) - len(shape) :] if shape else ()
    return tuple(0 if size == 1 else i for i, size in zip(index, shape, strict=True))


def matmul(a: torch.Tensor, b: torch.Tensor) -> Counted:
    """``torch.matmul`` semantics (1-D operands promoted and the added dim removed, batch dims
    broadcast): ``y[.., m, n] = Σ_k a[.., m, k]·b[.., k, n]``."""
    tally = Tally()
    left, right = Source("a", a, tally), Source("b", b, tally)
    a_shape = (1, *a.shape) if a.ndim == 1 else tuple(a.shape)
    b_shape = (*b.shape, 1) if b.ndim == 1 else tuple(b.shape)
    batch = tuple(torch.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    m, depth, n = a_shape[-2], a_shape[-1], b_shape[-1]
    shape = (*batch, *((m,) if a.ndim > 1 else ()), *((n,) if b.ndim > 1 else ()))
    out = Sink("output", shape, tally)
    for lead in indices(batch):
        a_lead, b_lead = _broadcast_index(lead, a_shape[:-2]), _broadcast_index(lead, b_shape[:-2])
        for i, j in indices((m, n)):
            a_rows = ((*a_lead, i, k) for k in range(depth))
            b_cols = ((*b_lead, k, j) for k in range(depth))
            acc = dot(
                (left[at[1:] if a.ndim == 1 else at], right[bt[:-1] if b.ndim == 1 else bt])
                for at, bt in zip(a_rows, b_cols, strict=True)
            )
            out[(*lead, *((i,) if a.ndim > 1 else ()), *((j,) if b.ndim > 1 else ()))] = acc
    return Counted(out.tensor(), tally)


def solve_triangular(a: torch.Tensor, b: torch.Tensor, upper: bool, left: bool, unitriangular: bool) -> Counted:
    """``torch.linalg.solve_triangular`` by substitution (batch dims broadcast): for ``left``, column by column of
    ``X`` in ``A X = B``, ``xᵢ = (bᵢ − Σ aᵢₚ·xₚ) / aᵢᵢ`` over the solved ``p`` (``p < i`` for lower, ``p > i``
    for upper); else row by row of ``X`` in ``X A = B`` (the transposed system)."""
    tally = Tally()
    coefficients, rhs = Source("A", a, tally), Source("B", b, tally)
    n = a.shape[-1]
    batch = tuple(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    others = b.shape[-1] if left else b.shape[-2]
    out = Sink("output", (*batch, *((n, others) if left else (others, n))), tally)
    order = range(n - 1, -1, -1) if upper == left else range(n)  # X A = B: Aᵀ's triangle is the other one
    for lead in indices(batch):
        a_lead, b_lead = _broadcast_index(lead, tuple(a.shape[:-2])), _broadcast_index(lead, tuple(b.shape[:-2]))
        for j in range(others):
            solved: dict[int, object] = {}
            for i in order:
                row = [(*a_lead, i, p) if left else (*a_lead, p, i) for p in range(n)]  # A's entries eq. i reads
                known = (*b_lead, i, j) if left else (*b_lead, j, i)
                value = rhs[known]
                if solved:
                    value = value - dot((coefficients[row[p]], x) for p, x in solved.items())
                if not unitriangular:
                    value = value / coefficients[row[i]]
                solved[i] = value
                out[(*lead, i, j) if left else (*lead, j, i)] = value
    return Counted(out.tensor(), tally)
