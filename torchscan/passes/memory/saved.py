"""What autograd keeps for backward, per op family (:class:`~torchscan.ops.registry.Saves`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx

from torchscan.graph.functions import FUNCTION_NODES, FunctionCall
from torchscan.ops import Saves
from torchscan.ops.dropout import drops
from torchscan.ops.pool import pools_to_one
from torchscan.ops.shape import index_write_arguments, pad_keeps_input
from torchscan.ops.upsample import resample_keeps_input
from torchscan.passes.memory.context import MemoryGraph, memory_graph
from torchscan.passes.memory.families import family_in, saved_extra
from torchscan.passes.memory.internal import NodeMemory, number_divided
from torchscan.passes.memory.peak import same_padding_copy
from torchscan.passes.params import ParamSummary
from torchscan.records import NodeRecord, TensorSpec
from torchscan.records.frozen import frozen_record

__all__ = ["saved_for_backward"]

Kept = tuple[tuple[Any, ...], int | None]
"""(storage keys kept, extra bytes kept or None)."""

Operand = tuple[tuple[Any, ...], bool]
"""One node a call reads, in argument order (first appearance): (its storage keys, whether it requires grad)."""

Rule = Callable[[NodeRecord, tuple[Operand, ...], tuple[Any, ...], bool], Kept]
"""(node, the nodes it reads, output keys, has trainable weights) -> what the node saves."""


def _keys(operands: tuple[Operand, ...]) -> tuple[Any, ...]:
    return tuple(key for keys, _ in operands for key in keys)


def _weighted(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    """Its activation input where its weights are trained (``dL/dW`` reads it); a convolution with
    ``padding="same"`` whose total padding is odd along some dim runs on a padded copy of its input
    (:func:`~torchscan.passes.memory.peak.same_padding_copy`), which it keeps instead (extra bytes)."""
    if not weights and record.op == "call_module":
        return (), None
    copy = same_padding_copy(record)
    if copy:
        return (), copy
    return _keys(operands), None


def _inputs(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    return _keys(operands), None


def _factors(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    """A product of two tensors keeps each factor when the other requires grad (autograd saves only
    what the gradients it will compute read: ``dL/da = g·b``); one tensor read twice (``x * x``) is
    kept; a product with a number keeps nothing; more operands keep every input. In place (``x *= y``),
    the copy of ``x`` autograd makes before overwriting it (extra bytes ``N_out``·itemsize), not ``x``'s
    storage, which then holds the result."""
    tensors = len(record.call.inputs) if record.call is not None else 0
    if tensors < 2:
        return (), None
    if len(operands) != 2 or tensors != 2:
        return _keys(operands), None
    (a, a_grad), (b, b_grad) = operands
    if _overwritten(outputs, a):  # ``x *= y``: autograd keeps a copy of ``x`` made before it is overwritten
        return (b if a_grad else ()), (_output_bytes(record) if b_grad else None)
    return (a if b_grad else ()) + (b if a_grad else ()), None


def _overwritten(outputs: tuple[Any, ...], operand: tuple[Any, ...]) -> bool:
    """Whether the call wrote its result into ``operand``'s storage (in place: ``x *= y``, ``x /= y``)."""
    return bool(outputs) and set(outputs) <= set(operand)


def _output_bytes(record: NodeRecord) -> int:
    return sum(spec.nbytes for spec in record.outputs[:1])


