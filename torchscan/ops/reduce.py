"""Reductions (sum, mean, var, std, max…), scans (cumsum) and selections (topk, sort).

``R`` = number of independent groups a reduction makes (``N_out`` for a reduction,
``N_in / L`` for a scan or a sort along a dim of length ``L``). Comparisons count as FLOPs.
``unique`` is counted as a sort plus neighbour comparisons; ``histc`` as direct binning.
"""

from __future__ import annotations

import math

import torch

from torchscan.ops.common import argument, broadcast_elements, normalise_dims, output_elements, reduced_groups
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("reduce")

T = torch.Tensor
aten = torch.ops.aten


@TABLE.register(torch.sum, T.sum, torch.nansum, T.nansum, aten.sum.dim_IntList, aten.sum.default)
def reduce_sum(call: OpCall) -> Cost:
    """sum: ``FLOPs = N_in − N_out`` adds, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    n_in, n_out = call.input.numel, call.output.numel
    return Cost(flops=n_in - n_out, dmas=n_in + n_out)


TABLE.declare(torch.sum, T.sum, saves=Saves.NOTHING)


@TABLE.register(torch.prod, T.prod)
def reduce_prod(call: OpCall) -> Cost:
    """prod: ``FLOPs = N_in − N_out`` multiplies, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    return reduce_sum(call)


@TABLE.register(
    torch.any,
    torch.all,
    T.any,
    T.all,
    aten.any.default,
    aten.any.dim,
    aten.any.dims,
    aten.all.default,
    aten.all.dim,
    aten.all.dims,
)
def reduce_logical(call: OpCall) -> Cost:
    """any / all: ``FLOPs = N_in − N_out`` logical or/and, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    return reduce_sum(call)


@TABLE.register(
    torch._is_all_true,
    T._is_all_true,
    torch._is_any_true,
    T._is_any_true,
    aten._is_all_true.default,
    aten._is_any_true.default,
)
def reduce_truth(call: OpCall) -> Cost:
    """``_is_all_true`` / ``_is_any_true`` of a boolean tensor (what torch's own checks run, ``torch.distributions``'
    validation of its arguments): as all / any over every element, ``FLOPs = N_in − 1``, ``MACs = 0``,
    ``DMAs = N_in + 1``."""
    return reduce_sum(call)


TABLE.declare(torch._is_all_true, T._is_all_true, torch._is_any_true, T._is_any_true, saves=Saves.NOTHING)


@TABLE.register(torch.mean, T.mean, torch.nanmean, T.nanmean, aten.mean.dim, aten.mean.default)
def reduce_mean(call: OpCall) -> Cost:
    """mean: ``FLOPs = N_in`` (``N_in − N_out`` adds, ``N_out`` divisions), ``MACs = 0``,
    ``DMAs = N_in + N_out``."""
    n_in, n_out = call.input.numel, call.output.numel
    return Cost(flops=n_in, dmas=n_in + n_out)


TABLE.declare(torch.mean, T.mean, saves=Saves.NOTHING)


@TABLE.register(torch.var, T.var, aten.var.correction, aten.var.dim, sqrt=False)
@TABLE.register(torch.std, T.std, aten.std.correction, aten.std.dim, sqrt=True)
@TABLE.register(torch.var_mean, aten.var_mean.correction, sqrt=False)
@TABLE.register(torch.std_mean, aten.std_mean.correction, sqrt=True)
def reduce_var(call: OpCall, sqrt: bool) -> Cost:
    """var / std (two-pass, ``R`` groups): mean (``N_in``), subtract, square, sum (``N_in − R``),
    divide (``R``): ``FLOPs = 4·N_in + R·[std]`` (the root), ``MACs = 0``,
    ``DMAs = N_in + (output elements: 2·R for var_mean / std_mean)``."""
    n_in = call.input.numel
    groups = call.output.numel
    return Cost(flops=4 * n_in + groups * sqrt, dmas=n_in + output_elements(call))


@TABLE.register(
    torch.amax,
    torch.amin,
    T.amax,
    T.amin,
    torch.max,
    torch.min,
    T.max,
    T.min,
    torch.argmax,
    torch.argmin,
    T.argmax,
    T.argmin,
    torch.aminmax,
    T.aminmax,
    aten.amax.default,
    aten.amin.default,
    aten.argmax.default,
    aten.argmin.default,
)
def reduce_extremum(call: OpCall) -> Cost:
    """max / min / argmax / amax… over dims: ``FLOPs = N_in − R`` comparisons (``R`` = elements of
    the first output), ``MACs = 0``, ``DMAs = N_in + all output elements``. The binary spelling
    ``torch.max(a, b)`` is elementwise: ``FLOPs = N_out``, ``DMAs = N_a + N_b + N_out``."""
    if len(call.inputs) > 1:
        n_out = call.output.numel
        return Cost(flops=n_out, dmas=sum(spec.numel for spec in call.inputs) + n_out)
    n_in = call.input.numel
    return Cost(flops=n_in - call.output.numel, dmas=n_in + output_elements(call))


@TABLE.register(torch.norm, T.norm, torch.linalg.vector_norm, torch.linalg.norm, aten.linalg_vector_norm.default)
def reduce_norm(call: OpCall) -> Cost:
    """p-norm over dims (``R = N_out``): ``|x|^p`` (``N_in``), sum (``N_in − R``), root (``R``):
    ``FLOPs = 2·N_in``, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    n_in = call.input.numel
    return Cost(flops=2 * n_in, dmas=n_in + call.output.numel)


