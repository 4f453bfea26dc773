"""Bilinear layers, distances and cosine similarity, each computed the way torch computes it.

Inputs are :class:`~tests.reference.counting.Source` s (every read counted); intermediate values (a bilinear's
partial products, the normalised operands of a cosine similarity, the squared norms of ``cdist``'s matrix-product
form) are plain lists of :class:`~tests.reference.counting.Num`, neither read nor written as tensors.
"""

from __future__ import annotations

import itertools

import torch

from tests.reference.counting import Counted, Num, Sink, Source, Tally, absolute, dot, indices, maximum, power, sqrt

__all__ = ["bilinear", "cdist", "cosine_similarity", "pairwise_distance", "pdist"]


def bilinear(x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> Counted:
    """``y[b, k] = Σ_j (Σ_i x1[b, i]·W[k, i, j])·x2[b, j] + bias[k]``: ``x1`` with ``W`` first (``k1`` MACs for
    each ``j``), then with ``x2`` (``k2`` MACs), as ``aten._trilinear`` orders it."""
    tally = Tally()
    a, b, w = Source("x1", x1, tally), Source("x2", x2, tally), Source("weight", weight, tally)
    offset = Source("bias", bias, tally) if bias is not None else None
    out_features, k1, k2 = weight.shape
    out = Sink("output", (x1.shape[0], out_features), tally)
    for row, k in indices(out.shape):
        partial = [dot((a[(row, i)], w[(k, i, j)]) for i in range(k1)) for j in range(k2)]
        value = dot((partial[j], b[(row, j)]) for j in range(k2))
        out[(row, k)] = value + offset[(k,)] if offset is not None else value
    return Counted(out.tensor(), tally)


def _magnitude(difference: Num, p: float) -> Num:
    """``|d|^p`` as the norm convention counts it, one operation: ``d·d`` for ``p = 2``, ``|d|`` for ``p = 1``."""
    if p == 2:
        return difference * difference
    if p == 1:
        return absolute(difference)
    raise ValueError("the reference takes p = 1 or 2")


def _norm(terms: list[Num], p: float) -> Num:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return power(total, 1 / p)


def pairwise_distance(x1: torch.Tensor, x2: torch.Tensor, p: float = 2.0, eps: float = 1e-6) -> Counted:
    """``‖x1 − x2 + ε‖_p`` over the last dim of two ``(B, D)`` tensors: a subtraction and an addition per pair
    of elements, ``|·|^p``, the sum and a root."""
    tally = Tally()
    a, b = Source("x1", x1, tally), Source("x2", x2, tally)
    out = Sink("output", (x1.shape[0],), tally)
    for (row,) in indices(out.shape):
        terms = [_magnitude(a[(row, i)] - b[(row, i)] + eps, p) for i in range(x1.shape[1])]
        out[(row,)] = _norm(terms, p)
    return Counted(out.tensor(), tally)


def cosine_similarity(x1: torch.Tensor, x2: torch.Tensor, eps: float = 1e-8) -> Counted:
    """Along the last dim, broadcasting the leading dims, as torch computes it: each operand's vectors divided by
    ``√max(Σx², ε²)`` (squares, sums, a clamp, a root, a division per element), then the products summed."""
    tally = Tally()
    length = x1.shape[-1]

    def normalised(source: Source, shape: tuple[int, ...]) -> dict[tuple[int, ...], list[Num]]:
        vectors = {}
        for lead in indices(shape[:-1]):
            values = [source[(*lead, i)] for i in range(length)]
            squares = [value * value for value in values]
            total = squares[0]
            for square in squares[1:]:
                total = total + square
            norm = sqrt(maximum(total, eps * eps))
            vectors[lead] = [value / norm for value in values]
        return vectors

    first = normalised(Source("x1", x1, tally), tuple(x1.shape))
    second = normalised(Source("x2", x2, tally), tuple(x2.shape))
    shape = tuple(torch.broadcast_shapes(x1.shape, x2.shape))
    out = Sink("output", shape[:-1], tally)
    for lead in indices(shape[:-1]):
        u = first[tuple(i if n > 1 else 0 for i, n in zip(lead, x1.shape[:-1], strict=True))]
        v = second[tuple(i if n > 1 else 0 for i, n in zip(lead, x2.shape[:-1], strict=True))]
        out[lead] = dot(zip(u, v, strict=True))
    return Counted(out.tensor(), tally)


def pdist(x: torch.Tensor, p: float = 2.0) -> Counted:
    """The ``p``-norm distance of each pair ``i < j`` of the rows of a 2-D tensor, in torch's order."""
    tally = Tally()
    source = Source("input", x, tally)
    rows, length = x.shape
    pairs = list(itertools.combinations(range(rows), 2))
    out = Sink("output", (len(pairs),), tally)
    for position, (i, j) in enumerate(pairs):
        out[(position,)] = _norm([_magnitude(source[(i, k)] - source[(j, k)], p) for k in range(length)], p)
    return Counted(out.tensor(), tally)


def cdist(x1: torch.Tensor, x2: torch.Tensor, p: float = 2.0, products: bool = False) -> Counted:
    """Every row of ``x1`` (``P × M``) against every row of ``x2`` (``R × M``). Directly: the ``p``-norm of the
    differences. By ``products`` (torch's Euclidean form): ``[−2·a, ‖a‖², 1]·[b, 1, ‖b‖²]``, a dot product of
    ``M + 2`` terms per pair, clamped at 0, its root."""
    tally = Tally()
    a, b = Source("x1", x1, tally), Source("x2", x2, tally)
    (left, length), (right, _) = x1.shape, x2.shape
    out = Sink("output", (left, right), tally)
    if not products:
        for i, j in indices((left, right)):
            out[(i, j)] = _norm([_magnitude(a[(i, k)] - b[(j, k)], p) for k in range(length)], p)
        return Counted(out.tensor(), tally)

    def padded(source: Source, rows: int, scale: float | None) -> list[list[Num]]:
        padded_rows = []
        for row in range(rows):
            values = [source[(row, k)] for k in range(length)]
            squares = [value * value for value in values]
            norm = squares[0]
            for square in squares[1:]:
                norm = norm + square
            one = Num(1.0, tally)
            padded_rows.append([v * scale for v in values] + [norm, one] if scale else [*values, one, norm])
        return padded_rows

    lefts, rights = padded(a, left, -2.0), padded(b, right, None)
    for i, j in indices((left, right)):
        out[(i, j)] = sqrt(maximum(dot(zip(lefts[i], rights[j], strict=True)), 0.0))
    return Counted(out.tensor(), tally)
