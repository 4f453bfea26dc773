"""Block reuse for the tracer: a repeated block is traced once and its sub-graph replayed.

Models repeat blocks: the same class, the same configuration, called on arguments of the same
structure (ResNet's bottlenecks, a transformer's layers). The first call of such a block is traced
and *recorded*: the nodes it made (a contiguous run of the graph), the module calls and outputs it
registered, the stack each node was made from. The first call of another block with the same *key*
replays the recording with its own paths substituted — node for node the graph its trace gives
(names, targets, arguments, ``nn_module_stack``, stack traces, module outputs, call counts) without
running its forward. A block is recorded only where another block the trace will call has its key
(:func:`_called`).

The key (:meth:`BlockReuse._key_tree`, made once before the first block runs) is structural and
conservative: the module's class and training flag, every attribute it holds (plain values by value
and type, floats by ``repr``, tuples item by item with their types, slices, functions and other objects by
identity and their own attributes one level down), its parameters' and buffers'
names, classes, shapes, dtypes, devices and grad flags, its sub-modules' keys in turn; and the call's
argument structure (a proxy by which distinct node it is, any other value by value). A block whose
key cannot be made (an instance-level ``forward``, a kept pre-hook, a module or tensor shared with
another place, a module held outside the tree, an argument that is neither a proxy nor a plain
value) is traced as usual. A recording is refused — the key is then never replayed — when the trace
reached outside the block: a node reading a node that is neither one of the block's arguments nor
its own, a module or tensor outside its path, a real constant for the root, a size read by its Python
code (:class:`~torchscan.graph.guards.Guard`), a write into a tensor it did not make (``x[i] = v``), a change to the
attributes of the block or of a module it called or to its argument containers, an inner module
already called, an output that is not plain data. A replay is refused where its trace would differ
from the recorded one (a parameter of the block already read, an inner module already called). A
rank, dtype or device its Python code read (``x.ndim``: timm's normalization layers check theirs) does
not refuse the recording: a replay keeps it as a guard on its own node, checked on the shape pass's
values, and the model is traced again without reuse where one reads otherwise (``Capture.checks``).

An object the blocks share (a counter object, a config every layer holds) is in each block's key with its
attributes: a block's forward that changes them (``self.shared.calls += 1``, an append to a list it holds)
changes its key, and its recording is refused (the blocks after read the object as changed). A global the
model's code binds (``global CALLS; CALLS += 1``) is seen after the trace: the capture chain traces again
with every block traced (:class:`~torchscan.graph.kept.KeptState`). What is seen by neither is a
change deeper down (an item of a list an object or a global holds, set in place): fx bakes such values
into the graph, and a replay bakes the first block's. ``capture(..., reuse=False)`` traces every block.

Keying costs every module of the tree, a replay saves only its block's nodes: before keying, a
cheap upper bound of what replays could skip (:func:`_replayable`, by classes and tensor shapes) is
compared with :data:`MIN_SHARE` of the tree, and below it the trace keys nothing (every block traced,
the same graph). ``capture(..., min_share=0)`` keys wherever a block repeats.
"""

from __future__ import annotations

import enum
import operator
import re
import sys
import types
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.fx import traceback as fx_traceback

from torchscan.graph import autocast
from torchscan.graph.executions import EXECUTIONS
from torchscan.graph.guards import METADATA
from torchscan.graph.returned import ReturnSites
from torchscan.graph.routing import ROUTED_STATE
from torchscan.records.frozen import frozen_record

__all__ = ["MIN_SHARE", "BlockReuse", "Host"]


class Host(Protocol):
    """What :class:`BlockReuse` reads and writes of the tracer (:class:`torchscan.graph.trace._Tracer`)."""

    graph: fx.Graph
    autocast_seen: bool
    region: Any
    """The checkpointed call running (:class:`~torchscan.graph.checkpoint.Region`; None: none)."""
    num_calls: dict[str, int]
    module_stack: Any
    node_name_to_scope: dict[str, tuple[str, type]]
    module_outputs: dict[str, list[str]]
    root: nn.Module
    submodule_paths: dict[nn.Module, str] | None
    tensor_attrs: dict[torch.Tensor, str]
    constants: set[str]
    folded: set[str]
    shared_tensors: set[int]
    guards: list[Any]
    returned: ReturnSites
    """The user lines receiving module call results (:mod:`~torchscan.graph.returned`)."""

    @property
    def proxy_type(self) -> type[fx.Proxy]:
        """The class of the proxies the tracer hands out (:meth:`proxy`)."""
        ...

    def proxy(self, node: fx.Node) -> fx.Proxy: ...

    def get_fresh_qualname(self, prefix: str) -> str: ...

    def node_candidate(self, target: Any) -> str:
        """fx's name candidate for a call node of ``target`` (``Graph._target_to_str``), remembered."""
        ...

    def real_of(self, fake: torch.Tensor) -> torch.Tensor: ...

    def held_fake(self, path: str) -> torch.Tensor: ...

    @property
    def fake_mode(self) -> FakeTensorMode: ...

    def own_tensor_path(self, tensor: torch.Tensor) -> str | None: ...

    def parameter_proxies(self) -> dict[str, fx.Proxy]: ...

    def frames_from(self, frame: Any) -> tuple[Any, ...]: ...

    def stack_text(self, frames: tuple[Any, ...]) -> str: ...

    def runs_above(self) -> tuple[int, ...]:
        """The runs of the lines of the user frames above the innermost running module call
        (:class:`~torchscan.graph.executions.Executions`)."""
        ...

    def note_passed(self, path: str, after: fx.Node) -> None:
        """A call of the module at ``path`` that made no node (it returned its argument), after the node
        ``after``."""

    def replayed_metadata(self, node: str, kind: str, value: Any) -> None:
        """Metadata (``kind``: rank, dtype or device) the recorded block read, at the replayed node
        ``node``: kept as a guard, checked once the shape pass has the replay's values."""
        ...