@TABLE.register(torch.linalg.matrix_norm, aten.linalg_matrix_norm.default, aten.linalg_matrix_norm.str_ord)
def matrix_norm(call: OpCall) -> Cost:
    """``linalg.matrix_norm`` of ``B`` matrices: Frobenius (``ord="fro"``, the default) as the 2-norm of their
    elements, ``FLOPs = 2·N_in``; ``ord`` ±1 / ±inf (the largest or smallest sum of absolute values of a column /
    a row): ``|x|`` (``N_in``), the sums (``N_in − B·n``), their extremum (``B·(n − 1)``), ``FLOPs = 2·N_in − B``;
    ``MACs = 0``, ``DMAs = N_in + N_out``. ``"nuc"`` and ±2 take singular values (an iterative algorithm): not
    counted (the op is reported unknown)."""
    order = argument(call, "ord", 0, "fro")
    n_in = call.input.numel
    if order == "fro":
        return Cost(flops=2 * n_in, dmas=n_in + call.output.numel)
    if order in (1, -1, math.inf, -math.inf):
        return Cost(flops=2 * n_in - call.output.numel, dmas=n_in + call.output.numel)
    raise ValueError(f"a matrix norm of order {order!r} takes singular values")


TABLE.declare(torch.linalg.matrix_norm, saves=Saves.INPUT)


def _search_steps(length: int) -> int:
    """The comparisons a binary search over ``length`` sorted values takes at most: ``⌈log2(length + 1)⌉``."""
    return math.ceil(math.log2(length + 1))


@TABLE.register(torch.searchsorted, aten.searchsorted.Tensor, aten.searchsorted.Scalar)
def searchsorted(call: OpCall) -> Cost:
    """``searchsorted(sorted, values)``: a binary search of each of the ``N_out`` values in its sorted row of ``n``,
    ``⌈log2(n + 1)⌉`` comparisons each (the most one takes: the count a value's position decides is not read):
    ``FLOPs = N_out·⌈log2(n + 1)⌉``, ``MACs = 0``, ``DMAs`` each compared value read, the values read and the
    indices written: ``N_out·⌈log2(n + 1)⌉ + N_values + N_out``."""
    rows = call.inputs[0]
    steps = _search_steps(rows.shape[-1] if rows.ndim else 1)
    n_out = call.output.numel
    values = sum(spec.numel for spec in call.inputs[1:2])
    return Cost(flops=n_out * steps, dmas=n_out * steps + values + n_out)


