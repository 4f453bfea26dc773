"""Fully connected layers and matrix products (matmul, ``addmm``/``baddbmm``/``addbmm``, einsum).

A product ``[.., m, k] @ [.., k, n]`` is ``batch·m·n·k`` MACs and ``batch·m·n·(2k − 1)`` FLOPs;
the ``add*`` variants add ``N_out`` FLOPs for the added term (when ``beta ≠ 0``) and one more
per output for each scaling that is not 1. ``einsum`` is counted as its pairwise contractions,
left to right: a step over index set ``S`` (``k`` = product of the sizes of the indices summed
in that step) costs ``MACs = prod(S)``, ``FLOPs = N_step·(2k − 1)``; a one-operand sum costs
``N_in − N_out`` adds. A grouped matmul (``torch._grouped_mm``, MoE experts) is one dot product
per output element over its group's inner dim. A triangular solve (``torch.linalg.solve_triangular``) is a
substitution: a dot product of ``i`` terms, a subtraction and a division for the ``i``-th element of each solved
column.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.common import argument
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("linear")

aten = torch.ops.aten
T = torch.Tensor


@TABLE.register(nn.Linear, F.linear, aten.linear.default)
def linear(call: OpCall) -> Cost:
    """Linear (``k`` in features): ``FLOPs = N_out·(2k − 1 + [bias])``, ``MACs = N_out·k``,
    ``DMAs = N_in + P + N_out``."""
    weight = call.spec("weight")
    if weight is None:
        raise ValueError("linear without a weight")
    k = weight.shape[-1]  # torch refuses a 0-d weight
    n_out = call.output.numel
    has_bias = call.spec("bias") is not None
    params = weight.numel + call.numel("bias")
    return Cost(flops=n_out * (2 * k - 1 + has_bias), macs=n_out * k, dmas=call.input.numel + params + n_out)


TABLE.declare(nn.Linear, F.linear, saves=Saves.WEIGHTED)


@TABLE.register(torch.ao.nn.quantized.dynamic.Linear)
def dynamic_linear(call: OpCall) -> Cost:
    """torch.ao's dynamically quantized Linear (``k`` in features; a packed weight and a float bias): the float
    layer's product and bias, ``N_out·(2k − 1 + [bias])`` FLOPs and ``N_out·k`` MACs (int8 products summed in
    int32, or float16 weights read as float32). With an int8 weight the input is quantized at each call, as ATen's
    reference formulas state it: its range found (a min and a max: 2 comparisons an element), then ``q = clamp(round(x
    / s) + z)`` (5 an element); each int32 sum dequantized, ``(acc − z·Σw)·s_x·s_w`` (3): ``+ 7·N_in + 3·N_out``
    FLOPs. ``DMAs = N_in + P + N_out`` (``P``: the weight's and bias's elements)."""
    weight = call.spec("weight")
    if weight is None or weight.ndim != 2:
        raise ValueError("a quantized linear without its weight")
    k, n_out, n_in = weight.shape[1], call.output.numel, call.input.numel
    bias = call.spec("bias")
    flops = n_out * (2 * k - 1 + (bias is not None))
    if weight.dtype in _QUANTIZED_INTS:
        flops += 7 * n_in + 3 * n_out
    params = weight.numel + (bias.numel if bias is not None else 0)
    return Cost(flops=flops, macs=n_out * k, dmas=n_in + params + n_out)


_QUANTIZED_INTS = frozenset({torch.qint8, torch.quint8, torch.qint32, torch.int8, torch.uint8})
"""Integer weight dtypes of quantized layers (the input quantized at each call)."""


@TABLE.register(
    torch.matmul,
    torch.mm,
    torch.bmm,
    operator.matmul,
    operator.imatmul,
    torch.Tensor.matmul,
    torch.Tensor.mm,
    torch.Tensor.bmm,
    torch.Tensor.__matmul__,
    torch.Tensor.__rmatmul__,
    aten.mm.default,
    aten.bmm.default,
    aten.matmul.default,
)
def matmul(call: OpCall) -> Cost:
    """``[.., m, k] @ [.., k, n]`` (broadcast batch): ``MACs = batch·m·n·k = N_out·k``,
    ``FLOPs = N_out·(2k − 1)``, ``DMAs = N_a + N_b + N_out``."""
    a, b = call.inputs[:2]
    k = a.shape[-1]  # torch refuses a 0-d operand
    n_out = call.output.numel
    return Cost(flops=n_out * (2 * k - 1), macs=n_out * k, dmas=a.numel + b.numel + n_out)


TABLE.declare(
    torch.matmul,
    torch.mm,
    torch.bmm,
    operator.matmul,
    torch.Tensor.matmul,
    torch.Tensor.mm,
    torch.Tensor.bmm,
    torch.Tensor.__matmul__,
    torch.Tensor.__rmatmul__,
    saves=Saves.MATMUL,
)
TABLE.declare(torch._grouped_mm, F.grouped_mm, aten._grouped_mm.default, saves=Saves.MATMUL)


@TABLE.register(torch.linalg.solve_triangular, aten.linalg_solve_triangular.default)
def solve_triangular(call: OpCall) -> Cost:
    """``A X = B`` (``left``) or ``X A = B``, ``A`` triangular ``n × n``: each column (row) of ``X`` by
    substitution, ``xᵢ = (bᵢ − Σ_{p<i} aᵢₚ·xₚ) / aᵢᵢ``: ``MACs = N_out·(n − 1)/2``, ``FLOPs = N_out·n`` (a dot
    product of ``i`` terms, a subtraction and a division per element; ``N_out·(n − 1)`` with ``unitriangular``:
    no division), ``DMAs = M·n(n ± 1)/2 + N_B + N_out`` (the triangle each of the ``M = N_A/n²`` matrices is read
    in: its diagonal too unless ``unitriangular``)."""
    a, b = call.inputs[:2]
    n = a.shape[-1]  # torch refuses an A of fewer than two dims
    n_out = call.output.numel  # a multiple of n: N_out·(n − 1) is even
    unit = bool(call.get("unitriangular", False))
    triangle = n * (n - 1 if unit else n + 1) // 2
    dmas = a.numel // (n * n) * triangle + b.numel + n_out if n else b.numel + n_out
    return Cost(flops=n_out * (n - 1 if unit else n), macs=n_out * (n - 1) // 2, dmas=dmas)


@TABLE.register(torch._grouped_mm, F.grouped_mm, aten._grouped_mm.default)
def grouped_mm(call: OpCall) -> Cost:
    """Grouped matmul (mixture-of-experts: ``G`` groups along the offsets ``offs``), ``K`` =
    ``a.shape[-1]``: 2-D × 3-D (token rows split by expert), 3-D × 2-D and 3-D × 3-D (batched)
    take dot products of length ``K``: ``MACs = N_out·K``; 2-D × 2-D (``K`` split into groups,
    output ``G × m × n``): ``MACs = (N_out / G)·K``. ``FLOPs = 2·MACs − N_out + N_out·[bias]``
    (each output a dot product), ``DMAs = N_a + N_b + N_offs + N_bias + N_out``. Rows past the
    last offset are counted as if used."""
    a, b = call.inputs[:2]
    n_out = call.output.numel
    depth = a.shape[-1]  # a is 2-D or 3-D
    macs = n_out // call.output.shape[0] * depth if a.ndim == 2 and b.ndim == 2 else n_out * depth
    has_bias = call.spec("bias") is not None
    return Cost(
        flops=2 * macs - n_out + n_out * has_bias,
        macs=macs,
        dmas=sum(spec.numel for spec in call.inputs) + n_out,
    )


def _scalings(n_out: int, beta: float, alpha: float) -> int:
    """FLOPs of ``beta·input + alpha·product`` on top of the product."""
    return n_out * ((beta != 0) + (alpha != 1) + (beta not in (0, 1)))


@TABLE.register(torch.addmm, torch.Tensor.addmm, torch.Tensor.addmm_, aten.addmm.default)
@TABLE.register(torch.baddbmm, torch.Tensor.baddbmm, torch.Tensor.baddbmm_, aten.baddbmm.default)
def addmm(call: OpCall) -> Cost:
    """addmm / baddbmm ``beta·input + alpha·(a @ b)``: ``MACs = N_out·k``,
    ``FLOPs = N_out·(2k − 1) + N_out·([beta ≠ 0] + [alpha ≠ 1] + [beta ∉ {0, 1}])``,
    ``DMAs = N_input·[beta ≠ 0] + N_a + N_b + N_out`` (``addmm_`` writes its results over the input)."""
    bias, a, b = call.inputs[:3]
    beta, alpha = argument(call, "beta", None, 1), argument(call, "alpha", None, 1)
    k = a.shape[-1]  # a is a matrix or a batch of them
    n_out = call.output.numel
    return Cost(
        flops=n_out * (2 * k - 1) + _scalings(n_out, beta, alpha),
        macs=n_out * k,
        dmas=bias.numel * (beta != 0) + a.numel + b.numel + n_out,
    )


TABLE.declare(torch.baddbmm, torch.Tensor.baddbmm, saves=Saves.MATMUL)

TABLE.declare(torch.addmm, torch.Tensor.addmm, saves=Saves.MATMUL)


@TABLE.register(torch.addbmm, torch.Tensor.addbmm, torch.Tensor.addbmm_, aten.addbmm.default)
def addbmm(call: OpCall) -> Cost:
    """addbmm ``beta·input + alpha·sum_b(a_b @ b_b)`` over ``B`` batches: ``MACs = N_out·B·k``,
    ``FLOPs = N_out·(2·B·k − 1) + N_out·([beta ≠ 0] + [alpha ≠ 1] + [beta ∉ {0, 1}])``,
    ``DMAs = N_input·[beta ≠ 0] + N_a + N_b + N_out``."""
    bias, a, b = call.inputs[:3]
    beta, alpha = argument(call, "beta", None, 1), argument(call, "alpha", None, 1)
    depth = a.shape[0] * a.shape[-1]
    n_out = call.output.numel
    return Cost(
        flops=n_out * (2 * depth - 1) + _scalings(n_out, beta, alpha),
        macs=n_out * depth,
        dmas=bias.numel * (beta != 0) + a.numel + b.numel + n_out,
    )


@TABLE.register(
    torch.addmv, torch.Tensor.addmv, torch.Tensor.addmv_, torch.mv, torch.Tensor.mv, torch.dot, torch.Tensor.dot
)
def matvec(call: OpCall) -> Cost:
    """mv / dot / addmv (``k`` = the contracted length): ``MACs = N_out·k``,
    ``FLOPs = N_out·(2k − 1) (+ N_out for the added term of addmv)``, ``DMAs = N_inputs + N_out``."""
    k = call.inputs[-1].shape[0]  # the vector (torch takes 1-D vectors only)
    n_out = call.output.numel
    added = n_out if len(call.inputs) == 3 else 0
    return Cost(flops=n_out * (2 * k - 1) + added, macs=n_out * k, dmas=sum(s.numel for s in call.inputs) + n_out)


def _einsum_terms(equation: str, shapes: Sequence[tuple[int, ...]]) -> tuple[list[str], str, dict[str, int]]:
    """Operand subscripts, output subscripts and index sizes (``...`` expanded to fresh letters)."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    operands = lhs.split(",")
    if len(operands) != len(shapes):
        raise ValueError(f"einsum '{equation}' names {len(operands)} operands, got {len(shapes)}")
    free = [chr(c) for c in range(0x100, 0x200)]  # letters that cannot clash with a-zA-Z
    ranks = [len(shape) - (len(term) - 3) for term, shape in zip(operands, shapes, strict=True) if "..." in term]
    broadcast = max(ranks, default=0)
    ellipsis = "".join(free[:broadcast])
    sizes: dict[str, int] = {}
    terms = []
    for term, shape in zip(operands, shapes, strict=True):
        if "..." in term:
            rank = len(shape) - (len(term) - 3)
            term = term.replace("...", ellipsis[broadcast - rank :])
        for letter, size in zip(term, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), size)
        terms.append(term)
    if arrow:
        output = rhs.replace("...", ellipsis)
    else:
        counts = {letter: "".join(terms).count(letter) for letter in sizes}
        output = ellipsis + "".join(sorted(letter for letter, n in counts.items() if n == 1 and letter not in ellipsis))
    return terms, output, sizes