_MODULE_STATE = frozenset({*vars(nn.Module()), *ROUTED_STATE})
"""``nn.Module``'s own attributes: keyed apart (training, tensors, children) or not at all (hooks, the call slot)."""

_VALUES = frozenset({int, bool, str, bytes, type(None), torch.dtype, torch.device, torch.layout, torch.memory_format})
"""Value types keyed by value (inside containers, floats by ``repr``: ``0.0 == -0.0``)."""

_PLAIN = frozenset({*_VALUES, float, complex, tuple})
"""Attribute types keyed together by value (:meth:`BlockReuse._own_key`'s fast path, with :func:`_exact`)."""

_LOOSE = frozenset({float, complex, tuple})
"""Plain types whose values ``==`` equates across what a trace tells apart (:func:`_exact`)."""

_NODE_META = frozenset({"nn_module_stack", "stack_trace", EXECUTIONS})
"""The node meta our tracer writes (other keys are replayed only when their values are plain: ``is_wrapped``)."""

MIN_SHARE = 0.9
"""Least share of the tree's modules that replays could skip (:func:`_replayable`) for a trace to key
its modules and record blocks at all. Keying costs every module (~7 µs), a replay saves its block's trace
less what recording and checking cost, and a trace of a block that calls leaf modules only is cheap: a replay
pays where the block's code reads sizes and ranks (a transformer's attention and window code, whose reads the
trace answers by propagating shapes as it goes). Measured per model, capture with and without reuse
(``benchmarks/speed.md``, issue 13's eleventh round and fifty-first session): ViTs, BEiT, CaiT, TNT, DeiT (0.90–0.96)
and Llama (0.99) paid, the CNNs between 0.8 and 0.9 lost 6–30% of their capture (ResNet-101/152, ResNeXt-101,
RegNetY-1.6GF, EfficientNet-B7/V2-S, ShuffleNetV2 0.81–0.89); Swin-S/V2-S (0.84–0.85), traced block by block
now, gave up a 15–17% gain (2–3% of their analyses, which their memory recordings dominate)."""

_MAX_VALUES = 2_000
"""Most values keyed per attribute (a module holding a large structure is not keyed)."""


_Reader = Callable[[dict[str, Any]], tuple[Any, ...]]


class _NoKey(Exception):
    """A value or module that cannot be keyed: the block is traced as usual."""


class _Invalid(Exception):
    """A recorded trace that reached outside its block: not kept."""


@frozen_record
class _Recording:
    """One block's recorded trace, paths relative to its ``path``."""

    path: str
    nodes: tuple[fx.Node, ...]
    """The nodes the block made, in order (they stay in the graph: a replay reads them)."""
    arguments: tuple[fx.Node, ...]
    """The distinct argument nodes, in the order the key numbers them."""
    parameters: frozenset[fx.Node]
    """``get_attr`` nodes made for the block's parameters (registered as the tracer's parameter proxies)."""
    named: frozenset[int]
    """Nodes whose arguments hold text naming nodes (``f"{proxy}"``: "Proxy(name)"), renamed on replay."""
    flags: Mapping[int, tuple[tuple[str, Any], ...]]
    """Other node meta, plain values only (fx's ``is_wrapped``), by node."""
    constants: Mapping[int, tuple[str | None, torch.Tensor]]
    """``get_attr`` nodes of fake tensors the block computed on its own tensors outside the graph
    (``self.inv_freq[None, :]`` on a buffer's fake), which the trace makes root attributes: by node,
    the relative path of the block tensor it is a view of (None: its own storage) and the tensor."""
    suffixes: tuple[tuple[Any, ...], ...]
    """Per node, its stack below the block's call (a replay puts the new call's stack above)."""
    stack_depth: int
    """``len(module_stack)`` inside the block (its own entry included)."""
    texts: dict[tuple[Any, ...], dict[int, str]]
    """Stack trace texts of replays, by the stack above the call, then by suffix (``id``: kept alive here)."""
    calls: tuple[tuple[str, int], ...]
    """Inner module calls (relative path, count), in first-call order."""
    events: tuple[tuple[str, Any, Any], ...]
    """In order: ("call", relative path, None), ("output", relative path, ("node" or "argument", index)) and
    ("passed", relative path, index of the node made before the call, None: the one before the block), the last
    for a call that returned its argument itself."""
    output: Any
    """The returned value as a template: ``("node", index)``, ``("value", v)`` or ``(type, items)``."""
    reads: tuple[tuple[str, int, str, Any], ...]
    """Metadata the block's Python code read (``x.ndim``, ``x.dtype``, ``x.device``): ``("node", index,
    kind, value)`` of a node it made, ``("argument", index, kind, value)`` of an argument; a replay's
    are checked after its shape pass."""
    runs: tuple[tuple[int, ...] | None, ...] = ()
    """Per node, the runs of its user frames' lines below the block's call (a replay puts the new call's
    above; None: the node's runs are not known)."""


@frozen_record
class _Pending:
    """A block's trace as it returned, its nodes not checked yet (:meth:`BlockReuse._checked`: at the
    first replay, so a block no other block repeats costs little)."""

    path: str
    nodes: tuple[fx.Node, ...]
    arguments: tuple[fx.Node, ...]
    caller: tuple[Any, ...]
    stack_depth: int
    frames: tuple[tuple[Any, ...] | None, ...]
    """Each node's stack (:meth:`Host.frames_from` of the frame that made it)."""
    calls: tuple[tuple[str, int], ...]
    events: tuple[tuple[str, str, Any], ...]
    """("call", relative path, None), ("output", relative path, node name) and ("passed", relative path, the
    name of the node made before the call, None: the one before the block), in order."""
    output: Any
    made_constants: Mapping[str, torch.Tensor]
    reads: tuple[tuple[str, str, Any], ...]
    """(node name, kind, value) of each rank, dtype or device the block's Python code read."""
    runs_above: tuple[int, ...] = ()
    """The runs of the lines of the user frames above the block's call."""