@TABLE.register(torch.bucketize, aten.bucketize.Tensor, aten.bucketize.Scalar)
def bucketize(call: OpCall) -> Cost:
    """``bucketize(input, boundaries)``: ``searchsorted`` of each of the ``N_out`` elements in the ``n`` boundaries:
    ``FLOPs = N_out·⌈log2(n + 1)⌉``, ``MACs = 0``, ``DMAs = N_out·⌈log2(n + 1)⌉ + N_input + N_out``."""
    boundaries = call.inputs[-1]
    steps = _search_steps(boundaries.numel)
    n_out = call.output.numel
    given = sum(spec.numel for spec in call.inputs[:-1])
    return Cost(flops=n_out * steps, dmas=n_out * steps + given + n_out)


TABLE.declare(torch.searchsorted, torch.bucketize, saves=Saves.NOTHING)


@TABLE.register(torch.logsumexp, T.logsumexp)
def reduce_logsumexp(call: OpCall) -> Cost:
    """logsumexp (stable): max (``N_in − R``), subtract, exp, sum (``N_in − R``), log and add back
    (``2·R``): ``FLOPs = 4·N_in``, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    n_in = call.input.numel
    return Cost(flops=4 * n_in, dmas=n_in + call.output.numel)


@TABLE.register(
    torch.cumsum, T.cumsum, T.cumsum_, torch.cumprod, T.cumprod, T.cumprod_, aten.cumsum.default, aten.cumprod.default
)
def cumulative(call: OpCall) -> Cost:
    """cumsum / cumprod along a dim of length ``L`` (``R = N_in / L`` rows):
    ``FLOPs = N_in − R``, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    n_in = call.input.numel
    groups = reduced_groups(call.input, argument(call, "dim", 0))  # dim is required in every spelling
    return Cost(flops=n_in - groups, dmas=n_in + call.output.numel)


@TABLE.register(torch.topk, T.topk, aten.topk.default)
def topk(call: OpCall) -> Cost:
    """topk along a dim of length ``L`` (``R`` rows), a size-``k`` heap per row:
    ``FLOPs = N_in·⌈log2(k + 1)⌉`` comparisons, ``MACs = 0``, ``DMAs = N_in + 2·R·k`` (values and indices)."""
    k = int(argument(call, "k", 0, 1))
    n_in = call.input.numel
    return Cost(flops=n_in * max(math.ceil(math.log2(k + 1)), 1), dmas=n_in + output_elements(call))


@TABLE.register(torch.sort, T.sort, torch.argsort, T.argsort, aten.sort.default, dim=None)
@TABLE.register(torch.msort, T.msort, dim=0)
def sort(call: OpCall, dim: int | None) -> Cost:
    """sort / argsort along a dim of length ``L``: ``FLOPs = N_in·⌈log2 L⌉`` comparisons,
    ``MACs = 0``, ``DMAs = N_in + output elements`` (values and/or indices)."""
    spec = call.input
    axis = normalise_dims(argument(call, "dim", 0, -1) if dim is None else dim, spec.ndim)
    length = spec.shape[axis[0]] if spec.ndim else 1
    return Cost(flops=spec.numel * math.ceil(math.log2(max(length, 1))), dmas=spec.numel + output_elements(call))


@TABLE.register(torch.nonzero, T.nonzero, torch.argwhere, T.argwhere, aten.nonzero.default)
def nonzero(call: OpCall) -> Cost:
    """nonzero / argwhere: each element compared with zero, the indices of the ``K`` nonzero ones written
    (``K × ndim``, or ``ndim`` tensors of ``K`` with ``as_tuple``): ``FLOPs = N_in``, ``MACs = 0``,
    ``DMAs = N_in + output elements``. ``K`` depends on the values: only a real forward knows it."""
    n_in = call.input.numel
    return Cost(flops=n_in, dmas=n_in + output_elements(call))