def einsum_cost(equation: str, shapes: Sequence[tuple[int, ...]]) -> Cost:
    """Cost of ``einsum(equation, *operands of shapes)`` contracted pairwise left to right.

    Step ``A, B -> C`` (``C`` keeps the indices still needed later or in the output):
    ``MACs = prod(sizes of A ∪ B)``, ``FLOPs = N_C·(2k − 1)`` with ``k = prod(sizes of (A ∪ B) − C)``;
    reads ``N_A + N_B``; only the final result is written. A single operand that sums indices
    costs ``FLOPs = N_in − N_out``.
    """
    terms, output, sizes = _einsum_terms(equation, shapes)

    def numel(term: str) -> int:
        return math.prod(sizes[letter] for letter in term)

    flops = macs = 0
    dmas = sum(math.prod(shape) for shape in shapes) + numel(output)
    current = terms[0]
    for position, nxt in enumerate(terms[1:], start=1):
        later = "".join(terms[position + 1 :]) + output
        union = "".join(dict.fromkeys(current + nxt))
        kept = "".join(letter for letter in union if letter in later)
        k = numel("".join(letter for letter in union if letter not in kept))
        macs += numel(union)
        flops += numel(kept) * (2 * k - 1)
        current = kept
    if len(terms) == 1:  # a sum over the indices missing from the output (a diagonal is a view)
        flops = numel("".join(dict.fromkeys(current))) - numel(output)
    return Cost(flops=flops, macs=macs, dmas=dmas)