class BlockReuse:
    """Records the first call of each block key and replays it for later blocks of the same key."""

    def __init__(self, host: Host, min_share: float = MIN_SHARE) -> None:
        self._host = host
        self._min_share = min_share
        """:data:`MIN_SHARE` (0: key and record wherever a block repeats)."""
        self._proxies = frozenset({fx.Proxy, host.proxy_type})
        """Proxy classes keyed by node; any other (fx's attribute proxies, made lazily) makes a call unkeyable."""
        self._recordings: dict[Hashable, _Recording | _Pending | None] = {}
        self._module_keys: dict[nn.Module, int | None] = {}
        """Each module's structural key, as the number of its distinct key (None: not keyable)."""
        self._own_keys: dict[nn.Module, tuple[Any, ...]] = {}
        self._states: dict[int, Hashable] = {}
        """The attributes of each plain object an attribute holds (:func:`_state_of`), made once per keying pass."""
        self._layouts: dict[type, tuple[tuple[str, ...], _Reader, tuple[str, ...]]] = {}
        """Per module class: its attribute names, a reader of the values of those not ``nn.Module``'s own."""
        self._plain_kinds: dict[tuple[type, ...], bool] = {}
        self._counts: Counter[int] | None = None
        self._paths: dict[str, nn.Module] | None = None
        """Each module of the tree by path (made at the first recording)."""
        self._recorded: set[int] = set()
        """Block keys with a recording (or a refused one), whatever the arguments."""
        self.depth = 0
        """How many recordings are running (the tracer logs calls, outputs and frames while > 0)."""
        self.log: list[tuple[str, Any, Any]] = []
        """Calls, outputs, index writes and refusals of the running recordings (cleared when none runs)."""
        self.frames: dict[fx.Node, tuple[Any, ...]] = {}
        """Each node's stack, for nodes made while a recording runs."""
        self.replayed: list[tuple[str, str]] = []
        """(path, path of the block recorded) of each block replayed, in order."""

    def call(self, module: nn.Module, path: str, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """The first call of the non-leaf module at ``path``: replayed, recorded or traced as usual."""
        if self._counts is None:
            self._counts = self._key_tree()
        block = self._module_keys.get(module)
        if block is None or fx_traceback.has_preserved_node_meta():  # not keyable (or fx's own node meta asked for)
            return forward(*args, **kwargs)
        host = self._host
        if host.autocast_seen or autocast.enabled() or not torch.is_grad_enabled() or host.region is not None:
            return forward(*args, **kwargs)  # states in no key (a checkpointed call's: its nodes carry it)
        left = self._counts[block] = self._counts[block] - 1  # blocks of this key still to be called
        if left < 1 and block not in self._recorded:  # nothing to replay, no later block to replay it
            return forward(*args, **kwargs)
        numbers: dict[fx.Node, int] = {}
        try:
            key = (block, _signature((args, kwargs), numbers, self._proxies))
        except _NoKey:
            return forward(*args, **kwargs)
        found = self._recordings.get(key, False)
        if found is None or (found is False and left < 1):  # refused before, or no later block to replay it
            return forward(*args, **kwargs)
        caller = self._host.frames_from(sys._getframe(2))  # the frame that called the tracer's call_module
        if isinstance(found, _Pending):  # the first replay of a recording: its nodes checked now
            try:
                found = self._recordings[key] = self._checked(found)
            except (_Invalid, _NoKey):
                self._recordings[key] = None
                return forward(*args, **kwargs)
        if found is not False:
            result = self._replay(found, path, tuple(numbers), caller)
            return forward(*args, **kwargs) if result is _REFUSED else result
        return self._record(key, module, path, forward, args, kwargs, tuple(numbers), caller)

    # -- keys ------------------------------------------------------------------------------------------

    def _key_tree(self) -> Counter[int]:
        """The structural key of every module of the tree (None: not keyable), made once at the
        trace's first block call (before any block runs); and how many of the modules a trace will
        call (:func:`_called`) share each key: a block is recorded only if another may replay it.
        None at all (an empty count) where replays could skip less than ``min_share`` of the tree's
        modules (:func:`_replayable`)."""
        keys, root = self._module_keys, self._host.root
        self._states = {}
        if self._min_share > 0:
            skippable, total = _replayable(root)
            if skippable < self._min_share * total:  # keys would cost more than replays save: none made
                return Counter()
        self._visit(root, root, {})
        counts = Counter(key for key in keys.values() if key is not None)
        return Counter(key for key in _called(root, keys, counts) if key is not None)

    def _visit(self, module: nn.Module, root: nn.Module, numbers: dict[Hashable, int]) -> int | None:
        """``module``'s key, its sub-modules' first (``numbers``: each distinct key by a number, so a
        key holds its children's numbers, not their keys)."""
        keys = self._module_keys
        keys[module] = None  # a cycle back to it: not keyable
        keyable = True
        children: list[Any] = []
        for name, child in vars(module)["_modules"].items():
            if child is None:
                children.append((name, None))
            elif child in keys:  # a module met before, at another place of the tree: not keyable
                keyable = False
            else:
                found = self._visit(child, root, numbers)
                keyable = keyable and found is not None
                children.append((name, found))
        if not keyable or module is root:
            return None
        try:
            own = self._own_keys[module] = self._own_key(module)
        except _NoKey:
            return None
        key = keys[module] = numbers.setdefault((own, tuple(children)), len(numbers))
        return key

    def _own_key(self, module: nn.Module) -> tuple[Any, ...]:
        """Class, training flag, attributes, parameters and buffers of ``module`` (not its children).

        Attributes by value where every one is a plain value or a tuple of hashable values (compared
        as Python compares them, with their types at the top level and what :func:`_exact` adds: ``1``,
        ``1.0`` and ``True`` differ, in a tuple too, and so do ``0.0`` and ``-0.0``), through the
        attribute layout of the module's class (one read of the values); else one by one
        (:func:`_value_key`: a slice, for one, by identity)."""
        state = vars(module)
        if state.get("_forward_pre_hooks") or "forward" in state:
            raise _NoKey
        cls = type(module)
        names = tuple(state)
        layout = self._layouts.get(cls)
        if layout is None or layout[0] != names:
            plain = tuple(name for name in names if name not in _MODULE_STATE)
            layout = self._layouts[cls] = (names, _getter(plain), plain)
        values = layout[1](state)
        kinds = tuple(map(type, values))
        plain = self._plain_kinds.get(kinds)
        if plain is None:
            plain = self._plain_kinds[kinds] = all(kind in _PLAIN for kind in kinds)
        if plain and tuple in kinds:  # a tuple may hold what has no hash (a slice, a list): item by item then
            try:
                hash(values)
            except TypeError:
                plain = False
        if plain:
            items: list[Any] = [cls, module.training, layout[2], kinds, values]
            loose = tuple([_exact(value) for value, kind in zip(values, kinds, strict=True) if kind in _LOOSE])
            if loose:  # what == does not tell apart: (1,) == (1.0,) == (True,), 0.0 == -0.0
                items.append(loose)
        else:
            items = [cls, module.training]
            budget = [_MAX_VALUES]
            for name, value in zip(layout[2], values, strict=True):
                kind = type(value)
                if kind is types.MethodType and value.__self__ is module:  # the tracer's rebinding
                    items.append((name, kind, value.__func__))
                elif isinstance(value, torch.Tensor):
                    items.append((name, self._tensor_key(value, module, name)))
                else:
                    items.append((name, _value_key(value, budget, self._states)))
        shared = self._host.shared_tensors
        for kind_name in ("_parameters", "_buffers"):
            for name, tensor in dict.items(state[kind_name]):
                if tensor is None:
                    items.append((name, None))
                elif id(tensor) in shared:
                    raise _NoKey
                else:
                    items.append((name, type(tensor), tensor.shape, tensor.dtype, tensor.device, tensor.requires_grad))
        return tuple(items)

    def _constant(self, tensor: torch.Tensor, path: str) -> tuple[str | None, torch.Tensor]:
        """What a replay needs to make a recorded constant again: the path (relative to the block)
        of the block's tensor it views, or None for a tensor of its own storage."""
        if not isinstance(tensor, FakeTensor):
            raise _Invalid
        base = tensor._base
        if base is None:
            return None, tensor
        where = self._host.own_tensor_path(self._host.real_of(base))
        relative = _relative(where, path) if where is not None else None
        if not relative:  # a view of a tensor outside the block
            raise _Invalid
        return relative, tensor

    def _replayed_constant(self, relative: str | None, tensor: torch.Tensor, path: str) -> torch.Tensor:
        """A recorded constant made for the replayed block at ``path``: the same view of the block's
        own tensor, or a new fake of the same size, strides and dtype (as the block's trace makes)."""
        with self._host.fake_mode:
            if relative is None:
                made = torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device=tensor.device)
            else:
                base = self._host.held_fake(path + relative)
                made = base.as_strided(tensor.shape, tensor.stride(), tensor.storage_offset())
        return made.requires_grad_(tensor.requires_grad) if tensor.requires_grad != made.requires_grad else made

    def _tensor_key(self, tensor: torch.Tensor, module: nn.Module, name: str) -> Hashable:
        """A tensor attribute of ``module``: by class, shape, dtype, device and grad flag, if the trace
        reads it under this attribute's path (else it is shared with another place: not keyable)."""
        owner = (self._host.submodule_paths or {}).get(module)
        if owner is None or self._host.own_tensor_path(tensor) != f"{owner}.{name}":
            raise _NoKey
        return (type(tensor), tensor.shape, tensor.dtype, tensor.device, tensor.requires_grad)

    # -- recording -------------------------------------------------------------------------------------

    def _record(
        self,
        key: Hashable,
        module: nn.Module,
        path: str,
        forward: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        arguments: tuple[fx.Node, ...],
        caller: tuple[Any, ...],
    ) -> Any:
        host = self._host
        graph = host.graph
        before = last_node(graph)
        attributes, guards = len(host.tensor_attrs), len(host.guards)
        stack_depth = len(host.module_stack)
        start = len(self.log)
        runs_above = host.runs_above()
        self.depth += 1
        try:
            result = forward(*args, **kwargs)
        except BaseException:
            self.log.append(("refused", None, None))
            raise
        finally:
            self.depth -= 1
        try:
            made = {}
            if len(host.tensor_attrs) != attributes:  # root constants made by the block (in order: the last ones)
                made = {name: tensor for tensor, name in list(host.tensor_attrs.items())[attributes:]}
            if any(not isinstance(tensor, FakeTensor) for tensor in made.values()):  # a real tensor: its values
                raise _Invalid
            read = host.guards[guards:]
            if any(guard.kind not in METADATA for guard in read):  # sizes read: another block may read others
                raise _Invalid
            reads = tuple((guard.node, guard.kind, guard.value) for guard in read)  # checked where replayed
            recording: _Pending | None = self._capture(
                path, before, arguments, caller, stack_depth, start, result, made, reads, runs_above
            )
            if self._changed(module, path, recording.calls):  # the forward changed a module's own state
                raise _Invalid
            if _signature((args, kwargs), {}, self._proxies) != key[1]:  # the forward changed its argument containers
                raise _Invalid
        except (_Invalid, _NoKey):
            recording = None
            self.log.append(("refused", None, None))
        self._recordings[key] = recording
        self._recorded.add(key[0])
        if not self.depth:
            self.log.clear()
            self.frames.clear()
        return result

    def _changed(self, module: nn.Module, path: str, calls: tuple[tuple[str, int], ...]) -> bool:
        """Whether the block's forward changed the state of the block or of a module it called (a
        counter, a kept value): a replay would not, and a later call of that module would see it."""
        if self._paths is None:
            self._paths = {where: found for found, where in (self._host.submodule_paths or {}).items()}
        self._states = {}  # the held objects as the forward left them
        for inner in (module, *(self._paths.get(path + relative) for relative, _ in calls)):
            if inner is None or inner not in self._own_keys or self._own_key(inner) != self._own_keys[inner]:
                return True
        return False

    def _capture(
        self,
        path: str,
        before: fx.Node | None,
        arguments: tuple[fx.Node, ...],
        caller: tuple[Any, ...],
        stack_depth: int,
        start: int,
        result: Any,
        made_constants: Mapping[str, torch.Tensor],
        reads: tuple[tuple[str, str, Any], ...],
        runs_above: tuple[int, ...],
    ) -> _Pending:
        """What a recording needs, taken as the block returns (what later calls could change: the
        log, call counts, the output's containers); its nodes are checked at the first replay."""
        host = self._host
        nodes = tuple(_nodes_after(host.graph, before))
        index = {node: position for position, node in enumerate(nodes)}
        calls: dict[str, int] = {}
        events: list[tuple[str, Any, Any]] = []
        for kind, where, name in self.log[start:]:
            if kind == "refused" or (kind == "write" and where not in index):  # a write into an argument
                raise _Invalid
            if kind == "write":
                continue
            relative = _relative(where, path)
            if not relative:  # outside the block, or the block itself again
                raise _Invalid
            if kind == "call":
                calls[relative] = calls.get(relative, 0) + 1
                events.append(("call", relative, None))
            elif kind == "passed":  # a call that returned its argument itself, after the node ``name``
                if name is not before and name not in index:
                    raise _Invalid
                events.append(("passed", relative, None if name is before else name.name))
            else:
                events.append(("output", relative, name))
        for relative, count in calls.items():  # every inner module called first within the block
            if host.num_calls.get(path + relative, 0) != count:
                raise _Invalid
        frames = tuple(self.frames.get(node) for node in nodes)
        numbers = {node: position for position, node in enumerate(arguments)}
        return _Pending(
            path=path,
            nodes=nodes,
            arguments=arguments,
            caller=caller,
            stack_depth=stack_depth,
            frames=frames,
            calls=tuple(calls.items()),
            events=tuple(events),
            output=_template(result, index, numbers, self._proxies),
            made_constants=made_constants,
            reads=reads,
            runs_above=runs_above,
        )

    def _checked(self, pending: _Pending) -> _Recording:
        """The recording of a block whose every node stayed inside it (else :class:`_Invalid`)."""
        host = self._host
        path, nodes, arguments, stack_depth = pending.path, pending.nodes, pending.arguments, pending.stack_depth
        prefix = path + "."
        index = {node: position for position, node in enumerate(nodes)}
        outside = set(arguments)
        proxies = host.parameter_proxies()
        parameters = set()
        suffixes: list[tuple[Any, ...]] = []
        interned: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        caller = pending.caller
        size = len(caller)
        known = {node.name for node in nodes} | {node.name for node in arguments}
        named: set[int] = set()
        stacks: dict[int, Any] = {}
        constants: dict[int, tuple[str | None, torch.Tensor]] = {}
        flags: dict[int, tuple[tuple[str, Any], ...]] = {}
        runs: list[tuple[int, ...] | None] = []
        above = pending.runs_above
        made_constants = pending.made_constants
        for position, (node, frames) in enumerate(zip(nodes, pending.frames, strict=True)):
            if node.op not in ("call_function", "call_method", "call_module", "get_attr"):
                raise _Invalid
            if node.op in ("call_module", "get_attr") and not node.target.startswith(prefix):
                if node.op != "get_attr" or node.target not in made_constants:
                    raise _Invalid
                constants[position] = self._constant(made_constants[node.target], path)
            extra = node.meta.keys() - _NODE_META
            if extra:
                if not all(type(node.meta[key]) in _VALUES for key in extra):  # only plain flags (fx's is_wrapped)
                    raise _Invalid
                flags[position] = tuple((key, node.meta[key]) for key in extra)
            for used in node.all_input_nodes:
                if used not in index and used not in outside:
                    raise _Invalid
            scope_path, _ = host.node_name_to_scope.get(node.name, (None, None))
            if scope_path is None or _relative(scope_path, path) is None:
                raise _Invalid
            stack = node.meta.get("nn_module_stack")
            if stack is None:
                if stack_depth:
                    raise _Invalid
            elif id(stack) not in stacks:  # nodes made in one state of the module stack share its copy
                entries = list(stack.items())
                if len(entries) < stack_depth or any(
                    _relative(key, path) is None or _relative(entry[0], path) is None
                    for key, entry in entries[stack_depth:]
                ):
                    raise _Invalid
                stacks[id(stack)] = stack
            if frames is None or frames[:size] != caller:
                raise _Invalid
            suffix = frames[size:]
            suffixes.append(interned.setdefault(suffix, suffix))
            own = node.meta.get(EXECUTIONS)
            runs.append(own[len(above) :] if own is not None and own[: len(above)] == above else None)
            texts = _texts((node.args, node.kwargs))
            if texts:
                if not all(name in known for text in texts for name in _PROXY_NAME.findall(text)):
                    raise _Invalid  # a node outside the block named in a constant
                named.add(position)
            if node.op == "get_attr":  # a parameter's get_attr made in the block is the tracer's proxy for it
                proxy = proxies.get(node.target)
                if proxy is not None and proxy.node is node:
                    parameters.add(node)
        names = {node.name: position for position, node in enumerate(nodes)}
        given = {node.name: position for position, node in enumerate(arguments)}
        reads: list[tuple[str, int, str, Any]] = []
        for name, kind, value in pending.reads:
            if name in names:
                reads.append(("node", names[name], kind, value))
            elif name in given:
                reads.append(("argument", given[name], kind, value))
            else:  # the metadata of a node outside the block and its arguments
                raise _Invalid
        events: list[tuple[str, str, Any]] = []
        for kind, relative, name in pending.events:
            if kind == "output":  # a node of the block, or an argument a call returned as it was
                if name in names:
                    events.append((kind, relative, ("node", names[name])))
                elif name in given:
                    events.append((kind, relative, ("argument", given[name])))
                else:
                    raise _Invalid
            elif kind == "passed":
                events.append((kind, relative, None if name is None else names[name]))
            else:
                events.append((kind, relative, None))
        return _Recording(
            path=path,
            nodes=nodes,
            arguments=arguments,
            parameters=frozenset(parameters),
            named=frozenset(named),
            flags=flags,
            constants=constants,
            suffixes=tuple(suffixes),
            stack_depth=stack_depth,
            texts={},
            calls=pending.calls,
            events=tuple(events),
            output=pending.output,
            reads=tuple(reads),
            runs=tuple(runs),
        )

    # -- replay ----------------------------------------------------------------------------------------

    def _replay(self, recording: _Recording, path: str, arguments: tuple[fx.Node, ...], caller: tuple[Any, ...]) -> Any:
        host = self._host
        old = recording.path
        proxies = host.parameter_proxies()
        for node in recording.parameters:
            if path + node.target[len(old) :] in proxies:  # read before the block: a trace would reuse it
                return _REFUSED
        for relative, _ in recording.calls:
            if host.num_calls.get(path + relative, 0):
                return _REFUSED
        graph = host.graph
        before = last_node(graph)  # the node a call the block passed through before making any follows
        made: dict[fx.Node, fx.Node] = dict(zip(recording.arguments, arguments, strict=True))
        texts = recording.texts.get(caller)
        if texts is None:
            texts = recording.texts[caller] = {}
        stacks: dict[int, dict[str, tuple[str, type]]] = {}
        current = host.module_stack  # fx's OrderedDict: each state copied as the tracer copies it
        logging = self.depth > 0
        scopes = host.node_name_to_scope
        above = host.runs_above()
        create = graph.create_node
        cut = len(old)
        for position, (node, suffix) in enumerate(zip(recording.nodes, recording.suffixes, strict=True)):
            op, target = node.op, node.target
            if position in recording.constants:  # the same view of the new block's tensor, or a new tensor
                target = host.get_fresh_qualname("_tensor_constant")
                relative, tensor = recording.constants[position]
                setattr(host.root, target, self._replayed_constant(relative, tensor, path))
                if relative is None:  # made by the forward, as the block's trace makes it: an activation
                    host.constants.add(target)
                    if node.target in host.folded:
                        host.folded.add(target)
            elif op == "call_module" or op == "get_attr":
                target = path + target[cut:]
            candidate = host.node_candidate(target) if op == "call_function" or op == "call_method" else None
            new = create(op, target, None, None, candidate, node.type)
            if position in recording.named:
                renames = {old_node.name: new_node.name for old_node, new_node in made.items()}
                new._update_args_kwargs(*_renamed((node.args, node.kwargs), made, renames))
            elif node.args or node.kwargs:  # fx's setters, without Node.__setattr__'s bookkeeping (not needed for args)
                new._update_args_kwargs(
                    fx.node.map_arg(node.args, made.__getitem__), fx.node.map_arg(node.kwargs, made.__getitem__)
                )
            made[node] = new
            host.returned.copy(node, new)
            scope_path, scope_type = scopes[node.name]
            scopes[new.name] = (path + scope_path[cut:], scope_type)
            meta = node.meta
            stack = meta.get("nn_module_stack")
            if stack is not None:
                mapped = stacks.get(id(stack))
                if mapped is None:
                    mapped = stacks[id(stack)] = current.copy()
                    for key, (where, kind) in list(stack.items())[recording.stack_depth :]:
                        mapped[path + key[cut:]] = (path + where[cut:], kind)
                new.meta["nn_module_stack"] = mapped
            text = texts.get(id(suffix))
            if text is None:
                text = texts[id(suffix)] = host.stack_text(caller + suffix)
            if text:
                new.meta["stack_trace"] = text
            runs = recording.runs[position] if recording.runs else None
            if runs is not None and (above or runs):
                new.meta[EXECUTIONS] = above + runs
            if position in recording.flags:
                new.meta.update(recording.flags[position])
            if logging:
                self.frames[new] = caller + suffix
            if node in recording.parameters:
                proxies[target] = host.proxy(new)
        for relative, count in recording.calls:
            host.num_calls[path + relative] = count
        self.replayed.append((path, old))
        nodes = recording.nodes
        for where, position, kind, value in recording.reads:
            node = made[nodes[position]] if where == "node" else arguments[position]
            host.replayed_metadata(node.name, kind, value)
        for kind, relative, value in recording.events:
            where = path + relative
            if kind == "output":
                which, position = value
                name = (made[nodes[position]] if which == "node" else arguments[position]).name
                host.module_outputs.setdefault(where, []).append(name)
                if logging:
                    self.log.append(("output", where, name))
            elif kind == "passed":  # placed by the host as a trace places it: the replay's events come in call order
                after = before if value is None else made[nodes[value]]
                host.note_passed(where, after)  # type: ignore[arg-type]
                if logging:
                    self.log.append(("passed", where, after))
            elif logging:
                self.log.append(("call", where, None))
        results: dict[fx.Node, fx.Proxy] = {}

        def proxy_of(node: fx.Node) -> fx.Proxy:
            found = results.get(node)
            if found is None:
                found = results[node] = host.proxy(node)
            return found

        return _rebuild(recording.output, [made[node] for node in nodes], list(arguments), proxy_of)