def _quotient(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    """``a / b``: the divisor (``dL/da = g / b``, ``dL/db = −g·a / b²``), the dividend when the divisor
    requires grad (in place, ``x /= y``: a copy of the dividend made before it is overwritten, extra bytes);
    a tensor divided by a number keeps nothing. A number divided by a tensor (``2 / x``:
    ``x.reciprocal() * 2``, recorded where the capture can be replayed) keeps the reciprocal, a new
    tensor of the output's size."""
    call = record.call
    tensors = len(call.inputs) if call is not None else 0
    if tensors == 1 and call is not None and number_divided(call):
        return (), sum(spec.nbytes for spec in record.outputs[:1])
    if tensors < 2:
        return (), None
    if len(operands) == 1:  # x / x
        return operands[0][0], None
    if len(operands) != 2:
        return _keys(operands), None
    (a, _), (b, b_grad) = operands
    if b_grad and _overwritten(outputs, a):  # ``x /= y``: a copy of ``x`` made before it is overwritten
        return b, _output_bytes(record)
    return (a if b_grad else ()) + b, None


def _index(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    """``x[...]``: the tensors of its index (advanced indexing keeps them; basic indexing reads none).
    An index given as a list is made into a tensor inside the call: recorded where the capture can be
    replayed."""
    return _keys(operands[1:]), None


def _index_write(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    """``x[index] = value``: the tensors of its index (``index_put_`` keeps them), read after the written
    tensor and before the value; a basic index (a view written) keeps nothing. An index holding a tensor
    or a list is recorded where the capture can be replayed."""
    if record.call is None:
        return _keys(operands[1:]), None
    try:
        _, index, _ = index_write_arguments(record.call)
    except ValueError:  # another structure: every operand but the one written (conservative)
        return _keys(operands[1:]), None
    items = index if isinstance(index, tuple) else (index,)
    return _keys(operands[1 : 1 + sum(isinstance(item, TensorSpec) for item in items)]), None


def _input(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    inputs = _keys(operands)
    in_place = bool(outputs) and set(outputs) <= set(inputs)
    if in_place:  # autograd clones the input before overwriting it and keeps the clone, not the storage
        return (), sum(spec.nbytes for spec in record.outputs[:1])
    return inputs, None


def _input_or_result(
    record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool
) -> Kept:
    inputs = _keys(operands)
    in_place = bool(outputs) and set(outputs) <= set(inputs)
    return (outputs if in_place else inputs), None


def _output(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    return outputs, None


def _attention(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    """``flex_attention``: its query, key and value and its result (a log-sum-exp it returns aside: the kernel
    keeps its own, declared with ``saves_extra``)."""
    return _keys(operands) + outputs[:1], None


def _max_pool(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    return _keys(operands), 8 * sum(spec.numel for spec in record.outputs[:1])


def _avg_pool(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    """An average pool keeps its input (its backward kernel takes it), but an adaptive one to size 1, which
    torch runs as a ``mean`` (:func:`~torchscan.ops.pool.pools_to_one`)."""
    call = record.call
    return (() if call is not None and pools_to_one(call) else _keys(operands)), None


def _pad(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    """``F.pad``: its input in ``reflect`` and ``replicate`` modes, else nothing."""
    call = record.call
    return (_keys(operands[:1]) if call is not None and pad_keeps_input(call) else ()), None


def _resample(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    """Interpolation: its input in ``area`` mode to a size other than 1, else nothing."""
    call = record.call
    return (_keys(operands[:1]) if call is not None and resample_keeps_input(call) else ()), None


def _dropout(record: NodeRecord, operands: tuple[Operand, ...], outputs: tuple[Any, ...], weights: bool) -> Kept:
    call = record.call
    if call is not None and drops(call):
        return (), sum(spec.numel for spec in record.outputs[:1])
    return (), None


_RULES: Mapping[Saves | None, Rule] = {
    Saves.WEIGHTED: _weighted,
    Saves.MATMUL: _factors,
    Saves.PRODUCT: _factors,
    Saves.QUOTIENT: _quotient,
    Saves.INDEX: _index,
    Saves.INDEX_WRITE: _index_write,
    Saves.INPUT: _input,
    Saves.OUTPUT: _output,
    Saves.INPUT_OR_RESULT: _input_or_result,
    Saves.MAX_POOL: _max_pool,
    Saves.AVG_POOL: _avg_pool,
    Saves.PAD: _pad,
    Saves.RESAMPLE: _resample,
    Saves.DROPOUT: _dropout,
    Saves.ATTENTION: _attention,
    None: _inputs,  # unknown: every activation input (conservative)
}
"""Family -> what it keeps; :attr:`Saves.NOTHING` has no rule (and no entry in the result)."""


def _recorded(
    recorded: NodeMemory, record: NodeRecord, outputs: tuple[Any, ...], of_node: Mapping[str, tuple[Any, ...]]
) -> Kept:
    """What a call recorded at the ATen level saves: its saved arguments' storages, its saved
    results' (by position; all of them when a result has no storage key of its own, e.g. a
    parameter returned), and the bytes of tensors it made and saved (``saved_extra``)."""
    call = recorded.call
    sources = [recorded.arg_sources[position] for position in sorted(call.saved_args)]
    keep = tuple(key for source in sources if source is not None for key in of_node.get(source, ()))
    if len(outputs) == len(record.outputs):  # an LSTM saves its output, not its (h_n, c_n)
        keep += tuple(outputs[position] for position in sorted(call.saved_outputs) if position < len(outputs))
    elif call.saved_outputs:
        keep += outputs
    return keep, call.saved_extra or None


def saved_for_backward(
    graph: nx.DiGraph, params: ParamSummary, context: MemoryGraph | None = None
) -> tuple[dict[str, tuple[Any, ...]], dict[str, int], Mapping[str, bool]]:
    """What autograd keeps per node: (storage keys saved, extra bytes saved, requires-grad flags).

    Conventions per family (only for nodes whose output requires grad):

    - conv / linear / bilinear: their activation input when they have trainable weights
      (needed for ``dL/dW``); a convolution with ``padding="same"`` whose total padding is odd along some
      dim runs on a padded copy of its input and keeps that copy instead (extra bytes).
    - matmul / mm / bmm / einsum and ``mul`` of two tensors: each factor when the other requires
      grad (every input for three or more); ``div`` of two tensors: the divisor, and the dividend
      when the divisor requires grad; with a number, nothing (``2 / x``: the reciprocal it makes).
      A product of a strided operand, and a matmul or einsum that copies an operand to fold it into
      ``bmm`` (broadcast batch dims, an einsum's permuted layout:
      :func:`~torchscan.passes.memory.internal.product_saves_its_own`), are recorded: the copy is kept.
    - ``x[...]``: the tensors of its index (advanced indexing; basic indexing is a view: nothing);
      ``x[...] = v`` likewise (``index_put_`` keeps its indices; a write through a view keeps nothing).
    - ReLU, sigmoid, tanh, softmax, log-softmax, exp, sqrt, ``elu_``: their output.
    - Batch/layer/group/instance norm, GELU, SiLU, Mish, Hardswish, Hardsigmoid, ReLU6/Hardtanh,
      Softplus (:attr:`Saves.INPUT`): their input; run in place, a copy of their input made before it
      is overwritten (extra bytes ``N_out``·itemsize) instead of the input's storage (kept only if
      another node saves it).
    - What an op declares its kernel makes and keeps besides (``saves_extra`` with its formula: a
      normalisation's per-row, per-group or per-channel statistics, an InstanceNorm's repeated weight
      and running statistics): extra bytes; an ATen spelling that returns them keeps its results
      after the first.
    - ELU (:attr:`Saves.INPUT_OR_RESULT`): its input; run in place, its result (no copy).
    - Max pools: input + int64 indices (``8·N_out`` extra bytes). Dropout (and torchvision's
      stochastic depth) in training: recorded
      at the ATen level (the device kernel's mask); where it cannot be, a bool mask (``N_out`` extra
      bytes, CUDA's fused kernel); in eval nothing.
    - Average pools (:attr:`Saves.AVG_POOL`): their input, but an adaptive pool to size 1 in every pooled
      dim, which torch runs as a ``mean``: nothing.
    - ``F.pad`` (:attr:`Saves.PAD`): its input in ``reflect`` and ``replicate`` modes; interpolation
      (:attr:`Saves.RESAMPLE`): its input in ``area`` mode to a size other than 1.
    - Views, add/sub, cat/stack, sum/mean, constant padding, other interpolation: nothing.
    - Anything unknown: every activation input (conservative).
    - A call recorded at the ATen level (:mod:`~torchscan.passes.memory.internal`): what autograd
      saved when it ran on fake tensors — arguments, results, and tensors made inside (extras).
    - The ops of a custom ``torch.autograd.Function``'s forward (:mod:`~torchscan.graph.functions`): nothing
      (it runs with grad disabled); the call keeps its activation inputs, what ``ctx.save_for_backward`` is
      most often given (which tensors it is given is not read), as saved by its first op that requires grad (its
      backward, one autograd node, is the last of the call's to run).

    A storage saved by several nodes counts once. ``context``: :func:`memory_graph` of the
    graph, when already at hand.
    """
    context = memory_graph(graph, params) if context is None else context
    of_node, grads, trainable = context.live.of_node, context.grads, context.trainable
    declared_extras = context.saved_extras
    saved: dict[str, tuple[Any, ...]] = {}
    extra: dict[str, int] = {}
    functions = _function_savers(context, graph.graph.get(FUNCTION_NODES))
    for record in context.ordered:
        if record.op not in ("call_module", "call_function", "call_method") or not grads.get(record.name):
            continue
        outputs = of_node.get(record.name, ())
        recorded = context.calls.get(record.name)
        if functions is not None and record.name in functions.members:  # a custom Function's forward: no grad
            inputs = functions.savers.get(record.name)
            if inputs is not None:
                saved[record.name] = tuple(dict.fromkeys(key for source in inputs for key in of_node.get(source, ())))
            continue
        if recorded is not None and recorded.call.trained:
            keep, extra_bytes = _recorded(recorded, record, outputs, of_node)
        else:
            rule = _RULES.get(family_in(record, context.families))
            if rule is None:
                continue
            operands = tuple(
                (of_node.get(source, ()), grads.get(source, False)) for source in context.sources[record.name]
            )
            keep, extra_bytes = rule(record, operands, outputs, trainable.get(record.module_path, 0) > 0)
            declared = declared_extras.get(record.name) if declared_extras is not None else saved_extra(record)
            if declared is not None and record.call is not None:
                if len(outputs) > 1 and len(outputs) == len(record.outputs):  # ATen's spelling returns them
                    keep += outputs[1:]
                else:
                    extra_bytes = (extra_bytes or 0) + declared(record.call)
        if extra_bytes is not None:
            extra[record.name] = extra_bytes
        saved[record.name] = tuple(dict.fromkeys(keep))
    return saved, extra, grads


@frozen_record
class _FunctionSavers:
    """The nodes made in custom Function calls (``members``), and per call its saver — the first of its nodes that
    requires grad — with the nodes the call reads from outside it (``savers``)."""

    members: frozenset[str]
    savers: Mapping[str, tuple[str, ...]]


def _function_savers(context: MemoryGraph, calls: Mapping[str, FunctionCall] | None) -> _FunctionSavers | None:
    """:class:`_FunctionSavers` of a graph's custom Function calls (``calls``: its
    :data:`~torchscan.graph.functions.FUNCTION_NODES`; None: none)."""
    if not calls:
        return None
    grads = context.grads
    members: dict[FunctionCall, list[str]] = {}
    for record in context.ordered:
        call = calls.get(record.name)
        if call is not None:
            members.setdefault(call, []).append(record.name)
    savers: dict[str, tuple[str, ...]] = {}
    for names in members.values():
        inside = set(names)
        saver = next((name for name in names if grads.get(name)), None)
        if saver is not None:
            savers[saver] = tuple(
                dict.fromkeys(source for name in names for source in context.sources[name] if source not in inside)
            )
    return _FunctionSavers(frozenset(calls), savers)