@TABLE.register(torch.einsum, aten.einsum.default)
def einsum(call: OpCall) -> Cost:
    """einsum as its contraction (module docstring): for ``'bij,bjk->bik'`` it equals bmm:
    ``MACs = b·i·k·j``, ``FLOPs = b·i·k·(2j − 1)``, ``DMAs = N_a + N_b + N_out``."""
    return einsum_cost(einsum_equation(call), [spec.shape for spec in call.inputs])


def einsum_equation(call: OpCall) -> str:
    """The equation of an einsum call, bound by name or the first positional argument."""
    equation = argument(call, "equation", None)
    if equation is None:
        equation = call.attrs["args"][0]
    return str(equation)


TABLE.declare(torch.einsum, saves=Saves.MATMUL)


@TABLE.register(nn.Bilinear, F.bilinear, aten.bilinear.default)
def bilinear(call: OpCall) -> Cost:
    """Bilinear ``y_k = x1ᵀ·W_k·x2 + b_k`` (``W``: ``out × k1 × k2``), in torch's order (``aten._trilinear``):
    ``x1`` contracted with ``W`` first (``k1·k2`` MACs per output), then with ``x2`` (``k2``):
    ``MACs = N_out·k2·(k1 + 1)``, ``FLOPs = N_out·(k2·(2·k1 − 1) + 2·k2 − 1 + [bias])``,
    ``DMAs = N_in1 + N_in2 + P + N_out`` (as Linear's)."""
    weight = call.spec("weight")
    if weight is None or weight.ndim != 3:
        raise ValueError("bilinear without a 3-D weight")
    _, k1, k2 = weight.shape
    n_out = call.output.numel
    has_bias = call.spec("bias") is not None
    inputs = call.inputs[0].numel + (call.inputs[1].numel if len(call.inputs) > 1 else 0)
    return Cost(
        flops=n_out * (k2 * (2 * k1 - 1) + 2 * k2 - 1 + has_bias),
        macs=n_out * k2 * (k1 + 1),
        dmas=inputs + weight.numel + call.numel("bias") + n_out,
    )


