"""What a call allocates inside itself, recorded at the ATen level on fake tensors.

A node of the graph is one call (a leaf module, a function, a tensor method); the liveness walk sees
its arguments and results only. Inside, the call may dispatch several ATen ops whose temporaries
are freed before it returns (window partitioning and attention scores inside Swin's functional
attention, the ``clone`` autograd makes before an in-place activation, a ``reshape`` copy of a
strided matmul operand). This pass runs each distinct *call signature* once — the target (a module
by its structure: class, plain attributes, parameter specs, children), the specs of its tensor
arguments (shape, strides, offset, dtype, which require grad, which alias) and its plain
arguments — on fake tensors, under a dispatch mode that tracks every storage an ATen op makes by a
weak reference, so frees are seen as they happen (no arithmetic is done); a buffer that a kernel
makes and its fake kernel does not (an op's declared workspace, :mod:`.kernels`) is given its real
size there. Per signature
(:class:`CallMemory`):

- inference (``no_grad``): ``transient = max_t live_t − outputs``, ``live_t`` the bytes made inside
  the call and alive after its ``t``-th op, ``outputs`` the new storages it returns;
- training: the forward with autograd, whose ``saved_tensors_hooks`` name what autograd keeps —
  arguments (by position), results, or tensors made inside (``saved_extra`` bytes) — and
  ``train_transient = max_t live_t − live_end``; then the call's backward (``torch.autograd.grad``
  from a scalar whose backward makes empty gradients of its results, ``G`` bytes):
  ``backward_transient = max_t (new_t + extra_t) − saved_extra − G`` with those gradients counted to
  the end (held by whatever else reads them), ``backward_released`` the same with each counted until
  autograd's engine frees it once read (``new_t``: bytes made by the backward and alive, the
  gradients among them, ``extra_t``: ``saved_extra`` still held), and per argument the bytes of its
  gradient when it is a new storage (0 when it aliases a result's gradient, e.g. ``add``, or repeats a
  tensor object passed before: one object passed several times stays one, as the call sees it), and the
  gradients of the module's own parameters; per argument the call saves (neither a result nor a parameter)
  the two peaks where its bytes count only until autograd's engine frees what it saved of it (each saved
  tensor on its storage packed in a :class:`_Saved` holder, whose end is noted by a weak reference: the peak
  then, or a later one less those bytes, :class:`FreedMemory`; no count more);
- training, where an argument already holds a gradient when the call's backward runs (a later reader of it,
  ``h + norm(h)``, a pre-norm block, ran its backward first: :class:`_LaterReaders` reads that from the
  graph): the backward once more with a gradient made for each such argument by the scalar's backward, so
  that it waits in the argument's input buffer before any of the call's backward ops run. Autograd's engine
  sums each partial gradient into it as soon as it is made (out of place under a dispatch mode, as when
  measured); with nothing waiting the first partial is kept to the end. The two peaks, above the waiting
  gradients too, are :class:`WaitingMemory` (one more forward and backward, ~3–10 ms, for those calls only).

Nodes are run in graph order by an interpreter over the capture's fake copy; a node whose signature
was seen gets its value from a shape rule where one answers, else by plain dispatch. A signature is
read from its arguments' specs: the shape pass's pending values (:class:`Pending`) stand for the
fakes they would make (a new contiguous tensor, a storage of its own) and a module's tensors are not
faked, so a call recorded before (a decoder's 80 norms, rotary ``cos``/``sin`` and attentions) makes
nothing. Ops declared in the registry as views or shape-only (``Saves.NOTHING``) are not recorded:
they allocate at most their output and save nothing. Four calls get what their recording finds in closed
form instead, each checked equal to :func:`_record` by a property test: an index by int64 tensors
(:func:`tensor_index_memory`), an attention torch runs as its CPU flash kernel (:func:`attention_memory`),
a biased linear layer on a strided input that folds by a view (:func:`biased_linear_memory`) and
``F.normalize`` with ``p`` 1 or 2 (:func:`normalize_memory`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import operator
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._mode_utils import no_dispatch
from torch.utils._pytree import tree_leaves, tree_map

from torchscan.graph import autocast
from torchscan.graph.aten_meta import (
    aten_inplace,
    aten_like,
    aten_new,
    aten_pointwise,
    aten_rule,
    aten_view,
    contiguous_strides,
    detached,
)
from torchscan.graph.autocast import AUTOCAST
from torchscan.graph.clone import Fakes
from torchscan.graph.dispatch_memo import DispatchMemo
from torchscan.graph.fake import AnalysisDispatchMode, fake_tensor
from torchscan.graph.grad_mode import NO_GRAD
from torchscan.graph.routing import forward_of, run_pre_hooks
from torchscan.graph.rules import Pending
from torchscan.graph.shapes import quiet_fake_tensor_log
from torchscan.graph.writes import INDEX_WRITES, written
from torchscan.ops import Saves
from torchscan.ops.dropout import drops
from torchscan.ops.linear import einsum_equation
from torchscan.ops.shape import index_write_arguments
from torchscan.passes.memory.families import family_in
from torchscan.passes.memory.kernels import with_workspace
from torchscan.records import NodeRecord, TensorSpec
from torchscan.records.frozen import frozen_record

__all__ = [
    "CallMemory",
    "FreedMemory",
    "NodeMemory",
    "Replay",
    "WaitingMemory",
    "attention_memory",
    "biased_linear_memory",
    "calls_to_record",
    "first_sources",
    "normalize_memory",
    "number_divided",
    "product_saves_its_own",
    "record_calls",
    "recorded_calls",
    "tensor_index_memory",
    "worth_recording",
]

_CALLS = ("call_module", "call_function", "call_method")


@frozen_record
class FreedMemory:
    """A call's backward where its tensor argument at ``position`` (its object's first, as
    :attr:`CallMemory.grad_bytes` counts them), a storage of ``nbytes`` that the call saves for its backward, is
    held by nothing but what autograd saved inside the call: autograd's engine frees it once the last of the
    call's backward ops that saved it has run, partway through the call's backward (``g`` in
    ``x * sigmoid(g) + g * tanh(x)``). ``transient`` and ``released`` are the call's backward peaks
    (:attr:`CallMemory.backward_transient`, :attr:`CallMemory.backward_released`; None: equal to ``transient``)
    above everything live before it, the argument's bytes included, less those bytes from the moment they
    are freed."""

    position: int
    nbytes: int
    transient: int
    released: int | None = None


@frozen_record
class WaitingMemory:
    """A call's backward where the tensor arguments at ``positions`` (as :attr:`CallMemory.grad_bytes`
    counts them) already hold a gradient in autograd's input buffer when it runs (another reader's backward
    made it: ``h + norm(h)``, or ``norm(h)`` with ``h`` read by a later layer too). Autograd's engine sums each
    partial gradient the call's backward makes for such an argument into what waits there as soon as it is
    made (a new tensor, the old one and the partial freed), where a recording with nothing waiting keeps its
    first partial as the argument's gradient to the end. ``transient`` and ``released`` are
    :attr:`CallMemory.backward_transient` and :attr:`CallMemory.backward_released` (None: equal to
    ``transient``) of that backward, above everything live before it, the waiting gradients included (each
    such argument holds one gradient of its size throughout: the one waiting, then each sum)."""

    positions: frozenset[int]
    transient: int
    released: int | None = None
    freed: tuple[FreedMemory, ...] = ()
    """The same peaks where one argument the call saves is freed inside its backward (:class:`FreedMemory`)."""


@frozen_record
class CallMemory:
    """ATen-level memory of one call (bytes), see the module docstring.

    ``saved_args`` / ``grad_bytes`` are indexed by the call's tensor arguments in ``tree_leaves``
    order of ``(args, kwargs)``; ``saved_outputs`` by its results' tensors in the same order.
    """

    transient: int
    train_transient: int = 0
    saved_args: frozenset[int] = frozenset()
    saved_outputs: frozenset[int] = frozenset()
    saved_extra: int = 0
    backward_transient: int = 0
    backward_released: int | None = None
    """The backward's peak above what was live before it where its results' gradients are held by nothing
    else, so autograd's engine frees each once its first reader has run (a normalisation written as several
    ops: its output's gradient is gone before its input's is made); None where that is ``backward_transient``
    (whatever holds them, e.g. a backward of one autograd node)."""
    grad_bytes: tuple[int, ...] = ()
    param_grad_bytes: int = 0
    trained: bool = False
    """Whether the training facts were recorded (something of the call requires grad)."""
    freed: tuple[FreedMemory, ...] = ()
    """The backward's peaks where one argument the call saves is held by nothing else, so that autograd's
    engine frees it inside the call's backward (:class:`FreedMemory`), one per such argument: an argument
    that is not a result of the call, not a parameter and whose storage the call saves."""
    waiting: WaitingMemory | None = None
    """The backward recorded again with gradients already waiting for some of its arguments, as
    :func:`record_calls` reads the graph (None: not recorded, the call's sources hold none then)."""
    cached: tuple[tuple[int, int], ...] = ()
    """``(position, bytes)`` of each cast that ``torch.autocast``'s cache keeps (a call run under autocast): the
    low-precision copy of a float32 leaf that requires grad (a parameter), which the thread's cache holds until
    the outermost autocast region exits (:mod:`~torchscan.passes.memory.casts`). ``position`` counts the call's
    tensor arguments (``tree_leaves`` order), then the module's parameters and buffers."""


@frozen_record
class NodeMemory:
    """A node's :class:`CallMemory` and the graph nodes its tensor arguments come from (same order)."""

    call: CallMemory
    arg_sources: tuple[str | None, ...]


def _storage(tensor: torch.Tensor) -> Any:
    try:
        return tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None


def _key(tensor: torch.Tensor) -> int | None:
    storage = _storage(tensor)
    return None if storage is None else storage._cdata  # its impl's address: what a weak ref to it is keyed by


_DEVICE = torch.ops.prim.device.default
_NAN_CHECK = frozenset(
    {torch.ops.aten.isnan.default, torch.ops.aten._is_any_true.default, torch.ops.aten._local_scalar_dense.default}
)
"""The ops of autograd's anomaly-mode check of each backward node's outputs (``isnan(out)._is_any_true().item()``,
run by the engine once the node's function has returned)."""
_TO_COPY = torch.ops.aten._to_copy.default
_REDUCED = frozenset({torch.bfloat16, torch.float16})
"""The dtypes autocast casts down to (the only casts its cache keeps)."""


class _Tracker(AnalysisDispatchMode):
    """Bytes of the storages made by ops inside the mode and still alive; ``peak`` the max after
    any op. ``held`` storages (made before, freed inside) count while alive, from the start.
    ``peak_pinned``: the same max where the storages :meth:`pin` names count from their making to the
    end, freed or not."""

    def __init__(
        self,
        existing: set[int],
        memo: DispatchMemo | None = None,
        held: Sequence[Any] = (),
        cacheable: Mapping[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.existing = existing
        self._memo = memo
        self._cacheable = cacheable
        """Storage key -> position of the tensors whose casts autocast's cache would keep (:attr:`cached`)."""
        self.cached: dict[int, int] = {}
        """Position -> bytes of the low-precision copy an op made of a :attr:`_cacheable` tensor."""
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        for storage in held:
            ref = StorageWeakRef(storage)
            self.live[ref.cdata] = (ref, int(storage.nbytes()))
        self._bound = 0
        """At least the bytes alive: the last count plus what was made since."""
        self._pinned: set[int] = set()
        self._gone = 0
        """Bytes of pinned storages seen freed."""
        self.peak = self.current()
        self.peak_pinned = self.peak
        self._holders: dict[int, list[weakref.ref[_Saved]]] = {}
        """Per watched storage (:meth:`watch`): weak references to its holders still alive."""
        self._freed_at: dict[int, tuple[int, int]] = {}
        """Per watched storage whose holders are all gone: :attr:`peak` and :attr:`peak_pinned` then."""
        self._nan_checked = torch.is_anomaly_enabled() and torch.is_anomaly_check_nan_enabled()
        """Whether autograd's engine checks each backward node's outputs for NaN (the caller's anomaly mode, a
        process-wide setting the analysis leaves as found): :meth:`_nan_check`."""

    def watch(self, key: int, holders: Sequence[weakref.ref[_Saved]]) -> None:
        """Note when the last of ``holders`` (what autograd keeps of storage ``key``, made before) is gone, for
        :meth:`freed_peaks`."""
        alive = [holder for ref in holders if (holder := ref()) is not None]
        if not alive:
            self._freed_at[key] = (self.peak, self.peak_pinned)
            return

        def gone(ref: weakref.ref[_Saved], key: int = key) -> None:
            refs = self._holders[key]
            refs.remove(ref)
            if not refs:
                self._freed_at[key] = (self.peak, self.peak_pinned)

        self._holders[key] = [weakref.ref(holder, gone) for holder in alive]

    def freed_peaks(self, key: int, nbytes: int) -> tuple[int, int]:
        """:attr:`peak` and :attr:`peak_pinned` where watched storage ``key``'s ``nbytes`` count from the start
        until its last holder is gone: the peak then, or a later one less those bytes (a peak reached after
        the free is the highest count after it, exactly; none reached, every later count is below the one
        then)."""
        at = self._freed_at.get(key)
        if at is None:
            return self.peak, self.peak_pinned
        return max(at[0], self.peak - nbytes), max(at[1], self.peak_pinned - nbytes)

    def pin(self, tensor: torch.Tensor) -> int:
        """Count ``tensor``'s storage, made inside the mode, in :attr:`peak_pinned` to the end; its bytes."""
        storage = _storage(tensor)
        if storage is None or storage._cdata not in self.live:
            return 0
        self._pinned.add(storage._cdata)
        return self.live[storage._cdata][1]

    def current(self) -> int:
        total = 0
        for key, (ref, nbytes) in list(self.live.items()):
            if ref.expired():
                del self.live[key]
                if key in self._pinned:
                    self._pinned.discard(key)
                    self._gone += nbytes
            else:
                total += nbytes
        self._bound = total
        return total

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        device_query = func is _DEVICE and len(args) == 1 and type(args[0]) is FakeTensor
        if device_query and not args[0].fake_mode.in_kernel_invocation:  # ``t.device``, asked thousands of
            return args[0].fake_device  # times by autograd: what FakeTensor answers, without its dispatch
        kwargs = kwargs or {}
        if self._nan_checked and func in _NAN_CHECK and torch._C._current_autograd_node() is not None:
            return self._nan_check(func, args, kwargs)
        result = aten_view(func, args, kwargs)  # a view by its meta kernel: FakeTensor's dispatch is slow there
        if result is None:
            result = aten_inplace(func, args, kwargs)  # written in place: the argument itself, once checked
        if result is None:
            result = aten_rule(func, args, kwargs)  # an op whose meta kernel is slow Python: its stated layout
        if result is None:  # an op seen before with these inputs: its output made anew from the first's metadata
            key = self._memo.key("call_function", func, args, kwargs) if self._memo is not None else None
            result = self._memo.answer(key) if key is not None else None
            if result is None:
                result = aten_pointwise(func, args, kwargs)  # a pointwise op: by its operands' learned layout
                if result is None:
                    result = aten_new(func, args, kwargs)  # new tensors by the meta kernel
                if result is None:
                    result = aten_like(func, args, kwargs)  # a tensor laid out like another, by the meta kernel
                if result is None:  # else FakeTensor's dispatch
                    result = func(*args, **kwargs)
                if key is not None:
                    self._memo.learn(key, args, kwargs, result)
        result = with_workspace(func, args, kwargs, result)
        if self._cacheable and func is _TO_COPY and type(result) is FakeTensor and result.dtype in _REDUCED:
            position = self._cacheable.get(_key(args[0]))  # autocast's cast of a parameter: its cache keeps it
            if position is not None:
                self.cached.setdefault(position, int(result.untyped_storage().nbytes()))
        added = 0
        for tensor in _result_tensors(result):
            storage = _storage(tensor)
            if storage is not None:
                address = storage._cdata  # a weak ref's key too (one is made only for a new storage)
                known = self.live.get(address)  # an entry left from a freed storage at this address: replaced
                if address not in self.existing and (known is None or known[0].expired()):
                    nbytes = int(storage.nbytes())
                    self.live[address] = (StorageWeakRef(storage), nbytes)
                    added += nbytes
        # nothing allocated: the bytes alive can only have dropped, the peak stands; else the bytes alive
        # are at most the last count plus what was added (frees only lower it): counted again only
        # where that bound passes the peak
        if added:
            self._bound += added
            if self._bound > self.peak or self._bound + self._gone > self.peak_pinned:
                current = self.current()
                self.peak = max(self.peak, current)
                self.peak_pinned = max(self.peak_pinned, current + self._gone)
        return result

    @staticmethod
    def _nan_check(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """An op of the anomaly mode's check of a backward node's outputs, run by autograd's engine inside the
        recorded backward: a fake holds no NaN (the check's ``item()`` is False, where a fake's would fail as
        data-dependent and leave the call unrecorded), and the check's tensors are not the call's memory (they
        are not counted: a recording finds what it finds without the anomaly mode)."""
        if func is torch.ops.aten._local_scalar_dense.default and type(args[0]) is FakeTensor:
            return False
        return func(*args, **kwargs)


class _Saved:
    """What autograd keeps, through ``saved_tensors_hooks``, of a tensor on a call's argument's storage: the
    tensor, held until autograd's engine releases the node that saved it (once its backward has run)."""

    __slots__ = ("__weakref__", "tensor")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


def _unpack(value: Any) -> Any:
    """The tensor a saved value stands for (a :class:`_Saved` holder's, else the value)."""
    return value.tensor if type(value) is _Saved else value


def _result_tensors(result: Any) -> list[torch.Tensor]:
    """The tensors an ATen op returned: a tensor, or tuples (named ones too) and lists of them — the
    shapes ATen results take (``tree_leaves``' generic walk cost more per op)."""
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        return [leaf for item in result for leaf in _result_tensors(item)]
    return []


def _empty_like(tensor: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(tensor)``, by the meta kernel for a fake tensor (:func:`aten_like`)."""
    made = aten_like(torch.ops.aten.empty_like.default, (tensor,), {})
    return torch.empty_like(tensor) if made is None else made


def _tensors(value: Any) -> list[torch.Tensor]:
    return [leaf for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor)]


def _new_bytes(tensors: Sequence[torch.Tensor], existing: set[int]) -> int:
    seen: dict[int, int] = {}
    for tensor in tensors:
        storage = _storage(tensor)
        if storage is not None and (key := storage._cdata) not in existing:
            seen[key] = int(storage.nbytes())
    return sum(seen.values())


def _record(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    wants_grad: Sequence[bool],
    params: Sequence[torch.Tensor],
    memo: DispatchMemo | None = None,
    train: bool = True,
) -> tuple[CallMemory, Any]:
    """The :class:`CallMemory` of ``function(*args, **kwargs)`` and its (inference) result (``memo``:
    the ATen ops' outputs by signature, shared by the calls recorded in one analysis; ``train``: False for a
    call run with grad mode disabled, whose training facts are its inference ones)."""
    leaves = _tensors((args, kwargs))
    existing = {key for tensor in (*leaves, *params) if (key := _key(tensor)) is not None}
    tracker = _Tracker(existing, memo, cacheable=_cacheable((*leaves, *params)) if autocast.enabled() else None)
    with torch.no_grad(), tracker:
        result = function(*args, **kwargs)
    outputs = _new_bytes(_tensors(result), existing)
    transient = max(0, tracker.peak - outputs)
    cached = tuple(sorted(tracker.cached.items()))
    trainable, frozen = _trained_and_frozen(params)
    if not train or (not any(wants_grad) and not trainable):
        return CallMemory(transient=transient, cached=cached), result
    try:
        memory = _record_training(function, args, kwargs, wants_grad, trainable, transient, memo, frozen)
    except RuntimeError:  # an op without a backward, a leaf modified in place twice…: inference facts only
        memory = CallMemory(transient=transient)
    return (dataclasses.replace(memory, cached=cached) if cached else memory), result


def _cacheable(tensors: Sequence[torch.Tensor]) -> dict[int, int]:
    """Storage key -> position of the tensors whose casts autocast's cache keeps: float32 leaves that require
    grad and are no view (a parameter; ATen's ``cached_cast`` tests the same)."""
    found = {}
    for position, tensor in enumerate(tensors):
        if tensor.dtype == torch.float32 and tensor.requires_grad and tensor.is_leaf and not tensor._is_view():
            key = _key(tensor)
            if key is not None:
                found.setdefault(key, position)
    return found


def tensor_index_memory(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], wants_grad: Sequence[bool]
) -> CallMemory | None:
    """What recording ``x[index]`` on fake tensors finds, in closed form, where ``index`` holds int64 tensors
    of one dim or more on ``x``'s device besides whole slices (``:``) and at most one ``...`` (a
    relative-position table read through a buffer of indices: ``table[:, idx]``); None for any other call
    (recorded; a 0-dim index is an integer to Python's indexing: a view).

    ``aten.index`` makes its result only (``transient = 0``). Where ``x`` requires grad, autograd's
    ``IndexBackward`` keeps the index tensors (``saved_args``: every index position, ``x`` at 0) and its
    backward makes ``x``'s gradient by an out-of-place ``index_put`` with accumulation into zeros of ``x``'s
    shape (autograd's path for tensor subclasses, which fake tensors are): the zeros and the result, ``2·|x|``
    at once (``backward_transient``), then the gradient ``|x| = x.numel()·itemsize`` (``grad_bytes``).
    ``tests/passes/memory/test_internal.py`` checks it against :func:`_record` over drawn shapes."""
    if function is not operator.getitem or kwargs or len(args) != 2:
        return None
    x, index = args  # made values (record_calls runs a call on fakes, pending ones made)
    if not isinstance(x, torch.Tensor):
        return None
    items = index if type(index) is tuple else (index,)
    tensors = [item for item in items if isinstance(item, torch.Tensor)]
    whole = sum(1 for item in items if type(item) is slice and item == slice(None))
    ellipses = sum(1 for item in items if item is Ellipsis)
    if (
        not tensors
        or len(tensors) + whole + ellipses != len(items)
        or ellipses > 1
        or len(items) - ellipses > len(x.shape)
        or any(item.dtype != torch.int64 or item.device != x.device or not item.shape for item in tensors)
        or len(wants_grad) != 1 + len(tensors)
    ):
        return None
    if not wants_grad[0]:
        return CallMemory(transient=0)
    size = math.prod(x.shape) * x.dtype.itemsize
    return CallMemory(
        transient=0,
        saved_args=frozenset(range(1, len(wants_grad))),
        backward_transient=2 * size,
        grad_bytes=(size, *(0 for _ in tensors)),
        trained=True,
    )


def biased_linear_memory(
    module: nn.Module,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    wants_grad: Sequence[bool],
    params: Sequence[torch.Tensor],
) -> CallMemory | None:
    """What recording an ``nn.Linear`` with a bias (its own forward) on a strided input of three dims or more
    finds, in closed form, where the input folds to rows by a view (tokens of one sample,
    ``x.flatten(2).transpose(1, 2)``; :func:`_strided_saves_its_own` on ``F.linear``); None for any other call.

    torch multiplies, then adds the bias to a new tensor: the product, ``|out|`` bytes, is the call's transient
    in inference and in training. Autograd keeps the input where the weight is trained (``saved_args = {0}``),
    and the weight itself where the input's gradient is asked (the model's: no bytes of the call's); the
    backward makes the input's gradient ``|x|`` where asked and the trained parameters' (``|W|``, ``|b|``)
    at once (``backward_transient``); sizes are logical bytes. ``tests/passes/memory/test_internal.py`` checks
    it against :func:`_record` over drawn layers."""
    if type(module).forward is not nn.Linear.forward or kwargs or len(args) != 1 or len(wants_grad) != 1:
        return None
    x = args[0]
    if module.bias is None or len(params) != 2 or not isinstance(x, FakeTensor) or x.dim() < 3 or x.is_contiguous():
        return None
    weight, bias = params  # as the recording reads them (``nn.Linear`` registers the weight, then the bias)
    if not weight.is_contiguous() or weight.dim() != 2:
        return None
    x_layout, weight_layout = _layout(x), _layout(weight)
    if x_layout is None or weight_layout is None or _strided_saves_its_own(F.linear, (x_layout, weight_layout)):
        return None
    out = math.prod(x.shape[:-1]) * weight.shape[0] * x.dtype.itemsize
    trained = [tensor for tensor in (weight, bias) if tensor.requires_grad and tensor.dtype.is_floating_point]
    if not wants_grad[0] and not trained:
        return CallMemory(transient=out)
    size = math.prod(x.shape) * x.dtype.itemsize
    params_bytes = sum(math.prod(tensor.shape) * tensor.dtype.itemsize for tensor in trained)
    weight_trained = any(tensor is weight for tensor in trained)
    return CallMemory(
        transient=out,
        train_transient=out,
        saved_args=frozenset({0}) if weight_trained else frozenset(),
        backward_transient=(size if wants_grad[0] else 0) + params_bytes,
        grad_bytes=(size if wants_grad[0] else 0,),
        param_grad_bytes=params_bytes,
        trained=True,
    )


class _Stop(Exception):
    """Raised by :class:`_FirstOp` once it has seen the call's first ATen op."""


class _FirstOp(AnalysisDispatchMode):
    """Notes the first ATen op a call dispatches (device queries aside) and stops the call there."""

    def __init__(self) -> None:
        super().__init__()
        self.op: Any = None

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is _DEVICE:
            return func(*args, **(kwargs or {}))
        self.op = func
        raise _Stop


_FLASH_CPU = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default


def attention_memory(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], wants_grad: Sequence[bool]
) -> CallMemory | None:
    """What recording ``F.scaled_dot_product_attention(q, k, v)`` on fake tensors finds, in closed form,
    where torch runs it as its CPU flash kernel (``_scaled_dot_product_flash_attention_for_cpu``: no mask,
    no dropout, equal head dims, unit last strides…; told by torch's own dispatch, stopped at its first ATen
    op: ~0.1 ms, where a recording takes ~5); None for any other call (recorded).

    The kernel makes the output and its row log-sum-exp, ``lse = numel(q)/E·4`` bytes (float32; float64 for
    float64 inputs), which it returns and the call drops (``transient = lse``). Where an input requires grad
    autograd keeps ``q``, ``k``, ``v``, the output and the log-sum-exp (``saved_extra = lse``), and the
    backward kernel makes the three gradients whichever are asked, ``|q| + |k| + |v|`` at once
    (``backward_transient``, logical bytes), each asked one a gradient of its own (``grad_bytes``).
    ``tests/passes/memory/test_internal.py`` checks it against :func:`_record` over drawn calls."""
    if function is not F.scaled_dot_product_attention or len(args) < 3 or len(wants_grad) != 3:
        return None
    query, key, value = args[:3]
    if not all(isinstance(tensor, FakeTensor) for tensor in (query, key, value)):
        return None
    dropout = args[4] if len(args) > 4 else kwargs.get("dropout_p", 0.0)
    if dropout != 0 or len({id(query), id(key), id(value)}) != 3:
        return None
    first = _FirstOp()
    try:
        with first:
            function(*args, **kwargs)
    except _Stop:
        pass
    except Exception:  # torch refuses the call: recorded, which says so
        return None
    if first.op is not _FLASH_CPU:
        return None
    rows = math.prod(query.shape[:-1])
    lse = rows * (8 if query.dtype == torch.float64 else 4)
    if not any(wants_grad):
        return CallMemory(transient=lse)
    sizes = [math.prod(tensor.shape) * tensor.dtype.itemsize for tensor in (query, key, value)]
    return CallMemory(
        transient=lse,
        saved_args=frozenset({0, 1, 2}),
        saved_outputs=frozenset({0}),
        saved_extra=lse,
        backward_transient=sum(sizes),
        grad_bytes=tuple(size if wanted else 0 for size, wanted in zip(sizes, wants_grad, strict=True)),
        trained=True,
    )


_NORMALIZE_PARAMETERS = ("input", "p", "dim", "eps", "out")


def normalize_memory(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], wants_grad: Sequence[bool]
) -> CallMemory | None:
    """What recording ``F.normalize(x, p, dim)`` on fake tensors finds, in closed form, for ``p`` 1 or 2 on a
    floating ``x`` of any layout (a strided query of cross-covariance attention); None for any other call
    (recorded).

    torch divides ``x`` by ``norm(x, p, dim).clamp_min(eps)`` expanded: the call's transient is one row-wise
    tensor, ``R·s`` bytes (``R = numel(x) / size(x, dim)`` rows, ``s`` its itemsize). Where ``x`` requires grad
    autograd keeps ``x`` and two row-wise tensors (the norm and its clamp, ``saved_extra = 2·R·s``), and the
    backward holds ``4·|x|`` at most (``|x| = numel(x)·s``) and makes ``x``'s gradient, ``|x|``.
    ``tests/passes/memory/test_internal.py`` checks it against :func:`_record` over drawn calls."""
    if function is not F.normalize or len(wants_grad) != 1 or len(args) > len(_NORMALIZE_PARAMETERS):
        return None
    bound = dict(zip(_NORMALIZE_PARAMETERS[: len(args)], args, strict=True))
    if any(key in bound or key not in _NORMALIZE_PARAMETERS for key in kwargs):
        return None
    bound.update(kwargs)
    x, p, dim = bound.get("input"), bound.get("p", 2.0), bound.get("dim", 1)
    if not isinstance(x, FakeTensor) or not x.dtype.is_floating_point or bound.get("out") is not None:
        return None
    if type(p) not in (int, float) or p not in (1, 2) or type(dim) is not int or not -x.dim() <= dim < x.dim():
        return None
    if not all(type(extent) is int for extent in x.shape) or not math.prod(x.shape):  # sizes, none empty
        return None
    x_bytes = math.prod(x.shape) * x.dtype.itemsize
    row_bytes = x_bytes // x.shape[dim]  # one value per row
    if not wants_grad[0]:
        return CallMemory(transient=row_bytes)
    return CallMemory(
        transient=row_bytes,
        saved_args=frozenset({0}),
        saved_extra=2 * row_bytes,
        backward_transient=4 * x_bytes,
        grad_bytes=(x_bytes,),
        trained=True,
    )


def _with_grad_leaves(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], wants_grad: Sequence[bool], clone: bool
) -> tuple[tuple[Any, ...], dict[str, Any], list[torch.Tensor], list[torch.Tensor], list[bool]]:
    """Copies of the arguments where the tensors in ``wants_grad`` are leaves requiring grad (or,
    with ``clone``, clones of such leaves: in-place ops may write them); the passed tensors, the
    leaves to differentiate against, and per tensor argument whether it is the first occurrence of
    its object. One tensor object passed several times (``attention(x, x, x)``) stays one object:
    calls branch on identity (``query is key``), and its gradient is one sum."""
    position = iter(range(1 << 30))
    passed: list[torch.Tensor] = []
    grad_leaves: list[torch.Tensor] = []
    firsts: list[bool] = []
    made: dict[int, torch.Tensor] = {}

    def one(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            index = next(position)
            known = made.get(id(value))
            firsts.append(known is None)
            if known is None:
                if wants_grad[index]:
                    leaf = detached(value).requires_grad_(True)
                    grad_leaves.append(leaf)
                    known = leaf.clone(memory_format=torch.preserve_format) if clone else leaf
                else:
                    known = detached(value)
                made[id(value)] = known
            passed.append(known)
            return known
        if isinstance(value, (tuple, list)):
            return type(value)(one(item) for item in value) if not hasattr(value, "_fields") else value
        if isinstance(value, dict):
            return {key: one(item) for key, item in value.items()}
        return value

    new_args = tuple(one(value) for value in args)
    new_kwargs = {key: one(value) for key, value in kwargs.items()}
    if len(passed) != len(wants_grad):
        raise RuntimeError("arguments not understood")
    return new_args, new_kwargs, passed, grad_leaves, firsts


class _Seeded:
    """What :class:`_Seed` made: weak references to the results' gradients and their bytes (the first
    ``results`` tensors it is given), and the bytes of the gradients it made for the others (arguments whose
    gradient waits in autograd's input buffer before the call's backward runs)."""

    def __init__(self, tracker: _Tracker, results: int) -> None:
        self.tracker = tracker
        self.results = results
        self.refs: list[StorageWeakRef] = []
        self.nbytes = 0
        self.waiting = 0


class _Seed(torch.autograd.Function):
    """A scalar whose backward makes an empty gradient for each of a call's results, inside the tracked
    backward: held by nothing but autograd's engine, each is freed once read, as in a real backward
    (gradients given to ``torch.autograd.grad`` stay held by the caller throughout). Given arguments of the
    call after its results, it makes one for each of them too: the engine puts it into the argument's input
    buffer before any node of the call's backward runs (they all wait on this one), where the call's partial
    gradients for it are then summed in."""

    @staticmethod
    def forward(ctx: Any, seeded: _Seeded, *results: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.seeded, ctx.results = seeded, results
        first = results[0]
        if type(first) is FakeTensor:  # by the meta kernel: FakeTensor's own dispatch costs ~0.1 ms here
            with no_dispatch():
                scalar = torch.empty((), dtype=first.dtype, device="meta")
            return fake_tensor(first.fake_mode, scalar, first.fake_device)
        return first.new_empty(())

    @staticmethod
    def backward(ctx: Any, *grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        seeded, results = ctx.seeded, ctx.results
        del ctx.results
        made = tuple(torch.empty_like(tensor) for tensor in results)  # dispatched: the tracker sees them
        for tensor in made[: seeded.results]:
            seeded.nbytes += seeded.tracker.pin(tensor)
            storage = _storage(tensor)
            if storage is not None:
                seeded.refs.append(StorageWeakRef(storage))
        seeded.waiting += _new_bytes(made[seeded.results :], set())
        return (None, *made)


def _trained_and_frozen(params: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A call's parameters and buffers split into those that get a gradient (floating point, requiring grad) and
    the others."""
    trained: list[torch.Tensor] = []
    frozen: list[torch.Tensor] = []
    for param in params:
        (trained if param.requires_grad and param.dtype.is_floating_point else frozen).append(param)
    return trained, frozen


def _record_training(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    wants_grad: Sequence[bool],
    params: Sequence[torch.Tensor],
    transient: int,
    memo: DispatchMemo | None = None,
    frozen: Sequence[torch.Tensor] = (),
) -> CallMemory:
    try:
        return _train_once(function, args, kwargs, wants_grad, params, transient, False, memo, frozen=frozen)
    except RuntimeError:  # a leaf written in place: give the call clones of the leaves
        return _train_once(function, args, kwargs, wants_grad, params, transient, True, memo, frozen=frozen)


def _with_waiting(
    known: CallMemory,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    wants_grad: Sequence[bool],
    params: Sequence[torch.Tensor],
    waiting: frozenset[int],
    memo: DispatchMemo | None = None,
) -> CallMemory:
    """``known`` with its :class:`WaitingMemory` for the tensor arguments at ``waiting`` (each requiring
    grad, the first of its object): the call trained once more, its backward run with a gradient already in
    each one's input buffer (:class:`_Seed`). Unchanged where nothing waits, the call has no backward, it
    writes an argument in place (its recording gives it clones: a gradient given to a clone after the call
    would reach the write's node, not the buffer the call's backward sums into) or cannot be run again."""
    if not waiting or not known.trained or not known.grad_bytes:
        return known
    trainable, frozen = _trained_and_frozen(params)
    try:
        again = _train_once(
            function, args, kwargs, wants_grad, trainable, known.transient, False, memo, waiting, frozen=frozen
        )
    except Exception:  # a leaf written in place, an op fake tensors refuse: the facts with nothing waiting
        return known
    memory = WaitingMemory(waiting, again.backward_transient, again.backward_released, again.freed)
    return dataclasses.replace(known, waiting=memory)


def _train_once(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    wants_grad: Sequence[bool],
    params: Sequence[torch.Tensor],
    transient: int,
    clone: bool,
    memo: DispatchMemo | None = None,
    waiting: frozenset[int] = frozenset(),
    frozen: Sequence[torch.Tensor] = (),
) -> CallMemory:
    """The call's :class:`CallMemory` (``waiting``: the tensor arguments given a gradient before the call's
    backward runs, :class:`_Seed`; the backward's peaks then stand above them too; ``frozen``: the module's
    parameters and buffers that get no gradient — what autograd keeps of them is the model's, not bytes the call
    made, as for the trained ``params``)."""
    new_args, new_kwargs, passed, grad_leaves, firsts = _with_grad_leaves(args, kwargs, wants_grad, clone)
    arg_keys = [_key(tensor) for tensor in passed]
    existing = {key for tensor in (*passed, *grad_leaves, *params, *frozen) if (key := _key(tensor)) is not None}
    packed: dict[int, Any] = {}
    arg_set = {key for key in arg_keys if key is not None}
    holders: dict[int, list[weakref.ref[_Saved]]] = {}  # per argument storage: what autograd keeps of it

    def pack(tensor: torch.Tensor) -> Any:
        storage = _storage(tensor)
        if storage is None:
            return tensor
        key = storage._cdata
        packed.setdefault(key, storage)
        if key not in arg_set:
            return tensor
        holder = _Saved(tensor)
        holders.setdefault(key, []).append(weakref.ref(holder))
        return holder

    tracker = _Tracker(existing, memo)
    with torch.enable_grad(), tracker, torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
        result = function(*new_args, **new_kwargs)
    outputs = _tensors(written(function, passed, result))  # an index write: the tensor it wrote
    output_keys = [_key(tensor) for tensor in outputs]
    train_transient = max(0, tracker.peak - tracker.current())
    param_keys = {_key(param) for param in (*params, *frozen)}
    saved_args = frozenset(i for i, key in enumerate(arg_keys) if key in packed)
    saved_outputs = frozenset(i for i, key in enumerate(output_keys) if key in packed)
    extra = [
        storage
        for key, storage in packed.items()
        if key not in arg_keys and key not in output_keys and key not in param_keys and key not in existing
    ]
    saved_extra = sum(int(storage.nbytes()) for storage in extra)
    packed.clear()
    differentiable = [tensor for tensor in outputs if tensor.requires_grad]
    if not differentiable:
        return CallMemory(transient=transient, train_transient=train_transient, trained=True)
    before = {
        key for tensor in (*passed, *grad_leaves, *params, *frozen, *outputs) if (key := _key(tensor)) is not None
    }
    wrt = [*grad_leaves, *params]
    backward = _Tracker(before, memo, extra)
    del extra
    seeded = _Seeded(backward, len(differentiable))
    waits = [passed[position] for position in sorted(waiting) if wants_grad[position] and firsts[position]]
    with torch.enable_grad():
        seed = _Seed.apply(seeded, *differentiable, *waits)
    del waits
    one = _empty_like(seed)
    backward.existing.add(_key(one))
    # arguments the call saves, no result's storage and no parameter: their bytes counted until autograd
    # frees what it saved of them (a first position per storage)
    watched: dict[int, tuple[int, int]] = {}
    for position, (key, tensor) in enumerate(zip(arg_keys, passed, strict=True)):
        if key in holders and key not in output_keys and key not in param_keys and key not in watched:
            storage = _storage(tensor)
            assert storage is not None
            watched[key] = (position, int(storage.nbytes()))
            backward.watch(key, holders[key])
    holders.clear()
    with backward:
        grads = torch.autograd.grad(seed, wrt, one, allow_unused=True)
    del seed
    # the results' gradients count from their making: held to the end (as given to ``autograd.grad``) or
    # freed by the engine once read
    backward_transient = max(0, backward.peak_pinned - saved_extra - seeded.nbytes - seeded.waiting)
    released = max(0, backward.peak - saved_extra - seeded.nbytes - seeded.waiting)
    below = saved_extra + seeded.nbytes + seeded.waiting
    freed: list[FreedMemory] = []
    for key, (position, nbytes) in watched.items():
        peak, pinned = backward.freed_peaks(key, nbytes)
        freed_transient, freed_released = max(0, pinned - below), max(0, peak - below)
        if freed_transient != backward_transient or freed_released != released:  # else nothing to tell
            kept = freed_released if freed_released != freed_transient else None
            freed.append(FreedMemory(position, nbytes, freed_transient, kept))
    alive = {ref.cdata for ref in seeded.refs if not ref.expired()}  # a gradient passed on as it is
    sizes = [0 if grad is None or _key(grad) in alive else _new_bytes([grad], before | alive) for grad in grads]
    leaf_sizes = iter(sizes[: len(grad_leaves)])
    grad_bytes = tuple(
        next(leaf_sizes) if wanted and first else 0 for wanted, first in zip(wants_grad, firsts, strict=True)
    )
    return CallMemory(
        transient=transient,
        train_transient=train_transient,
        saved_args=saved_args,
        saved_outputs=saved_outputs,
        saved_extra=saved_extra,
        backward_transient=backward_transient,
        backward_released=released if released != backward_transient else None,
        grad_bytes=grad_bytes,
        param_grad_bytes=sum(sizes[len(grad_leaves) :]),
        trained=True,
        freed=tuple(freed),
    )


def _plain(value: Any) -> Any:
    """A hashable stand-in for a plain argument (its identity for anything else)."""
    if isinstance(value, (int, float, bool, str, complex, type(None), torch.dtype, torch.device, slice)):
        return (type(value), value) if not isinstance(value, slice) else ("slice", value.start, value.stop, value.step)
    if isinstance(value, (torch.memory_format, torch.layout)):
        return str(value)
    return ("id", id(value))


def _pending_key(value: Pending) -> Any:
    """The storage key of the fake a :class:`Pending` value makes: its storage's once made (a view of
    it shares it), else the value itself (nothing can alias a storage not made yet)."""
    made = value.made
    return _key(made) if made is not None else ("pending", id(value))


def _tensor_key(tensor: torch.Tensor, grad: bool) -> tuple[Any, ...]:
    return (tuple(tensor.shape), tuple(tensor.stride()), tensor.storage_offset(), tensor.dtype, grad)


def _signature(value: Any, wants_grad: Iterator[bool], storages: dict[Any, int]) -> Any:
    """Hashable signature of an argument structure (tensors by spec and aliasing); a :class:`Pending`
    value gets the signature of the fake it makes (a new contiguous tensor on a storage of its own)."""
    if isinstance(value, torch.Tensor):
        key = _key(value)
        alias = storages.setdefault(key, len(storages)) if key is not None else -1
        return ("T", _tensor_key(value, next(wants_grad)), alias)
    if type(value) is Pending:
        alias = storages.setdefault(_pending_key(value), len(storages))
        spec = (tuple(value.shape), contiguous_strides(value.shape), 0, value.dtype, next(wants_grad))
        return ("T", spec, alias)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_signature(item, wants_grad, storages) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple((key, _signature(item, wants_grad, storages)) for key, item in value.items()))
    return _plain(value)


class _ModuleSignatures:
    """Structural signatures of modules: class, training flag, plain attributes, parameter and
    buffer specs (with requires-grad), children's signatures; one per module object."""

    def __init__(self) -> None:
        self._known: dict[int, Any] = {}

    def of(self, module: nn.Module) -> Any:
        known = self._known.get(id(module))
        if known is not None:
            return known
        attributes = []
        for name, value in vars(module).items():
            if name.startswith("_") or name == "training":
                continue
            plain = _plain(value)
            if isinstance(value, (tuple, list)) and all(
                not isinstance(item, (nn.Module, torch.Tensor)) for item in value
            ):
                plain = tuple(_plain(item) for item in value)
            attributes.append((name, plain))
        tensors = tuple(
            (name, _tensor_key(tensor, tensor.requires_grad) if tensor is not None else None)
            for table in (module._parameters, module._buffers)
            for name, tensor in table.items()
        )
        children = tuple((name, self.of(child)) for name, child in module._modules.items() if child is not None)
        forward = vars(module).get("forward")
        signature = (type(module), module.training, tuple(attributes), tensors, children, id(forward))
        self._known[id(module)] = signature
        return signature


class _Values:
    """Fake values of graph nodes, made on demand: the shape pass's own result where it is known
    (``results``: its fakes, a :class:`Pending` one made into its fake), else a node whose recorded
    result is one contiguous tensor gets a fresh empty tensor of its spec and any other node (views,
    strided results, structures) is run on the values of the nodes it reads, so the strides and
    aliasing a recorded call sees are the real ones."""

    def __init__(
        self,
        graph: fx.Graph,
        root: nn.Module,
        inputs: Sequence[torch.Tensor],
        described: Mapping[str, Any],
        fakes: Fakes | None,
        results: Mapping[str, Any] | None = None,
    ) -> None:
        self.nodes = {node.name: node for node in graph.nodes}
        self._root = root
        self._described = described
        self._fakes = fakes
        self._results = results or {}
        self._memo: dict[str, Any] = {}
        placeholders = [node for node in graph.nodes if node.op == "placeholder"]
        for node, value in zip(placeholders, inputs, strict=False):
            self._memo[node.name] = value
        self._modules = dict(root.named_modules(remove_duplicate=False))

    def module(self, node: fx.Node) -> nn.Module:
        module = self._modules[str(node.target)]
        if self._fakes is not None:
            self._fakes.fill(module)
        return module

    def arguments(self, node: fx.Node) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = fx.node.map_arg(node.args, lambda source: self.of(source.name))
        kwargs = fx.node.map_arg(node.kwargs, lambda source: self.of(source.name))
        return tuple(args), dict(kwargs)

    def call(self, node: fx.Node) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], nn.Module | None]:
        """What running ``node`` calls, with its arguments (a module's kept pre-hooks run)."""
        args, kwargs = self.arguments(node)
        if node.op == "call_module":
            module = self.module(node)
            args, kwargs = run_pre_hooks(module, args, kwargs)
            return forward_of(module), args, kwargs, module
        if node.op == "call_method":
            name = str(node.target)
            if getattr(torch.Tensor, name, None) in INDEX_WRITES:  # ``x.__setitem__``: a write (:func:`written`)
                return getattr(torch.Tensor, name), args, kwargs, None
            return (lambda own, *rest, **named: getattr(own, name)(*rest, **named)), args, kwargs, None
        return node.target, args, kwargs, None

    def set(self, name: str, value: Any) -> None:
        self._memo[name] = value

    def peek(self, name: str) -> Any:
        """The node's value as :meth:`of` gives it, but the shape pass's :class:`Pending` values left
        unmade (for a signature: :func:`_signature` reads them as the fakes they make)."""
        if name in self._memo:
            return self._memo[name]
        result = self._results.get(name)
        if result is not None and self.nodes[name].op != "get_attr":
            return result
        return self.of(name)

    def peek_call(self, node: fx.Node) -> tuple[tuple[Any, ...], dict[str, Any], nn.Module | None] | None:
        """The arguments and module of ``node``'s call as :meth:`call` has them, values :meth:`peek`-ed
        and the module's tensors left as they are; None where a kept pre-hook would rewrite them."""
        module = self._modules[str(node.target)] if node.op == "call_module" else None
        if module is not None and vars(module).get("_forward_pre_hooks"):
            return None
        args = fx.node.map_arg(node.args, lambda source: self.peek(source.name))
        kwargs = fx.node.map_arg(node.kwargs, lambda source: self.peek(source.name))
        return tuple(args), dict(kwargs), module

    def of(self, name: str) -> Any:
        if name in self._memo:
            return self._memo[name]
        node = self.nodes[name]
        described = self._described.get(name)
        result = self._results.get(name)
        if result is not None and node.op != "get_attr":  # the shape pass's own: no call run again
            value: Any = tree_map(lambda leaf: leaf.fake() if type(leaf) is Pending else leaf, result)
        elif node.op == "get_attr":
            value = self._root
            for part in str(node.target).split("."):
                value = getattr(value, part)
            if isinstance(value, fx.Proxy):  # an attribute the forward rebound: the shape pass's value of the node
                value = result
            elif self._fakes is not None and isinstance(value, torch.Tensor):
                value = self._fakes.of(value)
        elif isinstance(described, TensorSpec) and described.contiguous:
            value = torch.empty(described.shape, dtype=described.dtype)
        else:
            function, args, kwargs, _ = self.call(node)
            with torch.no_grad(), _autocast_of(node.meta.get(AUTOCAST)):
                value = function(*args, **kwargs)
        self._memo[name] = value
        return value


def record_calls(
    graph: fx.Graph,
    root: nn.Module,
    inputs: Sequence[torch.Tensor],
    fake_mode: Any,
    described: Mapping[str, Any],
    selected: Sequence[str],
    grads: Mapping[str, bool],
    fakes: Fakes | None = None,
    results: Mapping[str, Any] | None = None,
) -> dict[str, NodeMemory]:
    """Node name -> its :class:`NodeMemory`, for the ``selected`` call nodes (graph order).

    ``inputs`` are fake tensors of ``fake_mode`` (the capture's) for the graph's placeholders,
    ``described`` each node's described result (a :class:`TensorSpec` for a plain tensor),
    ``grads`` the graph's requires-grad flags per node. A node that cannot be run again (an error
    on fake tensors) is left out: it falls back to the registry's family.
    """
    values = _Values(graph, root, inputs, described, fakes, results)
    modules = _ModuleSignatures()
    later = _LaterReaders(graph, grads)
    cache: dict[Any, CallMemory] = {}
    calls: dict[str, NodeMemory] = {}
    memo = DispatchMemo(fake_mode) if isinstance(fake_mode, FakeTensorMode) else None
    with _uncached(fake_mode), fake_mode, torch.inference_mode(False), torch.enable_grad():  # any grad mode
        for name in selected:
            node = values.nodes[name]
            try:
                peeked = _peeked(node, values, modules, grads)
            except Exception:  # an input that cannot be rebuilt: the family's rule answers
                continue
            if peeked is not None:
                waiting = later.waiting(node, peeked[1], peeked[2])
                if (known := cache.get((peeked[0], waiting))) is not None:
                    calls[name] = NodeMemory(known, peeked[1])  # recorded before: no argument made, no module filled
                    continue
            try:
                function, args, kwargs, module = values.call(node)
            except Exception:
                continue
            if isinstance(fake_mode, FakeTensorMode):  # a real forward's values: the fakes the mode reads, made
                try:  # before the call, not as its allocations
                    args, kwargs = _read_by(fake_mode, (args, kwargs))
                except Exception:  # a tensor no fake can stand for (a quantized one): the family's rule answers
                    continue
            if peeked is None:  # a kept pre-hook rewrites the arguments: the signature of the ones it gives
                key, sources, wants = _call_key(node, args, kwargs, module, values, modules, grads, peek=False)
                waiting = later.waiting(node, sources, wants)
                known = cache.get((key, waiting))
                if known is not None:
                    calls[name] = NodeMemory(known, sources)
                    continue
            else:
                key, sources, wants = peeked
            state = node.meta.get(AUTOCAST)
            train = NO_GRAD not in node.meta  # with grad disabled, the call's training is its inference
            params = [*module.parameters(), *module.buffers()] if module is not None else []
            if isinstance(fake_mode, FakeTensorMode):  # a real copy's tensors (real-forward): as the mode reads them
                try:
                    params = [_as_read(tensor, fake_mode) for tensor in params]
                except Exception:  # as for the arguments
                    continue
                if module is not None:
                    function = _on_fakes(function, module, fake_mode)
            known = cache.get((key, frozenset())) if waiting else None  # recorded before, with nothing waiting
            if known is None:
                if state is not None or not train:  # the closed forms know nothing of autocast's casts or no_grad
                    known = None
                elif module is None:
                    known = (
                        tensor_index_memory(function, args, kwargs, wants)
                        or attention_memory(function, args, kwargs, wants)
                        or normalize_memory(function, args, kwargs, wants)
                    )
                else:
                    known = biased_linear_memory(module, args, kwargs, wants, params)
                if known is None:
                    try:
                        with _autocast_of(state):
                            known, result = _record(function, args, kwargs, wants, params, memo, train)
                    except Exception:
                        continue
                    values.set(name, written(function, args, result))
                cache[(key, frozenset())] = known
            if waiting:
                with _autocast_of(state):
                    known = _with_waiting(known, function, args, kwargs, wants, params, waiting, memo)
                cache[(key, waiting)] = known
            calls[name] = NodeMemory(known, sources)
    return calls


def _autocast_of(state: autocast.Autocast | None) -> contextlib.AbstractContextManager[Any]:
    """The ``torch.autocast`` state a node ran under, set (none: nothing changed: the analysis runs with
    autocast off)."""
    return contextlib.nullcontext() if state is None else autocast.applied(state)


def first_sources(sources: Sequence[str | None]) -> Iterator[tuple[int, str]]:
    """``(position, source)`` of a call's tensor arguments (``sources``: the node each comes from, None for
    none), each source at its first position only (an object passed twice is one argument to autograd)."""
    seen: set[str] = set()
    for position, source in enumerate(sources):
        if source is not None and source not in seen:
            seen.add(source)
            yield position, source


class _LaterReaders:
    """Which arguments of a call may hold a gradient when its backward runs: those read again later in the
    graph (the training walk runs the calls' backwards in reverse order of the graph's nodes, so a later
    reader's backward has made one for them before)."""

    def __init__(self, graph: fx.Graph, grads: Mapping[str, bool]) -> None:
        self._graph, self._grads = graph, grads
        self._order: dict[str, int] | None = None

    def waiting(self, node: fx.Node, sources: Sequence[str | None], wants: Sequence[bool]) -> frozenset[int]:
        """The positions of ``node``'s tensor arguments (``sources``: the node each comes from) that the call
        differentiates (``wants``), each its source's first, whose source a call after ``node`` that requires
        grad reads too: that call's backward has given it a gradient when ``node``'s runs. Empty for most
        calls (an argument read once)."""
        return frozenset(
            position
            for position, source in first_sources(sources)
            if wants[position] and self._read_later(node, source)
        )

    def _read_later(self, node: fx.Node, source: str) -> bool:
        """Whether a call after ``node`` that requires grad reads ``source`` (one of ``node``'s inputs)."""
        if self._order is None:
            self._order = {each.name: index for index, each in enumerate(self._graph.nodes)}
        order = self._order
        origin = next((each for each in node.all_input_nodes if each.name == source), None)
        if origin is None:
            return False
        after = order[node.name]
        return any(
            order[user.name] > after and user.op in _CALLS and self._grads.get(user.name, False)
            for user in origin.users
        )


def _read_by(fake_mode: FakeTensorMode, value: Any) -> Any:
    """``value`` with each real tensor replaced by the fake ``fake_mode`` converts it to (:func:`_as_read`),
    aliases kept (one fake storage per real one). A real forward's node values are real tensors: converted
    inside a recorded call, they were counted as tensors the call allocated (a 15 MB ``torch.zeros`` result
    written by a recorded ``x[index] = v`` in torchvision's RoI pooling)."""
    return tree_map(lambda leaf: _as_read(leaf, fake_mode) if isinstance(leaf, torch.Tensor) else leaf, value)


def _on_fakes(function: Callable[..., Any], module: nn.Module, fake_mode: FakeTensorMode) -> Callable[..., Any]:
    """``function`` (``module``'s forward, of a real forward's copy) run with the module's real parameters and
    buffers, its sub-modules' too, swapped for the fakes ``fake_mode`` reads them as (:func:`_as_read`), then put
    back. Autograd sees an op's arguments before the fake mode converts them: on the real tensors it would keep a
    real weight (a bilinear layer's, for its input's gradient) and differentiate it, where the call's recording
    counts and differentiates the fakes it is given as the module's parameters."""
    slots = [
        (table, name, tensor)
        for owner in module.modules()
        for table in (owner._parameters, owner._buffers)
        for name, tensor in table.items()
        if tensor is not None and not isinstance(tensor, FakeTensor)
    ]
    if not slots:
        return function

    def run(*args: Any, **kwargs: Any) -> Any:
        for table, name, tensor in slots:
            table[name] = _as_read(tensor, fake_mode)
        try:
            return function(*args, **kwargs)
        finally:
            for table, name, tensor in slots:
                table[name] = tensor

    return run


def _as_read(tensor: torch.Tensor, fake_mode: FakeTensorMode) -> torch.Tensor:
    """``tensor`` as an op run under ``fake_mode`` reads it: itself if fake, else the fake the mode
    converts it to (the same one every time: the storage autograd saves of a real copy's parameter)."""
    return tensor if isinstance(tensor, FakeTensor) else fake_mode.from_tensor(tensor)


def _peeked(
    node: fx.Node, values: _Values, modules: _ModuleSignatures, grads: Mapping[str, bool]
) -> tuple[Any, tuple[str | None, ...], list[bool]] | None:
    """:func:`_call_key` read from the arguments' specs (:meth:`_Values.peek_call`: the shape pass's pending
    values are not made as fakes, the module's tensors not faked): what the made arguments give; None where
    a kept pre-hook would rewrite them."""
    peeked = values.peek_call(node)
    if peeked is None:
        return None
    args, kwargs, module = peeked
    return _call_key(node, args, kwargs, module, values, modules, grads, peek=True)


def _call_key(
    node: fx.Node,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    module: nn.Module | None,
    values: _Values,
    modules: _ModuleSignatures,
    grads: Mapping[str, bool],
    peek: bool,
) -> tuple[Any, tuple[str | None, ...], list[bool]]:
    """The call's signature (the cache's key), the node each tensor argument comes from and which
    arguments the recording differentiates (``peek``: the arguments as :meth:`_Values.peek_call` gives them)."""
    leaves = _arguments((args, kwargs))
    sources = _sources(node, values, leaves, peek)
    wants = _wants(leaves, sources, grads) if NO_GRAD not in node.meta else [False] * len(leaves)
    target = modules.of(module) if module is not None else (node.op, node.target)
    if NO_GRAD in node.meta:  # run with grad mode disabled: no autograd graph, whatever requires grad
        target = (target, NO_GRAD)
    state = node.meta.get(AUTOCAST)  # the same call under torch.autocast is another call
    if state is not None:
        target = (target, state)
    return (target, _signature((args, kwargs), iter(wants), {})), sources, wants


def _arguments(value: Any) -> list[Any]:
    """The tensors of an argument structure, :class:`Pending` values included."""
    return [leaf for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor) or type(leaf) is Pending]


def _wants(leaves: Sequence[Any], sources: Sequence[str | None], grads: Mapping[str, bool]) -> list[bool]:
    """Which tensor arguments the recording differentiates: floating ones from a node that requires grad."""
    return [
        tensor.dtype.is_floating_point and source is not None and grads.get(source, False)
        for tensor, source in zip(leaves, sources, strict=True)
    ]


@contextlib.contextmanager
def _uncached(fake_mode: Any) -> Iterator[None]:
    """``fake_mode`` (the capture's own) without FakeTensor's dispatch cache while calls are recorded:
    the cache is shared by every fake mode of the process, and a hit skips the ops that the tracker
    would see allocate (an LSTM's backward recorded 62,208 B in a fresh process, 63,232 B after one
    analysis), so what is recorded would depend on what the process analysed before."""
    enabled = getattr(fake_mode, "cache_enabled", None)
    if enabled is None:
        yield
        return
    fake_mode.cache_enabled = False
    try:
        yield
    finally:
        fake_mode.cache_enabled = enabled


def _sources(node: fx.Node, values: _Values, leaves: Sequence[Any], peek: bool = False) -> tuple[str | None, ...]:
    """The graph node each tensor argument comes from (None: made inside the call's arguments;
    ``peek``: the values as :meth:`_Values.peek` gives them)."""
    made: dict[int, str] = {}
    for source in node.all_input_nodes:
        for tensor in _arguments(values.peek(source.name)) if peek else _tensors(values.of(source.name)):
            made.setdefault(id(tensor), source.name)
    return tuple(made.get(id(tensor)) for tensor in leaves)


@frozen_record
class Replay:
    """What running the graph's calls again needs, from the capture: its fx ``graph`` of a call of
    ``root`` (the fake copy), ``fake_mode``, the ``fakes`` still to put into ``root`` (None: all
    fake), ``inputs`` making fake tensors for its placeholders (called only when a call is
    recorded: most graphs have none) and each node's ``described`` result."""

    graph: fx.Graph
    root: nn.Module
    fake_mode: Any
    inputs: Callable[[], tuple[torch.Tensor, ...]]
    described: Mapping[str, Any]
    fakes: Fakes | None = None
    results: Mapping[str, Any] | None = None
    """Each node's result as the shape pass made it (fake tensors, :class:`Pending` ones), where known."""


def worth_recording(record: NodeRecord, families: Mapping[str, Saves | None] | None = None) -> bool:
    """Whether a node's call may allocate or save more than its family says: an op with no
    declared family (composite calls, modules the registry does not know), a dropout in training
    (CPU's kernel keeps an input-sized float mask, CUDA's fused one a bool mask), a number divided by
    a tensor or a rounding division, advanced indexing, or a write by
    an index holding a tensor or a list, a product reading a strided operand (:attr:`Saves.MATMUL`, or
    :attr:`Saves.WEIGHTED` with a 2-D weight, linear, of an input with more than two dims: the
    ``reshape`` inside it may copy), or a matmul or einsum that keeps a copy of an operand
    (:func:`product_saves_its_own`). Every other family states what the op keeps
    (:mod:`~torchscan.passes.memory.saved`) and allocates only its result."""
    if not _runs(record) or record.call is None or record.call.target in _NOT_RECORDED:
        return False
    kind = family_in(record, families)
    if kind is None:
        return True
    call = record.call
    if kind is Saves.DROPOUT:  # in training, the mask's dtype is the device kernel's (CPU: the input's)
        return drops(call)
    if kind is Saves.QUOTIENT:  # ``2 / x`` (a reciprocal inside) and rounding divisions: not a plain quotient
        return call.get("rounding_mode") is not None or number_divided(call)
    if kind is Saves.INDEX:  # advanced indexing: a gather keeping its indices, made inside from a list
        return _advanced(call)
    if kind is Saves.INDEX_WRITE:  # ``x[index] = value`` by tensors or lists: ``index_put_`` keeps its indices
        return any(isinstance(item, (TensorSpec, tuple)) for item in _index_items(call))
    strided = not all(spec.contiguous for spec in record.call.inputs)
    if kind is Saves.MATMUL and call.target in _FOLDED:
        return strided or product_saves_its_own(call)
    if kind is Saves.MATMUL:
        return strided
    weight = record.call.spec("weight")
    if kind is not Saves.WEIGHTED or weight is None or weight.ndim != 2:
        return False
    # linear: an input of more than two dims is reshaped to (-1, in) first (a copy where that is no view);
    # a 2-D one goes to addmm / mm as it is (ViT's head on its class token, ``x[:, 0]``), whatever its strides
    return any(not spec.contiguous and spec.ndim > 2 for spec in call.inputs)


_NOT_RECORDED = frozenset({torch._grouped_mm, torch.nn.functional.grouped_mm, torch.ops.aten._grouped_mm.default})
"""Ops whose meta kernel refuses what the device kernels run (grouped matmul: bfloat16 and float16 only, where the
CPU kernel runs float32 too; FakeTensor logs the refusal): their family's rule states what they keep."""

_EINSUMS = frozenset({torch.einsum, torch._VF.einsum})
"""einsum's spellings (:func:`product_saves_its_own`)."""

_FOLDED = frozenset({*_EINSUMS, torch.matmul, torch.Tensor.matmul, operator.matmul, torch.Tensor.__matmul__})
"""Products torch folds into ``mm``/``bmm`` by expanding, permuting and reshaping their operands (``a @ b``
spelt as ``a``'s call: ``__rmatmul__`` is not here)."""


def _runs(record: NodeRecord) -> bool:
    """A call node with a counted call and outputs: one a recording can run."""
    return record.op in _CALLS and record.call is not None and bool(record.outputs)


def product_saves_its_own(call: Any) -> bool:
    """Whether torch's matmul or einsum of contiguous operands of these shapes keeps for backward a
    tensor it made itself rather than an operand or a view of one: a broadcast operand expanded to the
    other's batch dims and reshaped (``(B, H, N, D) @ (H, D, M)``: a copy ``B`` times the operand's
    size), a vector or matrix against a batch of matrices, an einsum operand permuted to its batched
    layout whose reshape copies (timm's MViTv2 relative positions, ``"byhwc,hkc->byhwk"``: its batch dim
    ``h`` lies between ``y`` and ``w``, merged into one), a sum over a dim only one operand has. Told by
    torch's own op run on plain meta tensors of the operands' shapes that require grad, what autograd
    packs compared with them (~0.05 ms; no arithmetic), except where the fold is known to keep views
    (matrices of equal batch dims, or by a 2-D right operand); an op it cannot run there is recorded."""
    inputs = call.inputs
    if not all(spec.dtype.is_floating_point for spec in inputs):
        return False  # no gradient: nothing saved
    einsum = call.target in _EINSUMS
    if not einsum:
        if len(inputs) != 2:
            return True
        a, b = inputs
        if a.ndim >= 2 and (b.ndim == 2 or (b.ndim == a.ndim and a.shape[:-2] == b.shape[:-2])):
            return False  # reshapes of contiguous operands, or none: views
    if einsum:
        equation = einsum_equation(call)
        return _keeps_its_own(lambda *operands: torch.einsum(equation, *operands), _layouts(inputs))
    return _keeps_its_own(torch.matmul, _layouts(inputs))


Layout = tuple[tuple[int, ...], tuple[int, ...] | None, torch.dtype]
"""An operand's sizes, strides (None: contiguous) and dtype."""


def _layouts(specs: Sequence[TensorSpec]) -> list[Layout]:
    return [(spec.shape, None, spec.dtype) for spec in specs]


def _keeps_its_own(function: Callable[..., Any], operands: Sequence[Layout]) -> bool:
    """Whether ``function`` on plain meta operands of these layouts, all requiring grad, keeps for backward
    a tensor it made itself rather than an operand or a view of one (what autograd packs, through
    ``saved_tensors_hooks``; ~0.05 ms, no arithmetic); True where torch refuses to run it."""
    made: list[bool] = []
    with no_dispatch(), torch.enable_grad():
        tensors = [
            torch.empty(shape, dtype=dtype, device="meta", requires_grad=True)
            if stride is None
            else torch.empty_strided(shape, stride, dtype=dtype, device="meta", requires_grad=True)
            for shape, stride, dtype in operands
        ]

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            if not any(tensor is operand or tensor._base is operand for operand in tensors):
                made.append(True)
            return tensor

        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                function(*tensors)
        except (RuntimeError, ValueError, IndexError, TypeError):
            return True
    return bool(made)


_LINEAR = frozenset({F.linear, torch._C._nn.linear})
"""The functional spellings of a linear layer (:meth:`_Operands._unbiased_linear`)."""

_PRODUCTS = frozenset(
    {torch.matmul, torch.Tensor.matmul, operator.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm}
)
"""Products of two tensors whose memory a strided operand may leave as contiguous operands give it
(:meth:`_Operands.plain_product`): torch's matmul folds them by views where the strides allow."""


class _Operands:
    """The operands of the graph's products as the shape pass made them (their strides, which a
    record's specs do not hold), to tell a strided product that needs no recording."""

    def __init__(self, graph: fx.Graph, results: Mapping[str, Any]) -> None:
        self._nodes: dict[str, fx.Node] | None = None
        self._graph, self._results = graph, results
        self._known: dict[tuple[Any, ...], bool] = {}

    def plain_product(self, record: NodeRecord, families: Mapping[str, Saves | None] | None) -> bool:
        """Whether ``record`` is a product of two tensors recorded only because an operand is strided
        (:func:`worth_recording`) that keeps no tensor of its own for backward with these strides
        (:func:`_strided_saves_its_own`): its ``reshape`` folds the strided operand by a view
        (``q @ k.transpose(-2, -1)``), so its ATen ops make, keep and free what they do for contiguous
        operands of the same sizes, and its family's rule answers, as for those; an operand the shape pass
        keeps pending is the contiguous tensor it makes. A linear layer too, but only without a bias
        (:meth:`_unbiased_linear`): on a strided input (tokens ``x.transpose(1, 2)``) torch adds its bias
        to a new tensor, which the rule does not say, even where the reshape folds by a view."""
        call = record.call
        if call is None:
            return False
        if self._nodes is None:
            self._nodes = {node.name: node for node in self._graph.nodes}
        node = self._nodes.get(record.name)
        if node is None or node.kwargs or not all(type(a) is fx.Node for a in node.args):
            return False
        family = family_in(record, families)
        if family is Saves.WEIGHTED:
            function, operands = self._unbiased_linear(record, node)
        elif call.target in _PRODUCTS and family is Saves.MATMUL and len(node.args) == 2:
            if call.target in _FOLDED and product_saves_its_own(call):
                return False
            function, operands = call.target, tuple(_layout(self._results.get(arg.name)) for arg in node.args)
        else:
            return False
        if function is None or None in operands:
            return False
        key = (function, operands)
        plain = self._known.get(key)
        if plain is None:
            plain = self._known[key] = not _strided_saves_its_own(function, operands)
        return plain

    def _unbiased_linear(self, record: NodeRecord, node: fx.Node) -> tuple[Any, tuple[Layout | None, ...]]:
        """``F.linear`` and the layouts of its input and weight where ``record`` is a linear layer without a
        bias (``nn.Linear``'s own forward, or ``F.linear(x, w)``): torch's linear folds a strided input by
        a view where its strides allow, and without a bias to add it then makes what it makes for a
        contiguous input (``tests/passes/memory/test_internal.py`` compares their storage traces); else
        ``(None, ())``."""
        call = record.call
        assert call is not None
        if call.get("bias") is not None:
            return None, ()
        if isinstance(call.target, type) and getattr(call.target, "forward", None) is nn.Linear.forward:
            weight = call.spec("weight")
            if len(node.args) != 1 or weight is None or not weight.contiguous:
                return None, ()
            weight_layout = (weight.shape, contiguous_strides(weight.shape), weight.dtype)
            return F.linear, (_layout(self._results.get(node.args[0].name)), weight_layout)
        if call.target in _LINEAR and len(node.args) == 2:
            return F.linear, tuple(_layout(self._results.get(arg.name)) for arg in node.args)
        return None, ()


def _layout(value: Any) -> Layout | None:
    """A strided tensor's shape, strides and dtype; a :class:`Pending` value's as the fake it makes (a new
    contiguous tensor: a softmax's result, ``attn @ v``); None for anything else."""
    if type(value) is Pending:
        return tuple(value.shape), contiguous_strides(value.shape), value.dtype
    if isinstance(value, torch.Tensor) and value.layout == torch.strided:
        return tuple(value.shape), value.stride(), value.dtype
    return None


def _strided_saves_its_own(function: Callable[..., Any], operands: Sequence[Layout]) -> bool:
    """Whether ``function`` on floating operands of these layouts keeps a tensor it made itself for
    backward (:func:`_keeps_its_own`: a ``reshape`` that copies a strided operand makes a tensor the
    product always keeps); True where an operand is not floating (nothing is kept without a gradient:
    a copy would go unseen)."""
    return not all(dtype.is_floating_point for _, _, dtype in operands) or _keeps_its_own(function, operands)


def _index_items(call: Any) -> tuple[Any, ...]:
    """The items of the index of a write ``x[index] = value``: a tuple index's items, else the index."""
    try:
        _, index, _ = index_write_arguments(call)
    except ValueError:  # another structure: nothing read as an index
        return ()
    return index if isinstance(index, tuple) else (index,)


def number_divided(call: Any) -> bool:
    """Whether a division call divides a number by a tensor (``operator.truediv(2, x)``): its first
    argument is no tensor (a tensor method's ``self`` always is)."""
    return call.kind != "method" and not isinstance(next(iter(call.attrs.values()), None), TensorSpec)


def _advanced(call: Any) -> bool:
    """Whether an indexing call (``operator.getitem(x, index)``, ``x.__getitem__(index)``) indexes a
    tensor with a tensor or a list (advanced indexing) rather than integers, slices, ``None`` and ``...``.

    The call's arguments hold a list as a tuple: ``x[[0, 2]]`` reads like ``x[0, 2]``. A tuple of
    integers, slices, ``None`` and ``...`` is basic indexing only where the result has the dims basic
    indexing gives (one fewer per integer, one more per ``None``); any other result is advanced."""
    if call.kind == "method":
        args = call.get("args", ())
        index = args[0] if args else None
    else:
        values = tuple(call.attrs.values())
        if len(values) < 2 or not isinstance(values[0], TensorSpec):  # an item of a tuple, a list, a dict
            return False
        index = values[1]
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(item, (TensorSpec, tuple, list)) for item in items):
        return True
    if not isinstance(index, tuple) or not call.inputs or not call.outputs:
        return False
    dropped = sum(type(item) is int for item in items)
    added = sum(item is None or type(item) is bool for item in items)
    return call.outputs[0].ndim != call.inputs[0].ndim - dropped + added


