"""Receptive-field rules of pointwise ops, merges, views, indexing and mixing ops.

- Pointwise ops and merges (``+``, ``*``, ``torch.cat`` along a non-spatial axis…): per output
  unit, the hull ``[min L, max R]`` of the operands' fields (the union of the paths).
- Views: a row-major reshape is followed from the shapes alone — a spatial dim of size ``n`` whose
  elements sit ``inner`` apart stays a dim if the output has an axis with the same ``(inner, n)``;
  the spatial dims flattened together become one token axis (and can be split back); merged
  with other axes (``flatten(1)`` before a classifier) the field is global; split, it is unknown.
  ``permute``/``transpose`` move the axes; indexing crops (``x[..., a:b:s]`` is a window with
  ``k = 1``, ``s``, ``p = −a``) or selects.
- Ops that mix every position along some axes (reductions, softmax, Linear and matmul over their
  contracted axis, attention) make the field global when those axes hold
  all the spatial dims, leave it unchanged when they hold none, and stop it otherwise.
  Normalisation statistics are not counted as mixing (normalisation layers are pointwise).
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops import DEFAULT_REGISTRY
from torchscan.passes.receptive.geometry import Field, Marker, Unsupported
from torchscan.passes.receptive.table import Operand, Outcome, RuleTable, arg, check_output, mix, union
from torchscan.passes.receptive.windows import data_operand
from torchscan.records import OpCall, TensorSpec

__all__ = ["TABLE"]

TABLE = RuleTable("layout")

T = torch.Tensor


_NO_FORMULA_POINTWISE = (
    nn.PReLU, nn.RReLU, nn.SELU, nn.CELU, nn.Hardshrink, nn.Softshrink, nn.Softsign, nn.Tanhshrink, nn.Threshold,
    nn.LogSigmoid, nn.GLU, F.selu, F.celu, F.softsign, F.logsigmoid, F.prelu, F.rrelu, F.threshold, F.glu,
)  # fmt: skip
"""Pointwise ops the op registry has no formula for yet (their cost is reported unknown): listed here
until their formulas declare them."""


def _pointwise_targets() -> tuple[Any, ...]:
    """Every spelling declared ``pointwise=True`` with its formula (:mod:`torchscan.ops`), and the
    pointwise ops without a formula."""
    return (*DEFAULT_REGISTRY.pointwise_targets(), *_NO_FORMULA_POINTWISE)


@TABLE.register(*_pointwise_targets())
def pointwise(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Pointwise ops and elementwise merges: the hull of the operands' fields, unit by unit."""
    return union(call, operands)


def _negative(dim: int, ndim: int) -> int:
    return dim - ndim if dim >= 0 else dim