@TABLE.register(torch.vdot, T.vdot, torch.inner, T.inner)
def inner_product(call: OpCall) -> Cost:
    """``vdot`` (two vectors of ``k``) and ``inner`` (the last dims of two tensors, ``k`` each, contracted: a dot
    product per output element; a number operand: a product per element): ``MACs = N_out·k``,
    ``FLOPs = N_out·(2k − 1)``, ``DMAs = N_a + N_b + N_out``."""
    a, b = call.inputs[0], call.inputs[1]
    n_out = call.output.numel
    dmas = a.numel + b.numel + n_out
    if a.ndim == 0 or b.ndim == 0:
        return Cost(flops=n_out, dmas=dmas)
    k = a.shape[-1]
    return Cost(flops=n_out * (2 * k - 1), macs=n_out * k, dmas=dmas)


@TABLE.register(torch.kron, T.kron)
def kron(call: OpCall) -> Cost:
    """Kronecker product, every element of one times every element of the other: ``FLOPs = N_out``, ``MACs = 0``
    (nothing is summed), ``DMAs = N_a + N_b + N_out``."""
    return Cost(flops=call.output.numel, dmas=sum(spec.numel for spec in call.inputs) + call.output.numel)


@TABLE.register(torch.addr, T.addr, T.addr_)
def addr(call: OpCall) -> Cost:
    """``addr(M, u, v, beta, alpha)``, ``β·M + α·(u ⊗ v)``: the outer product (``N_out`` products), the added term
    (``N_out`` where ``β ≠ 0``) and one per output for each scaling that is not 1 (as ``addmm``'s):
    ``MACs = 0``, ``DMAs = N_M + N_u + N_v + N_out``."""
    n_out = call.output.numel
    beta, alpha = argument(call, "beta", None, 1), argument(call, "alpha", None, 1)
    flops = n_out + (n_out if beta != 0 else 0) + n_out * ((alpha != 1) + (beta not in (0, 1)))
    return Cost(flops=flops, dmas=sum(spec.numel for spec in call.inputs) + n_out)


@TABLE.register(torch.cross, T.cross, torch.linalg.cross)
def cross(call: OpCall) -> Cost:
    """Cross products of 3-vectors, ``a × b`` (six products and three subtractions a vector): ``FLOPs = 3·N_out``,
    ``MACs = 0``, ``DMAs = N_a + N_b + N_out``."""
    return Cost(flops=3 * call.output.numel, dmas=sum(spec.numel for spec in call.inputs[:2]) + call.output.numel)
