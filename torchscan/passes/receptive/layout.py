"""Receptive-field rules of pointwise ops, merges, views, indexing and mixing ops.

- Pointwise ops and merges (``+``, ``*``, ``torch.cat`` along a non-spatial axis…): per output
  unit, the hull ``[min L, max R]`` of the operands' fields (the union of the paths).
- Views: a row-major reshape is followed from the shapes alone — a spatial dim of size ``n`` whose
  elements sit ``inner`` apart stays a dim if the output has an axis with the same ``(inner, n)``;
  a dim of size 1 too, on the size-1 axis of that ``inner`` at the same place from the right
  (a window after a round trip still moves it: ``flatten(2).unflatten(2, spatial)`` of an
  ``n = 1`` dim, then a padded convolution); the spatial dims flattened together (size-1 dims
  included) become one token axis (and can be split back) — a window or crop over tokens that run
  along one dim only (the others of size 1) is one over that dim; a size-1 dim left without an
  axis is squeezed away; merged with other axes (``flatten(1)`` before a classifier) the field
  is global; split, it is unknown. ``squeeze``/``unsqueeze`` remove and insert the axes their
  ``dim`` names; ``permute``/``transpose`` move the axes; indexing crops (``x[..., a:b:s]`` is a
  window with ``k = 1``, ``s``, ``p = −a``) or selects.
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
from torch.nn.attention.flex_attention import flex_attention

from torchscan.ops import DEFAULT_REGISTRY
from torchscan.ops.shape import index_write_arguments
from torchscan.ops.spectral import TABLE as SPECTRAL
from torchscan.ops.spectral import transformed_dims
from torchscan.passes.receptive.geometry import Field, Marker, Span, Unsupported
from torchscan.passes.receptive.table import Operand, Outcome, RuleTable, arg, check_output, mix, token_dim, union
from torchscan.passes.receptive.windows import data_operand
from torchscan.records import OpCall, TensorSpec

__all__ = ["TABLE"]

TABLE = RuleTable("layout")

T = torch.Tensor


_NO_FORMULA_POINTWISE = (
    nn.PReLU, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid, nn.GLU, F.softsign, F.logsigmoid, F.prelu, F.glu,
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
    source, index = _indexing(call)
    if not isinstance(source, TensorSpec):
        check_output(call, field)
        return field
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
        return _index_tokens(call, field, placement, shape)
    for j, axis in enumerate(field.axes):
        if axis is None:
            continue
        target, item = placement[axis + len(shape)]
        spans[j], sizes[j] = _indexed(spans[j], item, shape[axis])
        axes[j] = None if target is None else target - out_ndim
    result = replace(field, spans=tuple(spans), sizes=tuple(sizes), axes=tuple(axes), flat=False)
    check_output(call, result)
    return result


@TABLE.register(operator.setitem, T.__setitem__)
def index_write(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """``x[index] = value``: per unit, the hull of the fields of the tensor written and of the value (a
    merge), where the index keeps every spatial position (a write into channels, or into whole rows of
    tokens laid out on another axis); a write into part of the spatial grid, or by tensors or masks,
    is refused."""
    try:
        _, index, _ = index_write_arguments(call)
    except ValueError as error:
        raise Unsupported(str(error)) from error
    items = index if isinstance(index, tuple) else (index,)
    if any(
        isinstance(item, bool) or not (item is None or item is Ellipsis or isinstance(item, (int, slice)))
        for item in items
    ):
        raise Unsupported("an index write by tensors or masks")
    shape = call.output.shape
    taken = sum(isinstance(item, (int, slice)) for item in items)
    per_axis: list[Any] = []
    for item in items:
        if item is Ellipsis:
            per_axis += [slice(None)] * (len(shape) - taken)
        elif item is not None:
            per_axis.append(item)
    per_axis += [slice(None)] * (len(shape) - len(per_axis))
    for operand in operands:
        for axis in operand.field.axes:
            if axis is None:
                continue
            item, size = per_axis[axis], shape[axis]
            if not (isinstance(item, slice) and item.indices(size) == (0, size, 1)):
                raise Unsupported("a write into part of the spatial grid")
    return union(call, operands)


def _indexing(call: OpCall) -> tuple[Any, Any]:
    """What a getitem call indexes and its index, in any of its spellings: ``operator.getitem(a, b)``
    bound by name (fx), ``Tensor.__getitem__`` as a method (a recorded forward: ``self`` is the call's
    first input, the index its first argument) or unbound (``self`` and the index as arguments)."""
    if "a" in call.attrs:
        return call.attrs["a"], call.attrs.get("b")
    args = call.attrs.get("args", ())
    if call.kind == "function":
        return (args[0] if args else None), (args[1] if len(args) > 1 else None)
    return (call.inputs[0] if call.inputs else None), (args[0] if args else None)


def _indexed(span: Span, item: int | slice, n: int) -> tuple[Span, int]:
    """One axis of ``n`` units indexed: an int selects unit ``q`` (``a = b = q``, size 1, the axis
    goes); a slice ``a:b:s`` crops, a window ``k = 1``, ``s``, ``p = −a``."""
    if isinstance(item, int):
        position = item + n if item < 0 else item
        return span.remap((0, position, 1), (0, position, 1)), 1
    start, _, step = item.indices(n)
    return span.window(step, -start, 1), len(range(*item.indices(n)))


def _index_tokens(
    call: OpCall, field: Field, placement: dict[int, tuple[int | None, Any]], shape: tuple[int, ...]
) -> Field:
    """Indexing a field flattened into tokens: a slice keeping every token keeps the field (on the
    slice's output axis); a crop or a selection is one of the dim the tokens run along
    (:func:`~torchscan.passes.receptive.table.token_dim`: every other dim has size 1), else refused."""
    axis = field.axes[0]
    if axis is None:
        return field
    n = shape[axis]
    target, item = placement[axis + len(shape)]
    spans, sizes = list(field.spans), list(field.sizes)
    if not (isinstance(item, slice) and item.indices(n) == (0, n, 1)):
        j = token_dim(field)
        if j is None:
            raise Unsupported("indexing into flattened spatial positions")
        spans[j], sizes[j] = _indexed(spans[j], item, n)
    if target is None:  # a selected token: every dim has size 1 and no axis
        result = replace(field, spans=tuple(spans), sizes=tuple(sizes), axes=(None,) * len(sizes), flat=False)
    else:
        result = replace(field, spans=tuple(spans), sizes=tuple(sizes), axes=(target - call.output.ndim,))
    check_output(call, result)
    return result


def _keys(shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Row-major identity of each axis of ``shape``: ``(inner, n, ones)`` — ``inner = prod(shape[a + 1:])``
    (the distance between neighbours along it), ``n`` its size and, for a size-1 axis, ``ones`` the
    number of size-1 axes right after it (0 for a larger axis). An axis of size ``n > 1`` is told by
    ``(inner, n)``; size-1 axes of one ``inner`` form one run of neighbours, told apart by their place
    from the run's right end (right-aligned, as the field's negative axes)."""
    keys = []
    for a, n in enumerate(shape):
        ones = 0
        while n == 1 and a + 1 + ones < len(shape) and shape[a + 1 + ones] == 1:
            ones += 1
        keys.append((math.prod(shape[a + 1 :]), n, ones))
    return keys


def _expanded(field: Field, shape: tuple[int, ...]) -> tuple[tuple[int, ...], list[int | None]]:
    """The tensor's shape with a flattened token axis expanded into the spatial dims (row-major), and
    the axis of each dim in it (None: a size-1 dim squeezed away)."""
    if not field.flat:
        return shape, [None if axis is None else axis + len(shape) for axis in field.axes]
    axis = field.axes[0]
    if axis is None:
        raise Unsupported("flattened spatial positions were dropped")
    a = axis + len(shape)
    return (*shape[:a], *field.sizes, *shape[a + 1 :]), [a + j for j in range(len(field.sizes))]


def _token_axis(keys: list[tuple[int, int, int]], where: dict[tuple[int, int, int], int]) -> int | None:
    """The output axis holding the dims of ``keys`` flattened together, row-major: they are contiguous
    (``inner`` of each = ``inner · n`` of the next) and an output axis has the last one's ``inner``
    and the product of their sizes."""
    if not keys or any(a[0] != b[0] * b[1] for a, b in itertools.pairwise(keys)):
        return None
    size = math.prod(key[1] for key in keys)
    return where.get((keys[-1][0], size, keys[-1][2] if size == 1 else 0))


@TABLE.register(
    T.view, T.reshape, T.view_as, T.reshape_as, torch.reshape, torch.flatten, T.flatten, torch.unflatten,
    T.unflatten, nn.Flatten, nn.Unflatten,
)  # fmt: skip
def reshape(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """Row-major reshapes, followed from the input and output shapes (module docstring), first that
    applies: every dim on an output axis of the same key (:func:`_keys`), size-1 dims included;
    all of them flattened into one axis (tokens); the dims of size > 1 on their axes, the size-1
    dims left without one squeezed away; the dims of size > 1 flattened into one axis; global when
    a dim of size > 1 merges with other axes; else refused (a dim split)."""
    field = data_operand(call, operands)
    shape, placed = _expanded(field, call.input.shape)
    target = call.output.shape
    source_keys = _keys(shape)
    keys = [None if a is None else source_keys[a] for a in placed]
    where = {key: b - len(target) for b, key in enumerate(_keys(target))}
    kept = [key for key in keys if key is not None]
    moving = [key for key in kept if key[1] > 1]
    if all(key in where for key in kept):
        return replace(field, axes=tuple(None if key is None else where[key] for key in keys), flat=False)
    token = _token_axis(kept, where)
    if token is not None:
        return replace(field, axes=(token,), flat=True)
    if all(key in where for key in moving):  # size-1 dims without an axis of their own: squeezed away
        return replace(field, axes=tuple(None if key is None else where.get(key) for key in keys), flat=False)
    token = _token_axis(moving, where)
    if token is not None:
        return replace(field, axes=(token,), flat=True)
    for low, n, _ in moving:
        if any(inner <= low and low * n <= inner * m for inner, m, _ in where):
            return Marker.GLOBAL  # spatial positions merged into features (a classifier head)
    raise Unsupported(f"a reshape {call.input.shape} -> {target} splits a spatial dim")


def _moved(axis: int | None, removed: set[int], ndim: int) -> int | None:
    """A negative axis of a rank-``ndim`` tensor once the (non-negative) axes ``removed`` are gone:
    None if it is one of them, else ``axis + #{r ∈ removed : r > axis + ndim}``."""
    if axis is None or axis + ndim in removed:
        return None
    return axis + sum(r > axis + ndim for r in removed)


@TABLE.register(torch.squeeze, T.squeeze, T.squeeze_)
def squeeze(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """``squeeze(dim)``: the axes among ``dim`` of size 1 (every size-1 axis when ``dim`` is absent)
    are removed — a spatial dim on one of them is squeezed away (no axis), the axes left of a
    removed one move one closer to the end (:func:`_moved`)."""
    field = data_operand(call, operands)
    shape = call.input.shape
    ndim = len(shape)
    dim = arg(call, "dim", 0)
    dims = range(ndim) if dim is None else [int(dim)] if isinstance(dim, int) else [int(d) for d in dim]
    removed = {d % ndim for d in dims if shape[d % ndim] == 1}
    axes = tuple(_moved(axis, removed, ndim) for axis in field.axes)
    if field.flat and axes[0] is None:  # the token axis held one token: every dim has size 1
        result = replace(field, axes=(None,) * len(field.sizes), flat=False)
    else:
        result = replace(field, axes=axes)
    check_output(call, result)
    return result


@TABLE.register(torch.unsqueeze, T.unsqueeze, T.unsqueeze_)
def unsqueeze(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """``unsqueeze(dim)``: a size-1 axis inserted at output axis ``q = dim mod (ndim + 1)``; a negative
    axis ``a`` moves to ``a − 1`` when left of it (``a + ndim < q``), else stays."""
    field = data_operand(call, operands)
    ndim = call.input.ndim
    new = int(arg(call, "dim", 0)) % (ndim + 1)
    axes = tuple(None if a is None else (a - 1 if a + ndim < new else a) for a in field.axes)
    result = replace(field, axes=axes)
    check_output(call, result)
    return result


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
    return _permuted(call, data_operand(call, operands), _permutation(call, call.input.ndim))


def _permuted(call: OpCall, field: Field, order: list[int]) -> Field:
    """``field`` of a rank-``n`` input whose dims move as ``order`` says (output dim ``j`` is input dim
    ``order[j]``), checked against the call's output."""
    ndim = len(order)
    result = replace(field, axes=tuple(None if a is None else order.index(a + ndim) - ndim for a in field.axes))
    check_output(call, result)
    return result


_SAME_POSITIONS = frozenset({"real", "imag", "data"})
"""Attributes of a tensor that are views of it element for element (a complex tensor's parts, ``.data``)."""


@TABLE.register(getattr)
def attribute(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """An attribute read of a tensor (fx's ``getattr`` node): ``.real``, ``.imag`` and ``.data`` keep every
    position, ``.T`` reverses the dims and ``.mT`` (``.mH``) swaps the last two; any other is not followed."""
    name = arg(call, "name", 0)
    field = data_operand(call, operands)
    ndim = call.input.ndim
    if name in _SAME_POSITIONS:
        return _checked(call, field)
    if name in ("T", "mT", "H", "mH") and ndim >= 2:
        order = list(reversed(range(ndim))) if name in ("T", "H") else [*range(ndim - 2), ndim - 1, ndim - 2]
        return _permuted(call, field, order)
    raise Unsupported(f"an attribute {name!r} of a tensor")


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


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, F.batch_norm, torch.batch_norm)
"""Batch norm's spellings (``torch.batch_norm``, what ``F.batch_norm`` calls: its arguments read by name)."""


@TABLE.register(
    *_BATCH_NORMS, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, F.instance_norm, torch.instance_norm,
    nn.GroupNorm, F.group_norm, nn.LayerNorm, F.layer_norm,
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
    if target in _BATCH_NORMS:
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


@TABLE.register(*(target for target, _ in SPECTRAL.items()))
def fourier(call: OpCall, operands: tuple[Operand, ...]) -> Outcome:
    """A discrete Fourier transform mixes every position along the dims it transforms: global where those
    are the spatial dims (a global filter over a token grid), kept where they are others (channels)."""
    field = data_operand(call, operands)
    return _checked(call, mix(field, transformed_dims(call), call.input.ndim))


@TABLE.register(F.scaled_dot_product_attention, flex_attention)
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
