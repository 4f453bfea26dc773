"""Distances and similarities between vectors: ``PairwiseDistance``, ``CosineSimilarity``, ``pdist``, ``cdist``.

``N`` is the number of element pairs compared (the broadcast operands' elements), ``R = N_out`` the vectors
compared (each of length ``M``). A ``p``-norm counts as :func:`~torchscan.ops.reduce.reduce_norm` does, whatever
``p``: ``|x|^p`` one FLOP an element, the sum, a root per vector. Inputs are read once (a kernel's one pass over
them), as a matrix product's operands are, and each output written once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.common import argument, broadcast_elements
from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall, TensorSpec

TABLE = FormulaTable("distance")

aten = torch.ops.aten


def _operands(call: OpCall) -> tuple[TensorSpec, TensorSpec]:
    if len(call.inputs) < 2:
        raise ValueError(f"{call.target} compares two tensors")
    return call.inputs[0], call.inputs[1]


@TABLE.register(nn.PairwiseDistance, F.pairwise_distance, aten.pairwise_distance.default)
def pairwise_distance(call: OpCall) -> Cost:
    """PairwiseDistance ``‖x1 − x2 + ε‖_p`` over the last dim: a subtraction and the ``ε`` added per pair of
    elements, then the norm (``2·N``): ``FLOPs = 4·N``, ``MACs = 0``, ``DMAs = N_x1 + N_x2 + N_out``."""
    x1, x2 = _operands(call)
    return Cost(flops=4 * broadcast_elements(x1, x2), dmas=x1.numel + x2.numel + call.output.numel)


def _rows(spec: TensorSpec, dim: int, ndim: int) -> int:
    """Vectors of ``spec`` along ``dim`` of the broadcast shape (``ndim`` dims): an operand without that dim, or of
    size 1 there, is one element per vector."""
    own = dim - (ndim - spec.ndim)
    length = spec.shape[own] if 0 <= own < spec.ndim else 1
    return spec.numel // length if length else 0


@TABLE.register(nn.CosineSimilarity, F.cosine_similarity, aten.cosine_similarity.default)
def cosine_similarity(call: OpCall) -> Cost:
    """CosineSimilarity along ``dim``, as torch computes it: each operand (``N_i`` elements, ``R_i`` vectors)
    divided by its norm, ``‖x‖ = √max(Σx², ε²)`` (squares, sums, a clamp and a root: ``2·N_i + R_i``; the
    division ``N_i``), then the products summed (``N`` MACs): ``FLOPs = Σ_i (3·N_i + R_i) + 2·N − R``,
    ``MACs = N``, ``DMAs = N_x1 + N_x2 + N_out`` (``8·N + R`` FLOPs for operands of one shape)."""
    x1, x2 = _operands(call)
    shape = torch.broadcast_shapes(x1.shape, x2.shape)
    pairs, vectors = math.prod(shape), call.output.numel
    dim = int(argument(call, "dim", 1, 1)) % max(len(shape), 1)
    normalised = sum(3 * x.numel + _rows(x, dim, len(shape)) for x in (x1, x2))
    return Cost(flops=normalised + 2 * pairs - vectors, macs=pairs, dmas=x1.numel + x2.numel + vectors)


@TABLE.register(F.pdist, aten._pdist_forward.default)
def pdist(call: OpCall) -> Cost:
    """pdist, the ``p``-norm distance of each pair of the ``n`` rows (length ``M``) of its input (``N_out =
    n(n − 1)/2``): a subtraction per element pair and the norm, ``FLOPs = 3·M·N_out``, ``MACs = 0``,
    ``DMAs = N_in + N_out``."""
    length = call.input.shape[-1] if call.input.ndim else 1
    return Cost(flops=3 * length * call.output.numel, dmas=call.input.numel + call.output.numel)


def _by_products(call: OpCall, rows1: int, rows2: int) -> bool:
    """Whether torch computes a cdist from matrix products: ``p = 2`` and ``compute_mode``
    ``use_mm_for_euclid_dist`` (ATen's 1), or the default with more than 25 rows on either side."""
    if float(argument(call, "p", 1, 2.0)) != 2:
        return False
    mode = argument(call, "compute_mode", 2, "use_mm_for_euclid_dist_if_necessary")
    if mode in ("use_mm_for_euclid_dist", 1):
        return True
    return mode in ("use_mm_for_euclid_dist_if_necessary", None) and (rows1 > 25 or rows2 > 25)


@TABLE.register(torch.cdist, aten._cdist_forward.default)
def cdist(call: OpCall) -> Cost:
    """cdist of ``P`` rows against ``R`` (length ``M``, ``N_out = B·P·R``), as torch computes it. Directly:
    a subtraction per element pair and the ``p``-norm, ``FLOPs = 3·M·N_out``, ``MACs = 0``. By matrix products
    (``p = 2`` past 25 rows, or asked): ``‖a‖² + ‖b‖² − 2·a·b`` as one product of padded operands, ``x1``'s
    squared norms (``2·N_x1 − B·P``), ``x2``'s (``2·N_x2 − B·R``), ``−2·x1`` (``N_x1``), the product with
    ``M + 2`` terms, a clamp at 0 and a root: ``FLOPs = 3·N_x1 − B·P + 2·N_x2 − B·R + N_out·(2M + 5)``,
    ``MACs = N_out·(M + 2)``. ``DMAs = N_x1 + N_x2 + N_out`` either way."""
    x1, x2 = _operands(call)
    length = x1.shape[-1] if x1.ndim else 1
    rows1, rows2 = x1.numel // length if length else 0, x2.numel // length if length else 0
    n_out = call.output.numel
    dmas = x1.numel + x2.numel + n_out
    if not _by_products(call, x1.shape[-2] if x1.ndim > 1 else 1, x2.shape[-2] if x2.ndim > 1 else 1):
        return Cost(flops=3 * length * n_out, dmas=dmas)
    norms = 3 * x1.numel - rows1 + 2 * x2.numel - rows2
    return Cost(flops=norms + n_out * (2 * length + 5), macs=n_out * (length + 2), dmas=dmas)