# integer indices: autograd never differentiates them, nothing is kept
TABLE.declare(torch.nonzero, T.nonzero, torch.argwhere, T.argwhere, saves=Saves.NOTHING)


def _slices(call: OpCall) -> tuple[int, int]:
    """``(n, s)``: the length of the ``dim`` argument (all elements when None) and ``s = N_in / n``."""
    spec = call.input
    dim = argument(call, "dim", None, None)
    if dim is None or not spec.ndim:
        return spec.numel, 1
    length = spec.shape[int(dim) % spec.ndim]
    return length, spec.numel // max(length, 1)


@TABLE.register(torch.unique, T.unique, aten._unique2.default, aten.unique_dim.default)
def unique(call: OpCall) -> Cost:
    """unique, counted as sort-based whatever ``sorted`` says (``n`` = elements, or the length of
    ``dim``, ``s = N_in / n`` slices): sort (``N_in·⌈log2 n⌉`` comparisons) and compare neighbours
    (``N_in − s``): ``FLOPs = N_in·⌈log2 n⌉ + N_in − s``, ``MACs = 0``,
    ``DMAs = N_in + output elements`` (values, inverse, counts)."""
    length, slices = _slices(call)
    n_in = call.input.numel
    comparisons = n_in * math.ceil(math.log2(max(length, 1))) + n_in - slices
    return Cost(flops=comparisons, dmas=n_in + output_elements(call))


@TABLE.register(torch.unique_consecutive, T.unique_consecutive, aten.unique_consecutive.default)
def unique_consecutive(call: OpCall) -> Cost:
    """unique_consecutive (neighbour comparisons only, notation of ``unique``): ``FLOPs = N_in − s``,
    ``MACs = 0``, ``DMAs = N_in + output elements``."""
    _, slices = _slices(call)
    n_in = call.input.numel
    return Cost(flops=n_in - slices, dmas=n_in + output_elements(call))


@TABLE.register(torch.histc, T.histc, aten.histc.default)
def histc(call: OpCall) -> Cost:
    """histc (direct binning, no sort): per element 2 range comparisons, subtract ``min``, scale,
    floor and the count increment; when ``min = max`` the range is first taken from the data
    (``2·(N_in − 1)`` comparisons, one more read): ``FLOPs = 6·N_in + 2·(N_in − 1)·[min = max]``,
    ``MACs = 0``, ``DMAs = N_in·(1 + [min = max]) + N_out``."""
    n_in = call.input.numel
    data_range = argument(call, "min", 1, 0) == argument(call, "max", 2, 0)
    return Cost(
        flops=6 * n_in + 2 * max(n_in - 1, 0) * data_range,
        dmas=n_in * (1 + data_range) + call.output.numel,
    )


@TABLE.register(torch.trace, T.trace)
def trace(call: OpCall) -> Cost:
    """The sum of a matrix's diagonal, ``n = min(rows, columns)`` elements: ``FLOPs = n − 1``, ``MACs = 0``,
    ``DMAs = n + 1``."""
    length = min(call.input.shape) if call.input.ndim == 2 else 0
    return Cost(flops=max(length - 1, 0), dmas=length + 1)


@TABLE.register(torch.dist, T.dist)
def dist(call: OpCall) -> Cost:
    """``dist(a, b, p)``, the ``p``-norm of ``a − b`` (``N`` elements, broadcast): a subtraction per element and the
    norm (``2·N``, :func:`reduce_norm`'s): ``FLOPs = 3·N``, ``MACs = 0``, ``DMAs = N_a + N_b + 1``."""
    a, b = call.inputs[0], call.inputs[1]
    return Cost(flops=3 * broadcast_elements(a, b), dmas=a.numel + b.numel + 1)


