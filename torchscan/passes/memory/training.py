"""Training-step memory per optimizer: forward with saved tensors, a simulated backward, the step.

Steady state is assumed: the second step, ``zero_grad(set_to_none=True)``, foreach optimizers.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import networkx as nx
import torch

from torchscan.graph.checkpoint import Region
from torchscan.ops import Saves
from torchscan.ops.dropout import drops
from torchscan.passes.memory.context import MemoryGraph, memory_graph
from torchscan.passes.memory.families import family_in
from torchscan.passes.memory.internal import NodeMemory, first_sources
from torchscan.passes.memory.liveness import HELD_OUTPUTS
from torchscan.passes.memory.peak import same_padding_copy, walk, workspace
from torchscan.passes.memory.recompute import Checkpointing, Recomputation, checkpointing
from torchscan.passes.memory.saved import saved_for_backward
from torchscan.passes.memory.storage import END, is_view, output_bytes
from torchscan.passes.params import ParamSummary
from torchscan.records import RECORD, NodeRecord, TensorSpec, TrainingEstimate
from torchscan.records.frozen import frozen_record

__all__ = ["OPTIMIZERS", "Optimizer", "OptimizerMemory", "counter_bytes", "training_estimates", "training_step"]

_VIEWS = frozenset({Saves.NOTHING, Saves.INDEX})
"""Families of views (a basic index is one): an item of a call's tuple, a piece and an argument returned as it
is have no gradient of their own; any other view has one, which becomes its source's where a view of the first
family (``view``, ``permute``…) covers the whole source, and is otherwise summed into a new one (an index's zeros)."""

Optimizer = Literal["sgd", "sgd_momentum", "adam", "adamw"]


@frozen_record
class OptimizerMemory:
    """What one optimizer's step holds beyond the gradients, per trainable parameter tensor that gets one.

    ``state`` and ``transient``: multiples of the trainable parameter bytes ``P`` (kept between steps; made
    and freed inside the step). ``counters``: scalar tensors kept per parameter tensor, each of the scalar
    dtype (:func:`counter_bytes`)."""

    state: int
    transient: int
    counters: int = 0


OPTIMIZERS: Mapping[str, OptimizerMemory] = MappingProxyType(
    {
        "sgd": OptimizerMemory(0, 0),
        "sgd_momentum": OptimizerMemory(1, 0),
        "adam": OptimizerMemory(2, 1, 1),
        "adamw": OptimizerMemory(2, 1, 1),
    }
)
"""Optimizer -> what its foreach step keeps and makes (:class:`OptimizerMemory`).

SGD keeps nothing; momentum one buffer (``P``); Adam/AdamW ``exp_avg`` + ``exp_avg_sq`` (``2P``) and a
``step`` counter per parameter tensor (a 0-dim tensor, :func:`counter_bytes`); the foreach step of Adam/AdamW
materialises ``sqrt(exp_avg_sq)`` (one transient ``P``)."""


def counter_bytes() -> int:
    """Bytes of one optimizer step counter: ``torch.optim``'s scalar dtype, float64 where the default dtype
    is float64, else float32. Without ``capturable`` or ``fused`` torch keeps the counters on the CPU
    whatever the parameters' device (so on a CUDA model they are host memory: at most 4 B per
    parameter tensor counted above the device's use)."""
    return 8 if torch.get_default_dtype() == torch.float64 else 4


def training_estimates(
    graph: nx.DiGraph,
    params: ParamSummary,
    optimizers: Iterable[str] = tuple(OPTIMIZERS),
    context: MemoryGraph | None = None,
) -> tuple[tuple[TrainingEstimate, ...], int]:
    """Training-step memory per optimizer, and the saved activation bytes.

    With ``P`` the bytes of the trainable parameters the forward reads and ``T`` their number of tensors
    (:func:`_trained`: the others get no gradient and no optimizer state), ``S`` the saved bytes (distinct
    storages + extras), ``I`` the graph inputs' bytes:

    - forward: the inference walk with saved storages kept to the end;
    - backward: reverse execution order; the gradient of a node output (a view's too:
      :func:`_gradients`) is live from its last consumer's backward to its own; a node's saved
      storages are released after the backward of their first saver; parameter gradients (``P`` in total)
      accumulate, a reused parameter's second one summed into the first after its call's backward returns;
    - step: ``I`` (the caller holds its batch through ``step()``) + ``P`` of gradients + the optimizer's
      transient (:data:`OPTIMIZERS`);
    - state: the optimizer's multiple of ``P`` + ``T`` step counters (Adam, AdamW: ``T·4`` bytes);
    - ``peak = params + buffers + state + max(forward, backward, step)``.

    ``context``: :func:`~torchscan.passes.memory.context.memory_graph` of the graph, when at hand.
    """
    estimates, saved_bytes, _ = training_step(graph, params, optimizers, context)
    return estimates, saved_bytes


def training_step(
    graph: nx.DiGraph,
    params: ParamSummary,
    optimizers: Iterable[str] = tuple(OPTIMIZERS),
    context: MemoryGraph | None = None,
) -> tuple[tuple[TrainingEstimate, ...], int, Checkpointing | None]:
    """:func:`training_estimates`, with the graph's checkpointed calls as the step runs them
    (:func:`~torchscan.passes.memory.recompute.checkpointing`; None: none)."""
    context = memory_graph(graph, params) if context is None else context
    live = context.live
    saved, extra, _ = saved_for_backward(graph, params, context)
    transient = {  # a call recorded without training facts (nothing of it requires grad, or grad disabled) runs as
        # in inference
        name: recorded.call.train_transient if recorded.call.trained else recorded.call.transient
        for name, recorded in context.calls.items()
    }
    # what an op's workspace holds and its backward keeps (a max pool's indices, a convolution's padded input copy)
    # is made once: counted as kept, not besides as its workspace
    in_workspace = [
        record.name
        for record in context.ordered
        if record.name in extra and record.name not in transient and workspace(record, context.families)
    ]
    plan = checkpointing(context, saved, extra, {**transient, **dict.fromkeys(in_workspace, 0)})
    if plan is None:
        kept = {key for keys in saved.values() for key in keys}
        kept_extra = dict(extra)
    else:  # a checkpointed call keeps its inputs, not what its ops save
        remade = plan.of_node
        kept = {key for name, keys in saved.items() if name not in remade for key in keys} | set(plan.held)
        kept_extra = {name: nbytes for name, nbytes in extra.items() if name not in remade}
    saved_bytes = sum(live.size[key] for key in kept) + sum(kept_extra.values())
    # forward: saved storages stay; extras are made by their node's call and stay too (a checkpointed call's are
    # not kept there: their workspace is)
    made = [(record.index, END, kept_extra[record.name]) for record in context.ordered if record.name in kept_extra]
    transient.update((name, 0) for name in in_workspace if name in kept_extra)
    forward = walk(context.ordered, live, kept, transient, context.families, made=made).bytes
    backward = _backward_peak(context, saved, extra, plan)
    read, tensors = _trained(context)
    trainable = min(
        sum(entry.nbytes for held in params.by_module.values() for entry in held.entries if entry.trainable), read
    )
    held_inputs = sum(live.size[key] for key in live.inputs)  # the caller's batch, held through the step
    counter = counter_bytes()
    estimates = []
    for name in optimizers:
        kind = OPTIMIZERS[name]
        state = kind.state * trainable + kind.counters * (tensors if trainable else 0) * counter
        phases = {
            "forward": forward,
            "backward": backward,
            "step": held_inputs + trainable + kind.transient * trainable,
        }
        phase = max(phases, key=lambda key: phases[key])
        estimates.append(
            TrainingEstimate(
                optimizer=name,
                param_bytes=params.param_bytes,
                buffer_bytes=params.buffer_bytes,
                grad_bytes=trainable,
                optimizer_state_bytes=state,
                saved_activation_bytes=saved_bytes,
                peak_bytes=params.param_bytes + params.buffer_bytes + state + phases[phase],
                peak_phase=phase,
                phases=tuple(phases.items()),
            )
        )
    return tuple(estimates), saved_bytes, plan


def _backward_peak(
    context: MemoryGraph,
    saved: Mapping[str, tuple[Any, ...]],
    extra: Mapping[str, int],
    plan: Checkpointing | None = None,
) -> int:
    """Peak of (remaining saved + live activation grads + parameter grads) over the backward.

    Held throughout: the inputs, the output and the tensors the output's objects hold (a key/value cache,
    :data:`~torchscan.passes.memory.liveness.HELD_OUTPUTS`: the caller holds them through the backward).

    A node's backward reads its output's gradient and makes one for each source that requires
    grad (a new storage the first time; another for a source that holds one already lives through the
    node's backward, then is summed into it). A sum (``x + y``, :attr:`Saves.SUM`) makes none: its own
    gradient goes to each operand of its shape and dtype, one storage held by the operand whose backward
    comes last (the first made); a concatenation (``cat``, ``stack``: :attr:`Saves.CONCAT`) hands each operand a
    piece of its gradient, a view of that one storage, held alike (a linear layer on tokens copies a piece it
    cannot view as rows first, and frees the storage then if its piece was the last). A call recorded at the
    ATen level (:mod:`~torchscan.passes.memory.internal`) says how big each gradient is (0: it aliases the
    output's, which the source then holds) and what its backward holds at most (``backward_transient``, above
    everything live before it but the
    tensors it made and saved, ``saved_extra``, which it frees as it goes: they are gone once it
    returns; ``backward_released`` where this node holds its output's gradient, which nothing then
    holds past the call's first backward op, e.g. a normalisation written as several ops; where the
    arguments it records so hold a gradient already, made by a later reader's backward, ``h + norm(h)`` or
    a pre-norm block, the two peaks of its backward recorded with gradients waiting for exactly those
    arguments, :class:`~torchscan.passes.memory.internal.WaitingMemory`: autograd sums each partial gradient
    into the waiting one at once, where with none waiting the first is kept to the end; where one argument it
    saves is held by nothing else, a storage this node saves first, no input and not held by the output, which
    the walk frees after the node, autograd's engine frees it inside the call's backward once the op that saved
    it has run: the peaks recorded so, :class:`~torchscan.passes.memory.internal.FreedMemory`); any other
    node makes gradients of its sources' sizes, with no transient. A view's gradient is a storage of the
    view's size, made by its readers' backward like any other; the view's own backward passes it on to its
    source where the view covers all of it (``view``, ``permute``,
    ``unsqueeze``: a view of the gradient) and otherwise makes the source's gradient anew beside the
    view's own (``x[:, 0]``, ``narrow``: a zero-filled copy). A call returning its argument as it is
    (``Identity``, a dropout in eval or of probability 0: no autograd node) is such a covering view. An
    item of a call's tuple (a ``chunk``'s piece, an attention's output) has no gradient of its own: the
    source's is made at its step. A module's parameters get their gradients at its call's backward; a
    parameter a call before made one for (a module called twice, tied weights) gets a second, summed into
    the first once the call's backward has returned and freed its output's gradient and what only it saved
    (autograd accumulates into the parameter's input buffer after the node runs): ``live + Σ second
    gradients + the largest sum`` then (a bias summed first, as a 3-D ``linear``'s is, leaves the bias's
    bytes of it unspent).
    """
    ordered, sources, grads, live_storages = context.ordered, context.sources, context.grads, context.live
    remade: Mapping[str, tuple[Recomputation, ...]] = plan.of_node if plan is not None else {}
    first_saver: dict[Any, int] = {}
    for record in ordered:
        if record.name in remade:  # a checkpointed call's: remade in the backward (its copies, below)
            continue
        for key in saved.get(record.name, ()):
            first_saver.setdefault(key, record.index)
    if plan is not None:  # a checkpointed call's inputs, kept to its backward
        for key, index in plan.held.items():
            if first_saver.get(key, index) >= index:
                first_saver[key] = index
    kept = set(first_saver)
    # the caller holds the output through the backward, and with it what the output's objects hold (a
    # key/value cache: HELD_OUTPUTS), though only some of those tensors are saved for the backward
    held_by_output = [source for record in ordered if record.op == "output" for source in sources[record.name]]
    held_by_output += context.graph.graph.get(HELD_OUTPUTS, ())
    outputs = {key for name in held_by_output for key in live_storages.of_node.get(name, ())}
    live = sum(live_storages.size[key] for key in kept | outputs | set(live_storages.inputs))
    live += sum(nbytes for name, nbytes in extra.items() if name not in remade)
    release: dict[int, int] = {}
    for key, index in first_saver.items():
        if key not in outputs and key not in live_storages.inputs:
            release[index] = release.get(index, 0) + live_storages.size[key]
    for call in plan.calls if plan is not None else ():  # a checkpointed call's copies, freed as their backward goes
        for key, index in call.copies.items():
            release[index] = release.get(index, 0) + live_storages.size[key]
    recomputed: set[Region] = set()
    # a reentrant call's backward is a Python function given its outputs' gradients: it holds them until it
    # returns (its first node's backward), where autograd would free each once read
    until = _reentrant_outputs(context, plan) if plan is not None else {}
    deferred: dict[int, int] = {}
    grad_bytes, whole, passed, pieces = _gradients(context)
    copied = _reshaped_pieces(context, passed)
    attributes = {record.name for record in ordered if record.op == "get_attr"}
    held: dict[str, int] = {}  # live gradient bytes per node output
    taken: dict[str, str] = {}  # node -> the source its gradient's storage passes to
    params_done: set[str] = set()  # parameters read by get_attr whose gradient exists
    started: set[str] = set()  # parameters of module calls (owner paths) whose gradient exists
    peak = live
    for record in reversed(ordered):
        if record.op in ("placeholder", "output") or not grads.get(record.name):
            continue
        if record.name not in held:  # the gradient of the loss/output
            held[record.name] = grad_bytes.get(record.name, 0)
            live += held[record.name]
        chain = remade.get(record.name, ())
        for call_remade in chain:  # checkpointed calls reached: their forwards run again, outermost first
            if call_remade.region not in recomputed:
                recomputed.add(call_remade.region)
                peak = max(peak, live + call_remade.peak)
                live += call_remade.made
        recorded = context.calls.get(record.name)
        new, during, second = 0, live, 0  # second: gradients for sources that hold one, summed into it after
        padded = 0  # a padded input copy's gradient, made and freed inside this backward
        inside = recorded is not None and recorded.call.trained and bool(recorded.call.grad_bytes)
        if inside:
            call = recorded.call
            savers = ChainMap(chain[-1].copies, first_saver) if chain else first_saver
            freeable = functools.partial(_freeable, recorded, record.index, savers, outputs, context)
            transient, released_peak = _recorded_peaks(recorded, held, grads, attributes, freeable)
            released = released_peak is not None and held.get(record.name, 0) > 0
            during = live + (released_peak if released else transient)
            for position, source in enumerate(recorded.arg_sources):
                if source is None or not grads.get(source) or position >= len(call.grad_bytes):
                    continue
                size = call.grad_bytes[position]
                if source in attributes:  # a parameter read by the call: its .grad
                    if source not in params_done:
                        params_done.add(source)
                        new += size
                elif source not in held:
                    held[source] = size
                    new += size
                    if size == 0 and record.name not in taken:
                        taken[record.name] = source
        elif record.name in whole and whole[record.name] not in held:  # the source takes this gradient's storage
            taken.setdefault(record.name, whole[record.name])
        elif record.name in pieces:  # its call holds the piece's gradient to its own step (their ``cat`` there)
            pass
        else:
            shared = passed.get(record.name, ())
            recipients = [source for source in shared if source not in held]
            if recipients:  # one storage for all: held by the one whose backward comes last, the first made
                taken[record.name] = recipients[0]
                held.update(dict.fromkeys(recipients[1:], 0))
            # a convolution run on a padded copy of its input makes the copy's gradient, from which the pad's
            # backward copies its source's: both live at once, then the first is freed
            call = record.call
            first = sources[record.name][:1]
            if call is not None and call.attrs.get("padding") == "same" and first and grads.get(first[0]):
                padded = same_padding_copy(record)
            for source in sources[record.name]:
                if source in shared:
                    continue
                if grads.get(source) and source not in held and source not in attributes:
                    held[source] = grad_bytes.get(source, 0)
                    new += held[source]
                elif grads.get(source) and source not in attributes:
                    second += grad_bytes.get(source, 0)
                elif grads.get(source) and source in attributes and source not in params_done:
                    params_done.add(source)
                    new += _attribute_bytes(context, source)
        reused, largest = 0, 0  # gradients of parameters a call before made one for: summed into it after
        if record.op == "call_module":  # its parameters' gradients: new, or summed into the first
            for parameter, size in context.reads.get(record.module_path, {}).items():
                if parameter not in started:
                    started.add(parameter)
                    new += size
                else:
                    reused, largest = reused + size, max(largest, size)
        copy = copied.get(record.name, 0)
        if copy and not inside:  # its gradient (a strided piece) copied first: the piece, if the last, freed then
            early = held.get(record.name, 0)
            during = max(during, live + copy, live - early + copy + new + reused + second)
            live, held[record.name] = live - early, 0
        elif not inside:  # a recorded call's backward transient holds the gradients it makes
            during = max(during, live + new + reused + second)
        if padded:  # the convolution's kernel makes the copy's gradient; the pad's backward, once the convolution
            # has freed the copy it kept, copies its source's gradient out of it
            made = grad_bytes.get(sources[record.name][0], 0)
            during = max(
                during,
                live + new - made + padded + reused + second,
                live - extra.get(record.name, 0) + new + padded + reused + second,
            )
        live += new
        # a recorded call's own saved tensors are freed inside its backward (``during`` is its peak)
        freed_inside = extra.get(record.name, 0) if inside else 0
        live -= freed_inside
        peak = max(peak, during, live)
        own = held.get(record.name, 0)
        if record.name in pieces:  # one more piece's gradient its call holds
            held[pieces[record.name]] = held.get(pieces[record.name], 0) + own
        elif record.name in taken:  # the source holds this gradient's storage now
            held[taken[record.name]] = own
        elif record.name in until:
            deferred[until[record.name]] = deferred.get(until[record.name], 0) + own
        else:
            live -= own
        held[record.name] = 0
        live -= release.get(record.index, 0) + extra.get(record.name, 0) - freed_inside + deferred.pop(record.index, 0)
        # once the call's backward returns (its output's gradient and the tensors only it saved freed),
        # each reused parameter's new gradient is summed with the first into a third tensor
        peak = max(peak, live + reused + largest)
    return peak


def _reentrant_outputs(context: MemoryGraph, plan: Checkpointing) -> dict[str, int]:
    """Node -> the index of its reentrant checkpointed call's first node, for the nodes of such a call read
    outside it (or returned): their gradients are held until that node's backward has run."""
    found: dict[str, int] = {}
    succ = context.graph.succ
    for call in plan.calls:
        if call.region.reentrant:
            for name in call.nodes:
                if any(reader not in call.nodes for reader in succ[name]):
                    found[name] = call.start
    return found


def _recorded_peaks(
    recorded: NodeMemory,
    held: Mapping[str, int],
    grads: Mapping[str, bool],
    attributes: set[str],
    freeable: Callable[[], Mapping[int, int]],
) -> tuple[int, int | None]:
    """A recorded call's ``backward_transient`` and ``backward_released`` as the walk finds its sources: those
    of its recording with gradients already waiting (:class:`~torchscan.passes.memory.internal.WaitingMemory`)
    where exactly the arguments it gave one hold one now (:func:`_holding`), else those of its recording with
    none waiting; of either, where one argument it saves is held by nothing else (``freeable``: :func:`_freeable`,
    asked only where the recording tells such peaks)
    and its recording tells the peaks with that argument freed inside the backward
    (:class:`~torchscan.passes.memory.internal.FreedMemory`), those."""
    call = recorded.call
    waiting = call.waiting
    if waiting is not None and waiting.positions == _holding(recorded, held, grads, attributes):
        transient, released, freed = waiting.transient, waiting.released, waiting.freed
    else:
        transient, released, freed = call.backward_transient, call.backward_released, call.freed
    if not freed:  # most recorded calls: no argument they save is freed inside their backward
        return transient, released
    sizes = freeable()
    found = [memory for memory in freed if sizes.get(memory.position) == memory.nbytes]
    if len(found) == 1:  # two or more freed at once: not recorded, the peaks with none freed
        return found[0].transient, found[0].released
    return transient, released


def _freeable(
    recorded: NodeMemory,
    index: int,
    first_saver: Mapping[Any, int],
    outputs: set[Any],
    context: MemoryGraph,
) -> dict[int, int]:
    """The positions of a recorded call's tensor arguments (each its source's first) whose storage nothing but
    this call keeps through the backward, and that storage's bytes: one storage, saved first by this call
    (none run later in the backward saves it), neither an input nor held by the output — the storages the
    walk frees once this call's backward has returned, autograd's engine once the call's op that saved it
    has run."""
    live = context.live
    found: dict[int, int] = {}
    for position, source in first_sources(recorded.arg_sources[: len(recorded.call.grad_bytes)]):
        keys = live.of_node.get(source, ())
        if len(keys) != 1:
            continue
        key = keys[0]
        if first_saver.get(key) == index and key not in outputs and key not in live.inputs:
            found[position] = live.size[key]
    return found


def _holding(
    recorded: NodeMemory, held: Mapping[str, int], grads: Mapping[str, bool], attributes: set[str]
) -> frozenset[int]:
    """The positions of a recorded call's tensor arguments, each its source's first, whose source requires
    grad, is no parameter read by ``get_attr`` and holds a gradient of its own already (``held`` above 0: made
    by the backward of a later reader)."""
    return frozenset(
        position
        for position, source in first_sources(recorded.arg_sources[: len(recorded.call.grad_bytes)])
        if grads.get(source) and source not in attributes and held.get(source, 0) > 0
    )


def _gradients(
    context: MemoryGraph,
) -> tuple[dict[str, int], dict[str, str], dict[str, tuple[str, ...]], dict[str, str]]:
    """Bytes of the gradient each call's output gets (its logical bytes), the views whose gradient
    becomes their source's (they cover all of it: ``view``, ``permute``), and the sums (``x + y``,
    :attr:`Saves.SUM`) whose gradient is their operands' own, by node name (the operands of the sum's shape
    and dtype, distinct nodes that require grad, in execution order). No gradient of its own for an item of a
    call's tuple (the call's) or a call writing into one of several operands in place (``y += z``: its gradient
    reaches each of them). A call returning its argument as it is (``Identity``, a dropout in eval or of
    probability 0: no autograd node) has the gradient its readers make, which is its argument's: it passes to
    the source at its step, like a view covering its source. The pieces of a view call that returns several
    (``split``, ``chunk``, ``unbind``) each get a gradient of their own, which their call holds from the piece's
    step to its own (the fourth mapping: piece -> its call), where their ``cat`` (or ``stack``) makes the
    source's."""
    grads, sources, live = context.grads, context.sources, context.live
    single = {record.name: record.outputs[0] for record in context.ordered if len(record.outputs) == 1}
    position = {record.name: record.index for record in context.ordered}
    held_by_model = {record.name for record in context.ordered if record.op == "get_attr"}  # parameters: .grad
    grad_bytes: dict[str, int] = {}
    whole: dict[str, str] = {}
    passed: dict[str, tuple[str, ...]] = {}
    pieces: dict[str, str] = {}
    for record in context.ordered:
        if not grads.get(record.name) or record.op not in ("call_module", "call_function", "call_method"):
            continue
        kind = family_in(record, context.families)
        piece_of = _piece_of(record, kind, sources[record.name], context)
        if piece_of is not None:
            pieces[record.name] = piece_of
            grad_bytes[record.name] = output_bytes(record)
            continue
        if kind in (Saves.SUM, Saves.CONCAT) and len(record.outputs) == 1 and record.call is not None:
            operands = _passed_on if kind is Saves.SUM else _pieces_to
            found = operands(record, sources[record.name], single, grads)
            passed_on = [source for source in found if source not in held_by_model]
            if passed_on:
                passed[record.name] = tuple(sorted(passed_on, key=position.__getitem__))
        if (kind in _VIEWS and is_view(record, live)) or _returns_its_input(record, kind):
            traced = [source for source in sources[record.name] if grads.get(source)]
            source = single.get(traced[0]) if len(traced) == 1 else None
            if source is None or len(record.outputs) != 1:
                continue
            if (
                record.outputs[0] == source
                or kind is Saves.DROPOUT
                or (kind is Saves.NOTHING and output_bytes(record) == grad_bytes.get(traced[0]))
            ):
                whole[record.name] = traced[0]
        grad_bytes[record.name] = output_bytes(record)
    return grad_bytes, whole, passed, pieces


def _piece_of(
    record: NodeRecord,
    kind: Saves | None,
    sources: tuple[str, ...],
    context: MemoryGraph,
) -> str | None:
    """The view call that returned several tensors (``split``, ``chunk``, ``unbind``) whose item ``record`` is,
    else None."""
    if kind not in _VIEWS or len(sources) != 1 or len(record.outputs) != 1 or not context.grads.get(sources[0]):
        return None
    call: NodeRecord = context.graph.nodes[sources[0]][RECORD]
    if len(call.outputs) < 2:
        return None
    if family_in(call, context.families) not in _VIEWS or not is_view(record, context.live):
        return None
    return call.name


def _returns_its_input(record: NodeRecord, kind: Saves | None) -> bool:
    """A dropout in eval mode or of probability 0: torch returns its input itself (no autograd node), so
    the gradient its readers make is its input's."""
    return kind is Saves.DROPOUT and record.call is not None and not drops(record.call)


def _passed_on(
    record: NodeRecord, sources: tuple[str, ...], single: Mapping[str, TensorSpec], grads: Mapping[str, bool]
) -> list[str]:
    """The operands of a sum that its backward hands its output's gradient to as it is: each tensor operand
    a distinct node of the output's shape and dtype that requires grad, with ``alpha`` 1 (none where an
    operand is read twice, ``x + x``: autograd sums the two into a new tensor)."""
    call, out = record.call, record.outputs[0]
    if call is None or call.get("alpha", 1) != 1 or len(call.inputs) != len(sources):
        return []
    return [
        source
        for source in sources
        if grads.get(source)
        and (spec := single.get(source)) is not None
        and spec.shape == out.shape
        and spec.dtype == out.dtype
    ]


def _reshaped_pieces(context: MemoryGraph, passed: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """The nodes whose gradient is a piece of a concatenation's that no view makes rows of, and whose backward
    needs rows, which copies it first: a linear layer on more than two dims (``x.view(-1, in)`` inside it;
    a piece of tokens concatenated along the tokens) — node -> the copy's bytes (its output's), alive through
    its backward."""
    found: dict[str, int] = {}
    for name, recipients in passed.items():
        record: NodeRecord = context.graph.nodes[name][RECORD]
        if family_in(record, context.families) is not Saves.CONCAT or record.call is None:
            continue
        shape = record.outputs[0].shape
        dim = record.call.get("dim", 0)
        if type(dim) is not int or not -len(shape) <= dim < len(shape):
            continue
        strides = [math.prod(shape[position + 1 :]) for position in range(len(shape))]  # the output is contiguous
        others = strides[: dim % len(shape)] + strides[dim % len(shape) + 1 :]
        for recipient in recipients:
            reader: NodeRecord = context.graph.nodes[recipient][RECORD]
            call = reader.call
            weight = call.spec("weight") if call is not None else None
            if (
                family_in(reader, context.families) is not Saves.WEIGHTED
                or weight is None
                or weight.ndim != 2
                or not any(spec.ndim > 2 for spec in call.inputs[:1])
                or len(reader.outputs) != 1
            ):
                continue
            piece = reader.outputs[0].shape  # cat: the output's strides; stack: those of its other dims
            steps = strides if len(piece) == len(shape) else others
            if len(steps) == len(piece) and not _rows_view(piece, steps):
                found[recipient] = output_bytes(reader)
    return found


def _rows_view(shape: tuple[int, ...], strides: list[int]) -> bool:
    """Whether a tensor of ``shape`` and ``strides`` has a view of shape ``(-1, shape[-1])``: its leading dims
    (unit ones aside) each as far apart as the next one's extent."""
    kept = [(size, stride) for size, stride in zip(shape[:-1], strides[:-1], strict=True) if size != 1]
    return all(outer[1] == inner[1] * inner[0] for outer, inner in itertools.pairwise(kept))


def _pieces_to(
    record: NodeRecord, sources: tuple[str, ...], single: Mapping[str, TensorSpec], grads: Mapping[str, bool]
) -> list[str]:
    """The operands of a concatenation that its backward hands a piece of its output's gradient (a view of it):
    each tensor operand a distinct node that requires grad, of the output's dtype (none where an operand is read
    twice, ``cat([x, x])``: autograd sums its two pieces into a new tensor)."""
    call, out = record.call, record.outputs[0]
    if call is None or len(call.inputs) != len(sources):
        return []
    return [
        source
        for source in sources
        if grads.get(source) and (spec := single.get(source)) is not None and spec.dtype == out.dtype
    ]


def _trained(context: MemoryGraph) -> tuple[int, int]:
    """Bytes and number of the trainable parameter tensors that get a gradient: those read by a module call
    or an attribute read of the graph whose output requires grad (counted by the backward walk as it makes
    them). A parameter the forward does not read (an auxiliary head in eval mode, a layer the forward skips)
    keeps ``.grad`` None: no gradient and no optimizer state for it (``torch.optim`` skips it)."""
    reads: dict[str, int] = {}
    attributes = []
    for record in context.ordered:
        if not context.grads.get(record.name):
            continue
        if record.op == "call_module":
            reads.update(context.reads.get(record.module_path, {}))
        elif record.op == "get_attr":
            attributes.append(_attribute_bytes(context, record.name))
    return sum(reads.values()) + sum(attributes), len(reads) + len(attributes)


def _attribute_bytes(context: MemoryGraph, name: str) -> int:
    """Bytes of the gradient of a parameter read by ``get_attr`` (its output's bytes)."""
    record = context.graph.nodes[name][RECORD]
    return output_bytes(record)