_PROXY_NAME = re.compile(r"Proxy\(([^()]*)\)")
"""How fx's ``Proxy.__repr__`` names a node in text."""


def _texts(value: Any, found: list[str] | None = None) -> list[str]:
    """The strings among a node's arguments that name a node (``Proxy(name)``), at any depth."""
    found = [] if found is None else found
    if type(value) is str:
        if "Proxy(" in value:
            found.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _texts(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _texts(item, found)
    elif type(value) is slice:
        for item in (value.start, value.stop, value.step):
            _texts(item, found)
    return found


def _renamed(arguments: Any, made: Mapping[fx.Node, fx.Node], renames: Mapping[str, str]) -> Any:
    """``arguments`` with recorded nodes replaced by the replay's and node names in text renamed."""

    def rename(match: re.Match[str]) -> str:
        return f"Proxy({renames.get(match.group(1), match.group(1))})"

    def replace(value: Any) -> Any:
        if isinstance(value, fx.Node):
            return made[value]
        if type(value) is str and "Proxy(" in value:
            return _PROXY_NAME.sub(rename, value)
        return value

    return fx.node.map_aggregate(arguments, replace)


def _replayable(root: nn.Module) -> tuple[int, int]:
    """At most how many of the tree's modules replays could skip, and how many modules it has.

    Each module gets a *shape key*: its class, training flag, its parameters' and buffers' shapes, and
    its children's shape keys. Blocks with equal keys (:meth:`BlockReuse._own_key`) have equal shape keys,
    so the walk :func:`_called` makes on shape keys — each repeat of a key met before replayed, its
    subtree skipped — skips at least every module a replay skips. ~2 µs per module."""
    shape_keys: dict[nn.Module, int | None] = {}
    sizes: list[int] = []
    _shape_key(root, {}, sizes, shape_keys)
    counts = Counter(shape_keys.values())
    shape_keys[root] = None  # the root is never replayed
    called = Counter(_called(root, shape_keys, counts))
    skipped = sum((calls - 1) * sizes[key] for key, calls in called.items() if key is not None and counts[key] > 1)
    return skipped, len(shape_keys)


def _shape_key(
    module: nn.Module,
    numbers: dict[tuple[Any, ...], int],
    sizes: list[int],
    shape_keys: dict[nn.Module, int | None],
) -> int:
    """``module``'s shape key (:func:`_replayable`) as a number, its children's first; ``sizes``: the
    modules in the subtree of each number (a module-level function: a recursive closure would be a
    reference cycle holding the copy's modules until the next collection)."""
    found = shape_keys.get(module)
    if found is not None:  # met before (shared, or a cycle back to it)
        return found
    shape_keys[module] = -1
    state = vars(module)
    children = [child for child in state["_modules"].values() if child is not None]
    inner = tuple([_shape_key(child, numbers, sizes, shape_keys) for child in children])
    parameters, buffers = state["_parameters"], state["_buffers"]
    own = (
        type(module),
        state.get("training"),  # a class that makes it a property keeps it out of __dict__
        tuple(map(_shape, dict.values(parameters))) if parameters else (),  # the copy's own (a trace's view
        tuple(map(_shape, dict.values(buffers))) if buffers else (),  # hands traced code fakes)
        inner,
    )
    number = numbers.get(own)
    if number is None:
        number = numbers[own] = len(sizes)
        sizes.append(1 + sum([sizes[key] for key in inner if key >= 0]))
    shape_keys[module] = number
    return number


def _shape(tensor: torch.Tensor | None) -> torch.Size | None:
    return None if tensor is None else tensor.shape


def _called(root: nn.Module, keys: Mapping[nn.Module, int | None], counts: Counter[int]) -> list[int | None]:
    """The keys of the modules a trace calls if every repeated block is replayed: walking the tree in
    order, a module whose key was met before is replayed, the modules below it never called."""
    seen: set[int] = set()
    found: list[int | None] = []
    stack = [root]
    while stack:
        module = stack.pop()
        key = keys.get(module)
        if key is not None and counts[key] > 1:
            if key in seen:
                found.append(key)
                continue
            seen.add(key)
        found.append(key)
        stack.extend(child for child in reversed(vars(module)["_modules"].values()) if child is not None)
    return found


_REFUSED = object()
"""What :meth:`BlockReuse._replay` returns when the block must be traced instead."""


def last_node(graph: fx.Graph) -> fx.Node | None:
    """The graph's last node (None: empty)."""
    return next(iter(reversed(graph.nodes)), None)


def _nodes_after(graph: fx.Graph, before: fx.Node | None) -> list[fx.Node]:
    """The nodes made after ``before`` (the graph's last node when the block was called), in order."""
    found: list[fx.Node] = []
    for node in reversed(graph.nodes):
        if node is before:
            break
        found.append(node)
    found.reverse()
    return found


def _relative(where: str, path: str) -> str | None:
    """``where`` relative to ``path`` (``""`` for ``path`` itself, ``".x"`` below it), else None."""
    if where == path:
        return ""
    if where.startswith(path) and where[len(path)] in ".@":
        return where[len(path) :]
    return None


def _getter(names: tuple[str, ...]) -> _Reader:
    """A reader of the values of ``names`` from a dict, as a tuple (``operator.itemgetter``'s, always a tuple)."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    if names:
        name = names[0]
        return lambda state: (state[name],)
    return lambda state: ()


def _exact(value: Any) -> Hashable:
    """What ``==`` does not see of a plain value that a trace bakes into its graph: a float's or a
    complex's sign of zero (by ``repr``), the type of each item of a tuple (``(1, 2) == (1.0, 2.0)``)."""
    kind = type(value)
    if kind is float or kind is complex:
        return repr(value)
    if kind is tuple:
        kinds = tuple(map(type, value))
        if float in kinds or complex in kinds or tuple in kinds:
            return tuple([_exact(item) for item in value])
        return kinds  # no item to look into (sizes, strides, paddings): the items' types are their keys
    return kind


def _value_key(value: Any, budget: list[int], states: dict[int, Hashable]) -> Hashable:
    """A plain value by value (containers item by item), any other object by identity and its own
    attributes one level down (:func:`_state_of`, ``states``: those made in this pass, by the object's id)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _NoKey
    kind = type(value)
    if kind in _VALUES:
        return (kind, value)
    if kind is float or kind is complex:
        return (kind, repr(value))
    if kind is torch.Size:
        return (kind, tuple(value))
    if isinstance(value, (type, enum.Enum)):
        return value
    if kind is tuple or kind is list or (isinstance(value, tuple) and hasattr(value, "_fields")):
        if all(type(item) is int for item in value):  # sizes, strides, paddings: as they are
            return (kind, "int", tuple(value))
        return (kind, tuple(_value_key(item, budget, states) for item in value))
    if kind is dict:
        return (kind, tuple((_value_key(k, budget, states), _value_key(v, budget, states)) for k, v in value.items()))
    if isinstance(value, (torch.Tensor, nn.Module)):  # a tensor made a constant where used; a module's state
        raise _NoKey
    state = states.get(id(value))
    if state is None:
        state = states[id(value)] = _state_of(value)
    return ("object", id(value), state)


_MAX_STATE = 1_000
"""Attributes of a held object past which it is not keyable (:func:`_state_of`)."""


def _state_of(value: Any) -> Hashable:
    """The own attributes (``__dict__``) of an object a module holds, one level down: plain values by value,
    containers by identity and length, anything else by identity (what one block's forward changes in an
    object that other blocks share, ``self.shared.calls += 1`` or an append to a list it holds, makes the
    block's key differ after its forward: the recording is refused). () for an object without a
    ``__dict__``; not keyable past :data:`_MAX_STATE` attributes."""
    try:
        state = object.__getattribute__(value, "__dict__")
    except AttributeError:
        return ()
    if type(state) is not dict:  # a class's mappingproxy, an exotic namespace
        return ()
    if len(state) > _MAX_STATE:
        raise _NoKey
    return tuple((name, _shallow(item)) for name, item in state.items())


def _shallow(value: Any) -> Hashable:
    """One attribute of a held object in :func:`_state_of`."""
    kind = type(value)
    if kind in _VALUES:
        return (kind, value)
    if kind is float or kind is complex:
        return (kind, repr(value))
    if kind is list or kind is dict or kind is set or kind is tuple:
        return (kind, id(value), len(value))
    return (kind, id(value))


def _signature(value: Any, numbers: dict[fx.Node, int], proxies: frozenset[type]) -> Hashable:
    """The structure of a call's arguments: a proxy (of one of ``proxies``) by which distinct node it is
    (``numbers`` filled in order), a plain value by value, tuples, lists and dicts item by item."""
    kind = type(value)
    if kind in proxies:
        return ("node", numbers.setdefault(value.node, len(numbers)))
    if kind in _VALUES:
        return (kind, value)
    if kind is float or kind is complex:
        return (kind, repr(value))
    if kind is tuple or kind is list:
        return (kind, tuple(_signature(item, numbers, proxies) for item in value))
    if kind is dict:
        items = value.items()
        return (kind, tuple((_signature(k, numbers, proxies), _signature(v, numbers, proxies)) for k, v in items))
    raise _NoKey


def _template(
    value: Any, index: Mapping[fx.Node, int], arguments: Mapping[fx.Node, int], proxies: frozenset[type]
) -> Any:
    """The block's returned value with each proxy (of one of ``proxies``) replaced by its node's place
    (made or argument)."""
    kind = type(value)
    if kind in proxies:
        if value.node in index:
            return ("node", index[value.node])
        if value.node in arguments:
            return ("argument", arguments[value.node])
        raise _Invalid
    if kind in _VALUES:
        return ("value", value)
    if kind is float or kind is complex:
        return ("value", value)
    if kind is tuple or kind is list:
        return (kind, tuple(_template(item, index, arguments, proxies) for item in value))
    if kind is dict and all(type(key) in _VALUES for key in value):
        return (dict, tuple((key, _template(item, index, arguments, proxies)) for key, item in value.items()))
    raise _Invalid


def _rebuild(
    template: Any, nodes: list[fx.Node], arguments: list[fx.Node], proxy_of: Callable[[fx.Node], fx.Proxy]
) -> Any:
    tag, item = template
    if tag == "node":
        return proxy_of(nodes[item])
    if tag == "argument":
        return proxy_of(arguments[item])
    if tag == "value":
        return item
    if tag is dict:
        return {key: _rebuild(value, nodes, arguments, proxy_of) for key, value in item}
    return tag(_rebuild(value, nodes, arguments, proxy_of) for value in item)