@TABLE.register(torch.cat, torch.concat, torch.concatenate)
def cat(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Concatenation along a non-spatial axis: the hull of the operands' fields (the union of paths)."""
    dim = _negative(int(arg(call, "dim", 0, arg(call, "axis", 0, 0))), call.output.ndim)
    if dim in {axis for operand in operands for axis in operand.field.axes}:
        raise Unsupported("concatenation along a spatial dim")
    return union(call, operands)


@TABLE.register(torch.stack)
def stack(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Stacking along a new axis: the hull of the operands' fields (axes left of the new one move)."""
    ndim = call.output.ndim
    new = int(arg(call, "dim", 0, 0))
    new = new + ndim if new < 0 else new
    moved = []
    for operand in operands:
        field = operand.field
        axes = tuple(None if a is None else (a - 1 if a + ndim - 1 < new else a) for a in field.axes)
        moved.append(Operand(replace(field, axes=axes), operand.spec))
    return union(call, moved)


@TABLE.register(torch.chunk, torch.split, torch.tensor_split, T.chunk, T.split, T.tensor_split)
def split(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Splitting along a non-spatial axis (every piece keeps the spatial grid): unchanged."""
    field = data_operand(call, operands)
    for piece in call.outputs:
        check_output(replace(call, outputs=(piece,)), field)
    return field


@TABLE.register(operator.getitem, T.__getitem__)
def getitem(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Indexing: a piece of a tuple keeps its field; a tensor index crops (slice) or selects (int)."""
    field = data_operand(call, operands) if len(operands) == 1 else union(call, operands)
    source = call.attrs.get("a")
    if not isinstance(source, TensorSpec):
        check_output(call, field)
        return field
    index = call.attrs.get("b")
    index = index if isinstance(index, tuple) else (index,)
    shape = source.shape
    if any(
        isinstance(item, bool) or not (item is None or item is Ellipsis or isinstance(item, (int, slice)))
        for item in index
    ):
        raise Unsupported("advanced (tensor or boolean) indexing")
    consumed = sum(isinstance(item, (int, slice)) for item in index)
    expanded: list[Any] = []
    for item in index:
        expanded += [slice(None)] * (len(shape) - consumed) if item is Ellipsis else [item]
    if not any(item is Ellipsis for item in index):
        expanded += [slice(None)] * (len(shape) - consumed)
    placement: dict[int, tuple[int | None, Any]] = {}  # input axis -> (output axis, index item)
    in_axis = out_axis = 0
    for item in expanded:
        if item is None:
            out_axis += 1
        elif isinstance(item, int):
            placement[in_axis] = (None, item)
            in_axis += 1
        else:
            placement[in_axis] = (out_axis, item)
            in_axis += 1
            out_axis += 1
    out_ndim = call.output.ndim
    spans, sizes, axes = list(field.spans), list(field.sizes), list(field.axes)
    if field.flat:
        target, item = placement[field.axes[0] + len(shape)] if field.axes[0] is not None else (None, slice(None))
        if item != slice(None) and item.indices(shape[field.axes[0]]) != (0, shape[field.axes[0]], 1):
            raise Unsupported("indexing into flattened spatial positions")
        return replace(field, axes=(None if target is None else target - out_ndim,))
    for j, axis in enumerate(field.axes):
        if axis is None:
            continue
        target, item = placement[axis + len(shape)]
        n = shape[axis]
        if isinstance(item, int):
            position = item + n if item < 0 else item
            spans[j] = spans[j].remap((0, position, 1), (0, position, 1))
            sizes[j], axes[j] = 1, None
            continue
        start, _, step = item.indices(n)
        spans[j] = spans[j].window(step, -start, 1)
        sizes[j] = len(range(*item.indices(n)))
        axes[j] = None if target is None else target - out_ndim
    result = replace(field, spans=tuple(spans), sizes=tuple(sizes), axes=tuple(axes), flat=False)
    check_output(call, result)
    return result


def _inner(shape: tuple[int, ...]) -> list[int]:
    """Row-major distance between neighbours along each axis: ``prod(shape[a + 1:])``."""
    return [math.prod(shape[a + 1 :]) for a in range(len(shape))]


def _slots(field: Field, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(inner, size)`` of every spatial dim in a row-major tensor of ``shape``."""
    inner = _inner(shape)
    if field.flat:
        axis = field.axes[0]
        if axis is None:
            raise Unsupported("flattened spatial positions were dropped")
        base = inner[axis + len(shape)]
        return [(base * math.prod(field.sizes[j + 1 :]), n) for j, n in enumerate(field.sizes)]
    return [
        (0 if axis is None else inner[axis + len(shape)], n) for axis, n in zip(field.axes, field.sizes, strict=True)
    ]


@TABLE.register(
    T.view, T.reshape, T.view_as, T.reshape_as, torch.reshape, torch.flatten, T.flatten, torch.unflatten,
    T.unflatten, torch.squeeze, T.squeeze, T.squeeze_, torch.unsqueeze, T.unsqueeze, T.unsqueeze_,
    nn.Flatten, nn.Unflatten,
)  # fmt: skip
def reshape(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Row-major reshapes, followed from the input and output shapes (module docstring)."""
    field = data_operand(call, operands)
    source, target = call.input.shape, call.output.shape
    slots = _slots(field, source)
    inner = _inner(target)
    where = {(inner[b], target[b]): b - len(target) for b in range(len(target))}
    moving = [j for j, (_, n) in enumerate(slots) if n > 1]
    if all(slots[j] in where for j in moving):
        axes = tuple(where.get(slot) if slot[1] > 1 else None for slot in slots)
        return replace(field, axes=axes, flat=False)
    if moving:
        last = slots[moving[-1]]
        contiguous = all(slots[a][0] == slots[b][0] * slots[b][1] for a, b in itertools.pairwise(moving))
        size = math.prod(slots[j][1] for j in moving)
        if contiguous and (last[0], size) in where:
            return replace(field, axes=(where[(last[0], size)],), flat=True)
    for j in moving:
        low, n = slots[j]
        if any(inner[b] <= low and low * n <= inner[b] * target[b] for b in range(len(target))):
            return Marker.GLOBAL  # spatial positions merged into features (a classifier head)
    raise Unsupported(f"a reshape {source} -> {target} splits a spatial dim")


def _permutation(call: OpCall, ndim: int) -> list[int]:
    target = call.target
    if target in (torch.permute, T.permute):
        dims = arg(call, "dims", 0)  # one tuple, by name or as the first positional
        if dims is None or isinstance(dims, int):  # x.permute(0, 2, 3, 1): the dims are the positionals
            dims = call.attrs.get("args", ())
        return [d % ndim for d in dims]
    if target in (torch.t, T.t):
        first, second = 0, 1
    else:
        first = int(arg(call, "dim0", 0, arg(call, "axis0", 0, 0)))
        second = int(arg(call, "dim1", 1, arg(call, "axis1", 1, 1)))
    order = list(range(ndim))
    order[first % ndim], order[second % ndim] = order[second % ndim], order[first % ndim]
    return order


@TABLE.register(
    torch.permute, T.permute, torch.transpose, T.transpose, torch.swapaxes, T.swapaxes, torch.swapdims,
    T.swapdims, torch.t, T.t,
)  # fmt: skip
def permute(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """``permute``/``transpose``: each spatial dim moves to its new axis."""
    field = data_operand(call, operands)
    ndim = call.input.ndim
    order = _permutation(call, ndim)
    axes = tuple(None if a is None else order.index(a + ndim) - ndim for a in field.axes)
    result = replace(field, axes=axes)
    check_output(call, result)
    return result


def _dims(value: Any, ndim: int) -> list[int]:
    if value is None or value == () or value == []:
        return list(range(ndim))
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


@TABLE.register(
    torch.mean, T.mean, torch.sum, T.sum, torch.amax, T.amax, torch.amin, T.amin, torch.std, T.std, torch.var,
    T.var, torch.logsumexp, T.logsumexp, torch.nansum, torch.nanmean,
)  # fmt: skip
def reduction(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Reductions mix every position along ``dim`` (all dims when absent); ``keepdim`` keeps the axes."""
    field = data_operand(call, operands)
    ndim = call.input.ndim
    dims = _dims(arg(call, "dim", 0), ndim)
    keepdim = bool(arg(call, "keepdim", 1, False))
    return _checked(call, mix(field, dims, ndim, removed=not keepdim))


def _checked(call: OpCall, outcome: Outcome) -> Outcome:
    if isinstance(outcome, Field):
        check_output(call, outcome)
    return outcome


@TABLE.register(
    F.softmax, F.log_softmax, F.softmin, torch.softmax, torch.log_softmax, T.softmax, T.log_softmax,
    nn.Softmax, nn.LogSoftmax, nn.Softmin,
)  # fmt: skip
def softmax(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Softmax mixes every position along ``dim``."""
    field = data_operand(call, operands)
    dim = arg(call, "dim", 0)
    if dim is None:
        raise Unsupported("softmax with an implicit dim")
    return _checked(call, mix(field, [int(dim)], call.input.ndim))


@TABLE.register(
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, F.batch_norm, nn.InstanceNorm1d,
    nn.InstanceNorm2d, nn.InstanceNorm3d, F.instance_norm, nn.GroupNorm, F.group_norm, nn.LayerNorm, F.layer_norm,
    *((nn.RMSNorm, F.rms_norm) if hasattr(nn, "RMSNorm") else ()),
)  # fmt: skip
def normalization(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Normalisation layers are pointwise: their statistics (means, variances over positions)
    rescale features without moving them, so they are not counted as spatial mixing (the usual
    convention). Where the statistics are taken over positions — batch norm in training or without
    running statistics, group and instance norm, layer/RMS norm over spatial axes — the field is
    marked (``Field.statistics``): the gradient does reach every position."""
    field = union(call, operands)
    return replace(field, statistics=True) if _statistics_over_positions(call, field) else field


def _statistics_over_positions(call: OpCall, field: Field) -> bool:
    target = call.target
    if target in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, F.batch_norm):
        running = call.attrs.get("running_mean") is not None or call.attrs.get("track_running_stats", False)
        return bool(arg(call, "training", 4, call.training)) or not running
    if target in (nn.LayerNorm, F.layer_norm, *((nn.RMSNorm, F.rms_norm) if hasattr(nn, "RMSNorm") else ())):
        normalized = arg(call, "normalized_shape", 0, ())
        count = len(normalized) if isinstance(normalized, (tuple, list)) else 1
        return any(axis is not None and axis >= -count for axis in field.axes)
    return True  # group and instance norm: per sample and channel, over positions


@TABLE.register(nn.Linear, F.linear)
def linear(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Linear mixes every position along the last axis (the features)."""
    field = data_operand(call, operands)
    return _checked(call, mix(field, [-1], call.input.ndim))


@TABLE.register(
    torch.matmul, torch.mm, torch.bmm, operator.matmul, operator.imatmul, T.matmul, T.mm, T.bmm, T.__matmul__,
)  # fmt: skip
def matmul(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """``[.., m, k] @ [.., k, n]``: positions along the contracted axis (``k``) mix (global); a field
    on ``m`` (left operand) or ``n`` (right operand) is kept; fields on both pair every position with
    every other (attention scores ``q @ kᵀ``): global."""
    if len(call.inputs) < 2 or min(spec.ndim for spec in call.inputs[:2]) < 2:
        raise Unsupported("matmul of a vector")
    left, right = call.inputs[:2]
    outcomes: list[Operand] = []
    for operand in operands:
        shape = operand.spec.shape if operand.spec is not None else None
        roles = [role for role, spec in (("left", left), ("right", right)) if spec.shape == shape]
        if len(roles) != 1 and len(operands) != 2:
            raise Unsupported("cannot tell which matmul operand depends on the input")
        role = roles[0] if len(roles) == 1 else ("left" if operand is operands[0] else "right")
        mixed = mix(operand.field, [-1 if role == "left" else -2], operand.spec.ndim if operand.spec else 2)
        if mixed is Marker.GLOBAL:
            return Marker.GLOBAL
        assert isinstance(mixed, Field)
        outcomes.append(Operand(mixed, operand.spec))
    if len({(o.field.axes, o.field.flat) for o in outcomes}) > 1:
        return Marker.GLOBAL  # all pairs of positions (attention scores ``q @ kᵀ``)
    return union(call, outcomes)


@TABLE.register(F.scaled_dot_product_attention)
def attention(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Attention mixes every position along the sequence axis (``-2``) of keys and values."""
    return _attend(call, operands, sequence=-2)


@TABLE.register(nn.MultiheadAttention)
def multihead_attention(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """MultiheadAttention mixes every position along the sequence axis and the embedding."""
    batched = call.input.ndim == 3
    sequence = -2 if call.get("batch_first", False) or not batched else -3
    return _attend(call, operands, sequence=sequence)


def _attend(call: OpCall, operands: tuple[Operand, ...], sequence: int) -> Outcome:
    kept: list[Operand] = []
    for operand in operands:
        mixed = mix(operand.field, [sequence, -1], operand.spec.ndim if operand.spec else call.input.ndim)
        if mixed is Marker.GLOBAL:
            return Marker.GLOBAL
        assert isinstance(mixed, Field)
        kept.append(Operand(mixed, operand.spec))
    return union(call, kept)