def calls_to_record(
    replay: Replay,
    ordered: Sequence[NodeRecord],
    families: Mapping[str, Saves | None] | None = None,
    always: Collection[str] = frozenset(),
) -> list[str]:
    """The nodes :func:`recorded_calls` records: every node :func:`worth_recording` (``families``: each node's
    family, when at hand), except a product whose strided operand folds by a view
    (:meth:`_Operands.plain_product`, read from the shape pass's values: a record holds no strides); and every
    call node in ``always``, whatever its family: made under autocast (only a recording sees its casts,
    :data:`~torchscan.graph.autocast.AUTOCAST_NODES`), or a call of a module that computes its weight from others
    (:data:`~torchscan.graph.build.REPARAMETRIZED_NODES`: the weight is an allocation of the call, saved for the
    backward, with a gradient of its own)."""
    chosen = [
        record for record in ordered if (record.name in always and _runs(record)) or worth_recording(record, families)
    ]
    if chosen and replay.results is not None:
        operands = _Operands(replay.graph, replay.results)
        chosen = [record for record in chosen if record.name in always or not operands.plain_product(record, families)]
    return [record.name for record in chosen]


def recorded_calls(
    replay: Replay,
    ordered: Sequence[NodeRecord],
    grads: Mapping[str, bool],
    families: Mapping[str, Saves | None] | None = None,
    always: Collection[str] = frozenset(),
    selected: Sequence[str] | None = None,
) -> dict[str, NodeMemory]:
    """:func:`record_calls` of the nodes :func:`calls_to_record` chooses (``selected``: its answer, when at
    hand; none: nothing is run)."""
    if selected is None:
        selected = calls_to_record(replay, ordered, families, always)
    if not selected:
        return {}
    with quiet_fake_tensor_log():  # a call its recording fails on takes its family's rule: nothing to print
        return record_calls(
            replay.graph,
            replay.root,
            replay.inputs(),
            replay.fake_mode,
            replay.described,
            selected,
            grads,
            replay.fakes,
            replay.results,
        )
