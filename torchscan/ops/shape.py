"""Views, metadata and data movement: reshape, permute, indexing, cat/stack, Identity.

Views and metadata-only ops cost ``0 / 0 / 0``. A copy that only moves data (``contiguous()``
or ``reshape`` of a non-contiguous tensor, ``clone``, ``roll``, ``F.pad``, a dtype cast) costs
``DMAs = N_in + N_out`` and no FLOPs; a cast to the same dtype (or only to another device) is
free; ``cat``/``stack`` cost ``DMAs = 2·N_out``; a tensor factory (``zeros``, ``arange``…) writes
its output: ``DMAs = N_out``. ``meshgrid`` and ``tensor_split`` return views (free); ``one_hot``
writes its output and reads the indices; ``x[index] = value`` writes what the index selects.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.common import argument
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall, TensorSpec

TABLE = FormulaTable("shape")

T = torch.Tensor
aten = torch.ops.aten


@TABLE.register(
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    operator.getitem,
    torch.flatten,
    torch.permute,
    torch.transpose,
    torch.swapaxes,
    torch.squeeze,
    torch.unsqueeze,
    torch.chunk,
    torch.split,
    torch.unbind,
    torch.narrow,
    torch.select,
    torch.t,
    torch.movedim,
    T.view,
    T.view_as,
    T.flatten,
    T.permute,
    T.transpose,
    T.swapaxes,
    T.squeeze,
    T.unsqueeze,
    T.chunk,
    T.split,
    T.unbind,
    T.narrow,
    T.select,
    T.t,
    T.movedim,
    T.expand,
    T.expand_as,
    T.unflatten,
    T.__getitem__,
    T.size,
    T.dim,
    T.numel,
    T.detach,
    torch.detach,
    T.unfold,
    torch.broadcast_to,
    T.broadcast_to,
    torch.atleast_1d,
    torch.atleast_2d,
    torch.atleast_3d,
    T.dim_order,
    T.requires_grad_,
    T.is_contiguous,
    T.is_floating_point,
    torch.is_floating_point,
    T.stride,
    T.data_ptr,
    T.element_size,
    T.get_device,
    aten.view.default,
    aten._unsafe_view.default,
    aten.permute.default,
    aten.transpose.int,
    aten.t.default,
    aten.unsqueeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.expand.default,
    aten.select.int,
    aten.slice.Tensor,
    aten.split.Tensor,
    aten.split_with_sizes.default,
    aten.unbind.int,
    aten.chunk.default,
    aten.alias.default,
    aten.detach.default,
    aten.flatten.using_ints,
    aten.unflatten.int,
    torch.tensor_split,
    T.tensor_split,
    torch.hsplit,
    torch.vsplit,
    torch.dsplit,
    T.hsplit,
    T.vsplit,
    T.dsplit,
    torch.meshgrid,
    torch._VF.meshgrid,  # what torch.meshgrid of a list calls (a list of proxies reaches it)
    aten.tensor_split.sections,
    aten.tensor_split.indices,
    aten.tensor_split.tensor_indices_or_sections,
    aten.meshgrid.default,
    aten.meshgrid.indexing,
    torch.view_as_real,
    torch.view_as_complex,
    T.transpose_,
    T.t_,
    T.squeeze_,
    T.unsqueeze_,
    T.detach_,
    torch.unflatten,
    torch.numel,
    torch.get_device,
    aten.view_as_real.default,
    aten.view_as_complex.default,
    aten.unsafe_split.Tensor,  # a TorchScript GRU's gates, split without the views' version checks
    aten.unsafe_split_with_sizes.default,
    aten.unsafe_chunk.default,
    aten.transpose_.default,
    aten.t_.default,
    aten.unsqueeze_.default,
    aten.squeeze_.dim,
    aten.detach_.default,
    aten.as_strided_.default,
    getattr,
)
@TABLE.register(
    *(torch.diagonal, T.diagonal, torch.adjoint, T.adjoint, torch.real, torch.imag, torch.conj, T.conj),
    *(torch.broadcast_tensors, aten.broadcast_tensors.default),
    *(torch.resolve_conj, T.resolve_conj, torch.resolve_neg, T.resolve_neg, torch.positive, T.positive),
)
def view(call: OpCall) -> Cost:
    """Views and metadata: ``0 / 0 / 0`` (``diagonal``, ``adjoint``, ``real``/``imag`` of a complex tensor, the lazy
    conjugation ``conj``, ``positive``, ``broadcast_tensors``' expanded views too). ``tensor_split``/``hsplit``
    return views; ``meshgrid`` returns expanded (stride-0) views of its inputs, so it is free too: the op that
    materialises them (``reshape``/``contiguous`` of the non-contiguous view, an arithmetic op) pays the
    ``N_out`` reads and writes. ``view_as_real`` and ``view_as_complex`` reinterpret a complex tensor's
    storage; ``transpose_``, ``squeeze_``… change a tensor's view of its storage in place. ``getattr`` (fx's
    node for ``x.T``, ``torch.sort(x).values``, a field of a returned structure) reads an attribute: a view or
    an element of the structure."""
    return Cost()


TABLE.declare(torch.broadcast_tensors, saves=Saves.NOTHING)  # expanded views: the gradient needs shapes only
TABLE.declare(nn.Identity, T.detach, torch.detach, T.requires_grad_, pointwise=True)
TABLE.declare(nn.Identity, returns_input=lambda module: True)  # ``forward`` returns its argument, whatever it is


TABLE.declare(
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    torch.flatten,
    torch.permute,
    torch.transpose,
    torch.swapaxes,
    torch.squeeze,
    torch.unsqueeze,
    torch.chunk,
    torch.split,
    torch.unbind,
    torch.narrow,
    torch.select,
    torch.t,
    torch.movedim,
    T.view,
    T.view_as,
    T.flatten,
    T.permute,
    T.transpose,
    T.swapaxes,
    T.squeeze,
    T.unsqueeze,
    T.chunk,
    T.split,
    T.unbind,
    T.narrow,
    T.select,
    T.t,
    T.movedim,
    T.expand,
    T.expand_as,
    T.unflatten,
    T.size,
    T.dim,
    T.numel,
    T.detach,
    torch.detach,
    torch.view_as_real,
    torch.view_as_complex,
    getattr,
    saves=Saves.NOTHING,
)
TABLE.declare(operator.getitem, T.__getitem__, saves=Saves.INDEX)


@TABLE.register(operator.setitem, T.__setitem__)
def index_write(call: OpCall) -> Cost:
    """``x[index] = value`` (in place, as ``x[index].copy_(value)`` or ``index_put_``): no arithmetic,
    ``FLOPs = MACs = 0``; ``DMAs = N_sel + N_value + N_index``: the ``N_sel`` elements of ``x`` the index
    selects written (:func:`selected_elements`), a tensor value's elements read (a number: none), and the
    elements of the index tensors read."""
    destination, index, value = index_write_arguments(call)
    if not isinstance(destination, TensorSpec):
        raise ValueError("the indexed object is not a tensor")
    selected = selected_elements(destination.shape, index)
    reads = value.numel if isinstance(value, TensorSpec) else 0
    items = index if type(index) is tuple else (index,)
    indices = sum(item.numel for item in items if isinstance(item, TensorSpec))
    return Cost(dmas=selected + reads + indices)


TABLE.declare(operator.setitem, T.__setitem__, saves=Saves.INDEX_WRITE)


def index_write_arguments(call: OpCall) -> tuple[Any, Any, Any]:
    """``(x, index, value)`` of an index write: ``operator.setitem``'s three arguments (bound by name, or
    positional), or the tensor method's ``self`` (the call's first input) and its two arguments; a
    ``ValueError`` for a call of another structure."""
    positional = tuple(call.attrs.get("args", ()))
    if call.kind == "method":
        arguments = (call.inputs[0] if call.inputs else None, *positional)
    else:
        arguments = positional if set(call.attrs) == {"args"} else tuple(call.attrs.values())
    if len(arguments) != 3:
        raise ValueError(f"an index write of {len(arguments)} arguments")
    destination, index, value = arguments
    return destination, index, value


def selected_elements(shape: tuple[int, ...], index: Any) -> int:
    """Elements of a tensor of ``shape`` that ``x[index]`` selects, from the described index (a tuple
    of items, or one item): an integer takes one position of its dimension, a slice ``len(range(*
    slice.indices(size)))``, ``None`` and ``True`` add a dimension of 1 (``False`` of 0), ``...`` the
    dimensions no item takes; integer index tensors (and nested tuples: lists of integers) broadcast
    together and take ``prod(broadcast shape)`` positions of the dimensions they index; a boolean mask
    over ``k`` dimensions is the indices of its true elements, counted as every element it covers (how
    many are true is data: an upper bound), broadcast with the others.
    A list of integers as the whole index reads as a tuple of integers (a described call holds lists
    as tuples): ``x[[0, 2]]`` is counted as ``x[0, 2]``."""
    items = index if type(index) is tuple else (index,)
    taken = sum(_dims_taken(item) for item in items if item is not Ellipsis)
    if taken > len(shape):
        raise ValueError(f"an index of {taken} dimensions for a tensor of shape {tuple(shape)}")
    count, position, advanced = 1, 0, []
    for item in items:
        if item is Ellipsis:
            rest = len(shape) - taken
            count *= math.prod(shape[position : position + rest])
            position += rest
        elif item is None or type(item) is bool:
            count *= 0 if item is False else 1
        elif type(item) is int:
            position += 1
        elif type(item) is slice:
            count *= len(range(*item.indices(shape[position])))
            position += 1
        elif isinstance(item, TensorSpec) and item.dtype in _MASKS:  # indices of its true elements, broadcast
            advanced.append((math.prod(shape[position : position + item.ndim]),))
            position += item.ndim
        elif isinstance(item, (TensorSpec, tuple)):
            advanced.append(item.shape if isinstance(item, TensorSpec) else _nested_shape(item))
            position += 1
        else:
            raise ValueError(f"an index item of type {type(item).__name__}")
    if advanced:
        count *= math.prod(torch.broadcast_shapes(*advanced))
    return count * math.prod(shape[position:])


_MASKS = frozenset({torch.bool, torch.uint8})
"""Dtypes of an index tensor that selects by mask (one index item per dimension it covers)."""


def _dims_taken(item: Any) -> int:
    """Dimensions of the indexed tensor one index item takes."""
    if item is None or type(item) is bool:
        return 0
    if isinstance(item, TensorSpec) and item.dtype in _MASKS:
        return item.ndim
    return 1


def _nested_shape(items: tuple[Any, ...]) -> tuple[int, ...]:
    """The shape of a nested tuple of integers (a list index, as a described call holds it)."""
    inner = _nested_shape(items[0]) if items and type(items[0]) is tuple else ()
    return (len(items), *inner)


@TABLE.register(T.contiguous, torch.reshape, T.reshape, T.reshape_as, aten.reshape.default, aten.contiguous.default)
def maybe_copy(call: OpCall) -> Cost:
    """``contiguous``/``reshape``: free on contiguous data, else a copy: ``DMAs = N_in + N_out``."""
    if not call.inputs or call.input.contiguous:
        return Cost()
    return Cost(dmas=call.input.numel + call.output.numel)


TABLE.declare(T.contiguous, pointwise=True)


TABLE.declare(T.contiguous, torch.reshape, T.reshape, T.reshape_as, saves=Saves.NOTHING)


@TABLE.register(
    torch.cat,
    torch.concat,
    torch.concatenate,
    torch.stack,
    torch.hstack,
    torch.vstack,
    torch.dstack,
    torch.column_stack,
    aten.cat.default,
    aten.stack.default,
)
def concatenate(call: OpCall) -> Cost:
    """cat / stack: ``FLOPs = MACs = 0``, ``DMAs = 2·N_out`` (every element read once, written once)."""
    return Cost(dmas=2 * call.output.numel)


TABLE.declare(torch.cat, torch.concat, torch.concatenate, torch.stack, saves=Saves.CONCAT)


@TABLE.register(T.to, T.type, T.type_as, T.float, T.double, T.half, T.bfloat16, T.cpu, T.cuda, pointwise=True)
@TABLE.register(T.int, T.long, T.short, T.bool, T.byte, T.char, aten._to_copy.default, aten.to.dtype)
def cast(call: OpCall) -> Cost:
    """dtype casts (``.float()``, ``.to(dtype)``…): ``DMAs = N_in + N_out`` when the dtype changes,
    else ``0 / 0 / 0`` (a device move is not counted); ``FLOPs = MACs = 0``."""
    if not call.inputs or not call.outputs or call.input.dtype == call.output.dtype:
        return Cost()
    return Cost(dmas=call.input.numel + call.output.numel)


TABLE.declare(T.to, T.type_as, T.float, T.double, T.half, T.bfloat16, T.type, saves=Saves.NOTHING)
# the integer and bool casts too: autograd does not differentiate them (an attention mask's ``.long()``, ``.bool()``)
TABLE.declare(T.int, T.long, T.short, T.bool, T.byte, T.char, saves=Saves.NOTHING)


@TABLE.register(
    T.clone,
    torch.clone,
    T.copy_,
    torch.roll,
    T.roll,
    torch.flip,
    T.flip,
    torch.fliplr,
    T.fliplr,
    torch.flipud,
    T.flipud,
    torch.rot90,
    T.rot90,
    torch.ravel,
    T.ravel,
    torch.triu,
    T.triu,
    torch.tril,
    T.tril,
    T.triu_,
    T.tril_,
    T.repeat,
    torch.tile,
    T.tile,
    T.repeat_interleave,
    torch.repeat_interleave,
    F.pad,
    torch.constant_pad_nd,
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ZeroPad3d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ConstantPad3d,
    nn.ReflectionPad1d,
    nn.ReflectionPad2d,
    nn.ReflectionPad3d,
    nn.ReplicationPad1d,
    nn.ReplicationPad2d,
    nn.ReplicationPad3d,
    nn.CircularPad1d,
    nn.CircularPad2d,
    nn.CircularPad3d,
    aten.clone.default,
    aten.copy.default,
    aten.repeat.default,
    aten.constant_pad_nd.default,
    aten.pad.default,
    aten.roll.default,
    aten.flip.default,
    aten.copy_.default,
    *(getattr(aten, f"{kind}_pad{d}d").default for kind in ("reflection", "replication") for d in (1, 2, 3)),
)
def copy(call: OpCall) -> Cost:
    """Copies and padding (``clone``, ``roll``, ``flip``, ``rot90``, ``triu``, ``repeat``, ``F.pad`` in every
    mode and the ``*Pad*d`` modules; ``ravel``, a copy of a strided input and free for a contiguous one, as
    ``reshape``): ``FLOPs = MACs = 0``, ``DMAs = N_in + N_out`` (0 for ``ravel`` of a contiguous input)."""
    if call.target in (torch.ravel, T.ravel) and call.input.contiguous:
        return Cost()
    return Cost(dmas=call.input.numel + call.output.numel)


TABLE.declare(T.clone, torch.clone, pointwise=True)


TABLE.declare(T.clone, torch.clone, nn.ZeroPad2d, nn.ConstantPad2d, saves=Saves.NOTHING)
TABLE.declare(F.pad, saves=Saves.PAD)


def pad_keeps_input(call: OpCall) -> bool:
    """Whether autograd keeps the input of ``F.pad``: in ``reflect`` and ``replicate`` modes (``reflection_pad*d``
    and ``replication_pad*d``'s backward take it), not in ``constant`` and ``circular`` ones (sizes only)."""
    return argument(call, "mode", 1, "constant") in ("reflect", "replicate")


@TABLE.register(
    torch.gather,
    T.gather,
    torch.index_select,
    T.index_select,
    torch.take_along_dim,
    T.take_along_dim,
    torch.masked_select,
    T.masked_select,
    aten.gather.default,
    aten.index_select.default,
    aten.index.Tensor,
)
def gather(call: OpCall) -> Cost:
    """Gathers (``gather``, ``index_select``…): each output element is read once and written once,
    plus the index: ``FLOPs = MACs = 0``, ``DMAs = 2·N_out + N_index``."""
    index = sum(spec.numel for spec in call.inputs[1:])
    return Cost(dmas=2 * call.output.numel + index)


@TABLE.register(torch._pack_padded_sequence)
def pack_padded_sequence(call: OpCall) -> Cost:
    """``nn.utils.rnn.pack_padded_sequence``'s op: the ``N_data`` elements of the sequences' valid steps copied
    out of the padded input (its padding never read), and the ``T`` batch sizes written from the ``B`` lengths:
    ``FLOPs = MACs = 0``, ``DMAs = 2·N_data + B + T``."""
    written = [spec.numel for spec in call.outputs[:2]]  # the data, then the batch sizes
    lengths = call.inputs[1].numel if len(call.inputs) > 1 else 0
    return Cost(dmas=2 * written[0] + lengths + sum(written[1:]) if written else lengths)


@TABLE.register(torch._pad_packed_sequence)
def pad_packed_sequence(call: OpCall) -> Cost:
    """``nn.utils.rnn.pad_packed_sequence``'s op: the ``N_data`` packed elements and ``T`` batch sizes read, the
    padded output (``N_out`` elements, its padding filled) and the ``B`` lengths written: ``FLOPs = MACs = 0``,
    ``DMAs = N_data + T + N_out + B``."""
    return Cost(dmas=sum(spec.numel for spec in call.inputs) + sum(spec.numel for spec in call.outputs))


@TABLE.register(torch.index_add, T.index_add, torch.scatter_add, T.scatter_add, inplace=False)
@TABLE.register(T.index_add_, T.scatter_add_, inplace=True)
def scatter_add(call: OpCall, inplace: bool) -> Cost:
    """Scatter-adds (``index_add``, ``scatter_add``; ``_`` spellings in place): one add per source
    element, ``FLOPs = N_src``, ``MACs = 0``; ``DMAs = N_index + N_src + 2·N_src`` (each source
    element read, its destination read and written) ``+ N_self + N_out`` when not in place (the
    destination is copied first). The source is the last tensor argument."""
    rest = call.inputs[1:]
    source = rest[-1].numel if rest else 0
    index = sum(spec.numel for spec in rest[:-1])
    return Cost(flops=source, dmas=index + 3 * source + _copied(call, inplace))


def _copied(call: OpCall, inplace: bool) -> int:
    """The DMAs of an out-of-place write's first copy of its destination: ``N_self + N_out`` (0 in place)."""
    return 0 if inplace else call.inputs[0].numel + call.output.numel


@TABLE.register(torch.scatter, T.scatter, aten.scatter.src, aten.scatter.value, inplace=False)
@TABLE.register(T.scatter_, aten.scatter_.src, aten.scatter_.value, inplace=True)
def scatter(call: OpCall, inplace: bool) -> Cost:
    """``x.scatter(dim, index, src)`` (or a number ``value``): one destination element written per index element,
    read from ``src``: ``FLOPs = MACs = 0``, ``DMAs = N_index·(2 + [src a tensor]) + (N_self + N_out)·[not in
    place]`` (the index read, each element written; an out-of-place scatter copies its destination first). With
    the legacy ``reduce=`` (``"add"``, ``"multiply"``) each write combines with the destination: ``FLOPs =
    N_index`` and the destination element read too (one more DMA per index element)."""
    index = call.inputs[1].numel if len(call.inputs) > 1 else 0
    source = index if len(call.inputs) > 2 else 0
    reduced = argument(call, "reduce", 3) is not None
    return Cost(flops=index if reduced else 0, dmas=2 * index + source + index * reduced + _copied(call, inplace))


@TABLE.register(torch.scatter_reduce, T.scatter_reduce, aten.scatter_reduce.two, inplace=False)
@TABLE.register(T.scatter_reduce_, aten.scatter_reduce_.two, inplace=True)
def scatter_reduce(call: OpCall, inplace: bool) -> Cost:
    """``x.scatter_reduce(dim, index, src, reduce)``: one combine (``sum``, ``prod``, ``amax``, ``amin``: an add,
    multiply or comparison) per index element, and for ``mean`` one divide per output element: ``FLOPs =
    N_index + N_out·[mean]``, ``MACs = 0``, ``DMAs = 4·N_index + (N_self + N_out)·[not in place]`` (index and
    source read, each destination element read and written, as :func:`scatter_add`)."""
    index = call.inputs[1].numel
    mean = argument(call, "reduce", 3) == "mean"
    return Cost(flops=index + call.output.numel * mean, dmas=4 * index + _copied(call, inplace))


@TABLE.register(torch.index_copy, T.index_copy, aten.index_copy.default, inplace=False)
@TABLE.register(T.index_copy_, aten.index_copy_.default, inplace=True)
def index_copy(call: OpCall, inplace: bool) -> Cost:
    """``x.index_copy(dim, index, source)``: the source's slices copied to the indexed positions: ``FLOPs = MACs =
    0``, ``DMAs = N_index + 2·N_source + (N_self + N_out)·[not in place]``."""
    _, index, source = call.inputs[:3]
    return Cost(dmas=index.numel + 2 * source.numel + _copied(call, inplace))


@TABLE.register(torch.index_fill, T.index_fill, aten.index_fill.int_Scalar, aten.index_fill.int_Tensor, inplace=False)
@TABLE.register(T.index_fill_, aten.index_fill_.int_Scalar, aten.index_fill_.int_Tensor, inplace=True)
def index_fill(call: OpCall, inplace: bool) -> Cost:
    """``x.index_fill(dim, index, value)``: the indexed slices of ``x`` along ``dim`` written, ``N_sel =
    N_self / size(dim) · N_index``: ``FLOPs = MACs = 0``, ``DMAs = N_index + N_sel + [value a tensor] + (N_self
    + N_out)·[not in place]``."""
    x, index, *value = call.inputs
    dim = int(argument(call, "dim", 0, 0)) % max(len(x.shape), 1)
    size = x.shape[dim] if x.shape else 1
    selected = x.numel // size * index.numel if size else 0
    return Cost(dmas=index.numel + selected + len(value) + _copied(call, inplace))


@TABLE.register(torch.masked_scatter, T.masked_scatter, aten.masked_scatter.default, inplace=False)
@TABLE.register(T.masked_scatter_, aten.masked_scatter_.default, inplace=True)
def masked_scatter(call: OpCall, inplace: bool) -> Cost:
    """``x.masked_scatter(mask, source)``: source elements copied, in order, to where the mask is true; how many are
    is data, so every element of ``x`` is counted as selected (an upper bound, as a boolean index is):
    ``FLOPs = MACs = 0``, ``DMAs = N_mask + 2·N_self + (N_self + N_out)·[not in place]``."""
    x, mask = call.inputs[:2]
    return Cost(dmas=mask.numel + 2 * x.numel + _copied(call, inplace))


@TABLE.register(torch.index_put, T.index_put, aten.index_put.default, inplace=False)
@TABLE.register(T.index_put_, aten.index_put_.default, inplace=True)
def index_put(call: OpCall, inplace: bool) -> Cost:
    """``x.index_put(indices, values, accumulate)``, ``x[indices] = values`` spelled as a call: the ``N_sel``
    elements the index tensors select (:func:`selected_elements`) written, the values and the indices read;
    with ``accumulate`` each is added to the destination, read too: ``FLOPs = N_sel·[accumulate]``, ``MACs = 0``,
    ``DMAs = N_sel·(1 + [accumulate]) + N_values + N_indices + (N_self + N_out)·[not in place]``."""
    x = call.inputs[0]
    indices = tuple(argument(call, "indices", 0, ()))
    values = argument(call, "values", 1)
    accumulate = bool(argument(call, "accumulate", 2, False))
    selected = selected_elements(x.shape, indices)
    reads = (values.numel if isinstance(values, TensorSpec) else 0) + sum(
        item.numel for item in indices if isinstance(item, TensorSpec)
    )
    return Cost(flops=selected * accumulate, dmas=selected * (1 + accumulate) + reads + _copied(call, inplace))


@TABLE.register(
    torch.zeros,
    torch.ones,
    torch.full,
    torch.empty,
    torch.arange,
    torch.linspace,
    torch.eye,
    torch.zeros_like,
    torch.ones_like,
    torch.full_like,
    torch.empty_like,
    torch.empty_strided,
    torch.rand,
    torch.randn,
    torch.rand_like,
    torch.randn_like,
    torch.randint_like,
    torch.tensor,
    torch.as_tensor,
    T.new_zeros,
    T.new_ones,
    T.new_full,
    T.new_empty,
    T.new_tensor,
    T.zero_,
    T.fill_,
    torch.fill,  # a new tensor of the input's shape, filled
    aten.zeros.default,
    aten.ones.default,
    aten.full.default,
    aten.empty.memory_format,
    aten.empty_strided.default,
    aten.arange.default,
    aten.arange.start,
    aten.arange.start_step,
    aten.zeros_like.default,
    aten.empty_like.default,
    aten.new_zeros.default,
    aten.new_ones.default,
    aten.new_full.default,
    aten.new_empty.default,
    aten.ones_like.default,
    aten.full_like.default,
    aten.fill.Scalar,
    aten.fill.Tensor,
    aten.fill_.Scalar,
    aten.fill_.Tensor,
    aten.zero_.default,
)
def factory(call: OpCall) -> Cost:
    """Tensor factories and fills (``zeros``, ``arange``, ``full_like``, ``fill_``…): they write their
    output: ``FLOPs = MACs = 0``, ``DMAs = N_out``."""
    return Cost(dmas=call.output.numel)


TABLE.register(torch.range, torch.tril_indices, torch.triu_indices, torch.scalar_tensor)(factory)


_WINDOW_FLOPS = {
    torch.hann_window: 4,
    torch.hamming_window: 4,
    torch.bartlett_window: 4,
    torch.blackman_window: 8,
    torch.kaiser_window: 8,
    torch.logspace: 1,
}
"""FLOPs per element of the factories that evaluate a function of the element's index (the index's own arithmetic,
as ``arange``'s, not counted): Hann and Hamming ``α − β·cos(2πk/N)`` (a scale, a cosine, a product, a subtraction),
Bartlett ``1 − |2k/N − 1|`` (4), Blackman ``0.42 − 0.5·cos(2πk/N) + 0.08·cos(4πk/N)`` (two scales, two cosines,
two products, a subtraction, an addition), Kaiser ``I0(β·√(1 − (2k/N − 1)²))/I0(β)`` (8), logspace ``b^(a + k·s)``
(a power)."""


@TABLE.register(*_WINDOW_FLOPS)
def evaluated_factory(call: OpCall) -> Cost:
    """Window functions (``hann_window``…) and ``logspace``: a function of each element's index, ``FLOPs = c·N_out``
    (``c`` of :data:`_WINDOW_FLOPS`: 4 Hann, Hamming and Bartlett, 8 Blackman and Kaiser, 1 logspace), ``MACs = 0``,
    ``DMAs = N_out`` (a factory's)."""
    return Cost(flops=_WINDOW_FLOPS[call.target] * call.output.numel, dmas=call.output.numel)


@TABLE.register(torch.vander)
def vander(call: OpCall) -> Cost:
    """``torch.vander(x, N)``, the powers ``x^0 … x^(N−1)`` of each element, each from the one before (one product
    per output element past the first two columns): ``FLOPs = N_in·max(N − 2, 0)``, ``MACs = 0``,
    ``DMAs = N_in + N_out``."""
    columns = call.output.shape[-1] if call.output.ndim else 1
    return Cost(flops=call.input.numel * max(columns - 2, 0), dmas=call.input.numel + call.output.numel)


TABLE.declare(*_WINDOW_FLOPS, torch.range, torch.tril_indices, torch.triu_indices, torch.scalar_tensor, saves=Saves.NEW)


# new tensors out of place (a ``*_like`` reads only its argument's shape, dtype and device): nothing for a backward
# to keep, and no grad; fills in place (``zero_``, ``fill_``) are left to the ATen-level recording
TABLE.declare(
    *(torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.linspace, torch.eye, torch.tensor),
    *(torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like, torch.empty_strided, torch.rand),
    torch.randn,
    *(torch.rand_like, torch.randn_like, torch.randint_like),
    *(T.new_zeros, T.new_ones, T.new_full, T.new_empty, T.new_tensor),
    saves=Saves.NEW,
)


@TABLE.register(F.one_hot, aten.one_hot.default)
def one_hot(call: OpCall) -> Cost:
    """``F.one_hot`` (zero-filled output, one 1 scattered per index): ``MACs = 0``,
    ``FLOPs = (N_in − 1)·[num_classes = −1]`` (the class count is then the max over the indices),
    ``DMAs = N_in·(1 + [num_classes = −1]) + N_out``."""
    n_in = call.input.numel
    inferred = int(argument(call, "num_classes", 0, -1)) < 0
    return Cost(flops=max(n_in - 1, 0) * inferred, dmas=n_in * (1 + inferred) + call.output.numel)


@TABLE.register(torch.diag, T.diag, torch.diag_embed, T.diag_embed, torch.diagflat, T.diagflat)
def diagonal_matrix(call: OpCall) -> Cost:
    """``diag`` / ``diag_embed`` / ``diagflat``: a matrix of zeros with its diagonal written from the input (a vector
    to a matrix, ``N_out`` written and ``N_in`` read) or a matrix's diagonal copied out (``diag`` of a matrix:
    ``N_out`` read and written): ``FLOPs = MACs = 0``, ``DMAs = N_in + N_out`` (a vector in) or ``2·N_out``."""
    if call.output.ndim < call.input.ndim or (call.target in (torch.diag, T.diag) and call.input.ndim == 2):
        return Cost(dmas=2 * call.output.numel)
    return Cost(dmas=call.input.numel + call.output.numel)


@TABLE.register(torch.take, T.take)
def take(call: OpCall) -> Cost:
    """``take(x, index)``, a gather from the flattened input: the index and the elements it selects read, the
    output written: ``FLOPs = MACs = 0``, ``DMAs = 3·N_out``."""
    return Cost(dmas=3 * call.output.numel)