@TABLE.register(torch.count_nonzero, T.count_nonzero)
def count_nonzero(call: OpCall) -> Cost:
    """Non-zero elements counted over dims (``R`` counts): a comparison per element, ``N_in − R`` adds:
    ``FLOPs = 2·N_in − R``, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    n_in, n_out = call.input.numel, call.output.numel
    return Cost(flops=2 * n_in - n_out if n_in else 0, dmas=n_in + n_out)


def _rows(call: OpCall, index: int = 0, default: int | None = None) -> tuple[int, int]:
    """``(R, L)``: the rows a row-wise op (``dim`` at ``index`` after the input; every element when absent) makes
    of its input, and their length."""
    spec = call.input
    dim = argument(call, "dim", index, default)
    rows = reduced_groups(spec, dim) if dim is not None else 1
    return rows, (spec.numel // rows if rows else 0)


@TABLE.register(torch.median, T.median, torch.nanmedian, T.nanmedian, torch.kthvalue, T.kthvalue)
def select(call: OpCall) -> Cost:
    """median / nanmedian / kthvalue, a selection in each row (``R`` rows of ``L``; the whole input without a
    ``dim``), as torch's quickselect: ``2·L`` comparisons a row expected, ``FLOPs = 2·N_in``, ``MACs = 0``,
    ``DMAs = N_in + output elements`` (values and indices)."""
    return Cost(flops=2 * call.input.numel, dmas=call.input.numel + output_elements(call))


@TABLE.register(torch.mode, T.mode)
def mode(call: OpCall) -> Cost:
    """mode, each row (``dim``, default the last) sorted then scanned for its longest run: ``N_in·⌈log2 L⌉ + N_in``
    comparisons, ``MACs = 0``, ``DMAs = N_in + output elements``."""
    _, length = _rows(call, 0, -1)
    n_in = call.input.numel
    return Cost(flops=n_in * math.ceil(math.log2(max(length, 1))) + n_in, dmas=n_in + output_elements(call))


@TABLE.register(torch.quantile, T.quantile, torch.nanquantile, T.nanquantile)
def quantile(call: OpCall) -> Cost:
    """quantile / nanquantile, each row (``dim``; the whole input without one) sorted, then each of the ``N_out``
    quantiles interpolated between two neighbours (a lerp: 3): ``FLOPs = N_in·⌈log2 L⌉ + 3·N_out``, ``MACs = 0``,
    ``DMAs = N_in + N_q + N_out``."""
    _, length = _rows(call, 1)
    n_in, n_out = call.input.numel, call.output.numel
    levels = call.inputs[1].numel if len(call.inputs) > 1 else 0
    return Cost(flops=n_in * math.ceil(math.log2(max(length, 1))) + 3 * n_out, dmas=n_in + levels + n_out)


@TABLE.register(torch.cummax, T.cummax, torch.cummin, T.cummin)
def cumulative_extreme(call: OpCall) -> Cost:
    """cummax / cummin along a dim (``R`` rows): ``FLOPs = N_in − R`` comparisons, ``MACs = 0``,
    ``DMAs = N_in + 2·N_in`` (values and indices)."""
    rows, _ = _rows(call, 0)
    n_in = call.input.numel
    return Cost(flops=n_in - rows, dmas=n_in + output_elements(call))


@TABLE.register(torch.logcumsumexp, T.logcumsumexp)
def logcumsumexp(call: OpCall) -> Cost:
    """logcumsumexp along a dim (``R`` rows), each element after a row's first added to the running value by a
    stable ``logaddexp`` (``max(a, b) + log1p(exp(−|a − b|))``: 7): ``FLOPs = 7·(N_in − R)``, ``MACs = 0``,
    ``DMAs = N_in + N_out``."""
    rows, _ = _rows(call, 0)
    n_in = call.input.numel
    return Cost(flops=7 * (n_in - rows), dmas=n_in + call.output.numel)
