"""Capture with an fx tracer that patches nothing, on a copy of the model.

The user's model is never run nor traced: a structural copy (:mod:`torchscan.graph.clone`) is
traced instead, so tracing cannot change the model's state and a model built on the ``meta`` device
works. fx's own ``Tracer.trace`` patches ``nn.Module``, ``math`` and library globals for the whole
process while it runs; this tracer routes module calls through each copied module's own call slot
and reads traced code's globals through private copies (:class:`_Tracer`), so another thread never
sees a trace. Leaves are the modules the op registry has a formula for, plus torch's own built-in
modules (fx's default); everything else is traced through, so functional calls and branches become
nodes. A model that already is an fx graph (``torch.export(...).module()``) is used as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import dis
import functools
import itertools
import operator
import os
import re
import sys
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, final

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.fx import traceback as fx_traceback
from torch.utils._pytree import tree_leaves

from torchscan.errors import CaptureError
from torchscan.graph import autocast
from torchscan.graph.autocast import AUTOCAST, DEPTH
from torchscan.graph.checkpoint import CHECKPOINT_CODES, CheckpointMarks, Region
from torchscan.graph.clone import Fakes, private_arguments, shadow_copy
from torchscan.graph.executions import EXECUTIONS, Executions, is_user_file
from torchscan.graph.fake import analysis_mode
from torchscan.graph.functions import FUNCTION, FunctionMarks, is_function_forward
from torchscan.graph.grad_mode import GradMarks
from torchscan.graph.guards import METADATA, READ, Guard
from torchscan.graph.held import DATA_TYPES, held_by_objects, held_by_state
from torchscan.graph.returned import ReturnSites
from torchscan.graph.reuse import MIN_SHARE, BlockReuse, last_node
from torchscan.graph.routing import (
    RoutedCalls,
    apply_on_copy,
    forward_of,
    has_forward_hooks,
    run_forward_hooks,
    run_pre_hooks,
    unrouted,
    wrapped_module,
)
from torchscan.graph.rules import Pending
from torchscan.graph.shapes import PlanCache, TraceShapes, fake_inputs
from torchscan.graph.stack_text import StackTexts, user_frames
from torchscan.graph.traced_code import TracedCode, first_proxy
from torchscan.inputs import ModelInputs
from torchscan.ops import TRACE_THROUGH
from torchscan.ops.registry import Registry
from torchscan.records.frozen import frozen_record

__all__ = [
    "BRANCH",
    "FX",
    "GRAPH_MODULE",
    "Capture",
    "Memo",
    "capture",
    "input_device",
    "output_data",
    "plain_node",
    "traced_code",
]


@dataclass(slots=True)
class Memo:
    """Lookups made once per capture: the shape pass's (:class:`~torchscan.graph.shapes.PlanCache`) and
    the node records' shape-independent parts (``graph.build``), by node name. Filled by the first
    run over the capture; every later run on other inputs reads them (nothing in them depends on
    shapes)."""

    shapes: PlanCache = dataclasses.field(default_factory=PlanCache)
    records: dict[str, Any] = dataclasses.field(default_factory=dict)
    paths: dict[str, str] = dataclasses.field(default_factory=dict)
    """Each node's module path (``graph.calls.module_path_of``), for the shape pass's messages."""
    traced: TraceShapes | None = None
    """The shape pass begun during the trace (:meth:`_Tracer.concrete`), on the capture's own inputs: the
    first run finishes it instead of running every node again, and drops it."""


FX = "torch.fx"
"""The capture method named in the report's context for a model traced by torch.fx (our tracer)."""


@frozen_record
class Capture:
    """A traced fake copy of the model: ``graph`` is the fx graph of a call of ``root`` (the copy), its
    ``call_module`` and ``get_attr`` targets paths in ``root`` (interpreted against ``root`` itself, so
    no ``fx.GraphModule`` is made: no code generated, and module names such as ``graph`` or ``code``
    are as good as any).

    ``module_outputs`` maps a module path to the fx node names of the outputs of each of its
    calls (first tensor of the returned structure), so every module row gets an output shape.
    """

    graph: fx.Graph
    root: nn.Module
    module_outputs: Mapping[str, tuple[str, ...]]
    fake_mode: FakeTensorMode
    method: str = FX
    fakes: Fakes | None = None
    """Fakes still to be put into ``root`` where an op is dispatched (None: the copy is all fake)."""
    shared: tuple[str, ...] = ()
    """Attributes of the model too large to copy, left shared with the copy (``Class.name``)."""
    opaque_outputs: tuple[str, ...] = ()
    """Type names of objects in the forward's output that are not data (replaced by None)."""
    held_outputs: tuple[str, ...] = ()
    """Nodes whose tensors those objects hold (:func:`~torchscan.graph.held.held_by_objects`): alive to the end
    of the call."""
    held_state: tuple[str, ...] = ()
    """Nodes whose tensors the model's own state holds once the forward has run (a table a module computes at
    its first call and keeps: :func:`~torchscan.graph.held.held_by_state`): alive to the end of the call too."""
    constants: frozenset[str] = frozenset()
    """``get_attr`` targets the tracer made for tensors the forward computes from constants alone
    (``torch.eye(n)``: real, not views): every real call makes them anew — activations, not model memory."""
    folded: frozenset[str] = frozenset()
    """Those of :attr:`constants` the forward computed (not a tensor the model holds in a plain list or
    object): the torch calls that made them ran once, while tracing, and are not nodes of the graph."""
    replayed: tuple[tuple[str, str], ...] = ()
    """Blocks whose sub-graph was replayed from an identical block's trace (:mod:`torchscan.graph.reuse`):
    (path, path of the block traced); the graph is the one a trace of each gives."""
    memo: Memo = dataclasses.field(default_factory=lambda: Memo())
    """Per-node lookups of the passes that depend on the graph and the copy only, kept for later
    runs of this capture on other inputs (:func:`torchscan.sweep`)."""
    guards: tuple[Guard, ...] = ()
    """Values computed from sizes that the forward's Python code read (:class:`Guard`): the graph is
    specialized to them, and holds for another input only where they read the same."""
    passed_through: Mapping[str, tuple[tuple[str, int], ...]] = dataclasses.field(default_factory=dict)
    """Module calls that returned their argument itself, made no node (``nn.Identity``, a dropout in eval:
    :meth:`~torchscan.ops.registry.OpLookup.returns_input`; their outputs are in :attr:`module_outputs`): per
    module path, per call, the node made just before it and its place among the calls passed after that node."""
    checks: tuple[Guard, ...] = ()
    """The guards of replayed blocks (metadata their recording read, :mod:`.reuse`), among ``guards``: read
    on nodes the trace never ran, they hold only once checked on the shape pass's values
    (:func:`~torchscan.graph.capture.capture_chain` traces every block where one does not)."""
    hooked: bool = False
    """The model's code registered forward hooks on the copy as the trace ran it (Hugging Face's output capture:
    :mod:`~torchscan.graph.routing`): each ran where its module was called, but a replayed block's inner modules
    were not called (:func:`~torchscan.graph.capture.capture_chain` traces every block where blocks were replayed)."""


def _not_a_number(kind: str) -> Callable[[Any, fx.Proxy], Any]:
    def refuse(tracer: Any, proxy: fx.Proxy) -> Any:
        raise TypeError(f"a value computed from tensor data (fx node '{proxy.node.name}') used as {kind}")

    return refuse


_REFUSED: Mapping[str, Callable[[Any, fx.Proxy], Any]] = {
    "bool": fx.Tracer.to_bool,  # fx's TraceError: control flow on data
    "index": _not_a_number("an index"),
    "int": _not_a_number("an int"),
    "float": _not_a_number("a float"),
}
"""What a read of a value computed from tensor data raises (as fx does; a real forward captures it)."""


_ASSERTIONS = frozenset({torch._is_all_true, torch.Tensor._is_all_true})
"""What torch's own checks of tensor data test (``torch.distributions`` validating its parameters and samples, ``if
not torch._is_all_true(constraint.check(value)): raise``): read as a bool, such a value is taken as true. The
analysis assumes a valid input, whatever its values must be, as it takes ``torch._check`` of data as holding
(:mod:`~torchscan.graph.traced_code`); the call stays a node, counted as an ``all``."""


def _asserted(node: fx.Node) -> bool:
    """Whether ``node`` is a call of :data:`_ASSERTIONS` (a method node's target is its name)."""
    target = getattr(torch.Tensor, node.target, None) if node.op == "call_method" else node.target
    return node.op in ("call_function", "call_method") and target in _ASSERTIONS


class _Tracer(fx.Tracer):
    """fx tracer that patches nothing: it intercepts module calls on the copy's own objects.

    torch.fx's ``Tracer.trace`` patches ``nn.Module.__call__``/``__getattr__``, the globals of the
    traced code and ``math`` for the whole process while it runs, so another thread's eager forward
    goes through the patches, and two traces at once can leave them installed. This tracer installs
    its hooks on the copy's modules only (:class:`_Interception`): each module's call is routed
    through ``_compiled_call_impl`` (the per-instance slot ``nn.Module`` calls first), parameters and
    buffers are handed out by views of the copy's own tensor dicts, and the functions fx wraps
    (``fx.wrap``, ``math``, :data:`AUTOWRAP_FUNCTIONS`) are seen through per-analysis copies of the
    traced code's globals. Leaves are the modules the op registry has a formula for, plus torch's
    own built-in modules (fx's default); an ``fx.wrap``-ed function is one node where the registry has
    a formula for it, else traced through. Module outputs are recorded per module path.

    The root is called as the user's call is made: one placeholder per input tensor, every other
    value (``None``, flags, ints) concrete, so ``if mask is not None`` takes the branch the call
    takes and ``**kwargs`` or decorated forwards are no obstacle.
    """

    def __init__(
        self,
        registry: Registry,
        inputs: ModelInputs,
        fakes: Fakes,
        modules: Sequence[nn.Module],
        reuse: bool = True,
        min_share: float = MIN_SHARE,
        device: torch.device | None = None,
        proxy_buffers: bool = False,
        code: TracedCode | None = None,
    ) -> None:
        super().__init__(autowrap_modules=(), autowrap_functions=())
        self._device = device or torch.device("cpu")
        self.proxy_buffers = proxy_buffers
        """Whether a buffer read by name gives traced code its ``get_attr`` proxy, as a parameter's does (fx's
        ``proxy_buffer_attributes``), rather than its fake: :func:`capture`'s ``proxy_buffers``."""
        self.guards: list[Guard] = []
        """Values the forward's Python code read from the shape pass (:meth:`concrete`)."""
        self.checks: list[Guard] = []
        """Guards of replayed blocks (:meth:`replayed_metadata`), to check on the shape pass's values."""
        self.shapes: TraceShapes | None = None
        """The shape pass of the graph being traced, begun at the first value read."""
        self.shaping = False
        """While that shape pass runs: the copy's modules are called and read as they are, not traced."""
        self._reuse_blocks = reuse
        self._min_share = min_share
        self._reuse: BlockReuse | None = None
        """While a trace runs (if ``reuse``): repeated blocks traced once, replayed after (:mod:`.reuse`)."""
        self.replayed: tuple[tuple[str, str], ...] = ()
        """(path, recorded path) of the blocks replayed by the last trace."""
        self.hooked = False
        """Whether a module of the copy held forward hooks when the last trace ended (:attr:`Capture.hooked`)."""
        self._modules = modules
        """Every module of the copy (:attr:`ModelCopy.modules`)."""
        self._fakes = fakes
        self._stack_traces: dict[tuple[Any, ...], str] = {}
        """Stack trace text by stack (:func:`_frames`: code object and line of each frame)."""
        self._tensor_methods: dict[Any, bool] = {}
        """Whether a torch function is a tensor method, by function (:meth:`is_tensor_method`)."""
        self._walked: tuple[nn.Module, dict[str, nn.Module]] | None = None
        """(root, its ``named_modules(remove_duplicate=False)`` as a dict): :meth:`submodules_of`."""
        self._user_stacks: dict[tuple[tuple[str, int, str], ...], str] = {}
        self._stack_texts = StackTexts()
        """Stack trace text by the stack's frames outside torchscan (file, line, function)."""
        self._registry = registry
        self._inputs = inputs
        self.module_outputs: dict[str, list[str]] = {}
        self.passed_through: dict[str, list[tuple[str, int]]] = {}
        """Per module path, its calls that returned their argument itself: (the node made before, the call's
        place among those passed after it) — :attr:`Capture.passed_through`."""
        self._passed: tuple[fx.Node | None, int] = (None, 0)
        """The node the last such call followed, and how many followed it."""
        self._returning: dict[type, Any] = {}
        """The registry's ``returns_input`` of each leaf module class called (None: none declared)."""
        self._tensor_paths: dict[int, tuple[str, str, torch.Tensor]] = {}
        """The root's parameters and buffers by id: (kind, first path, tensor)."""
        self.shared_tensors: set[int] = set()
        """Ids of the parameters and buffers held under more than one path (tied weights)."""
        self._proxies: dict[str, fx.Proxy] = {}
        """The ``get_attr`` proxy of each parameter path read so far."""
        self.attribute_values: dict[str, torch.Tensor] = {}
        """The plain tensor attributes as the trace found them, by path (made by :meth:`trace`;
        :attr:`~torchscan.graph.shapes.PlanCache.attributes`)."""
        self._written: dict[int, tuple[torch.Tensor, fx.Proxy]] = {}
        """Tensors of the copy a traced value was written into, by id: (tensor, its write), :meth:`wrote_into`."""
        self._opaque: dict[int, tuple[Any, str]] = {}
        self._branches = 0
        """The ``torch.cond`` calls on tensor data traced so far (:meth:`both_branches`)."""
        """Values fx has no argument form for, by id: (the value, its root attribute): :meth:`_opaque_arg`."""
        self._entry: tuple[Any, tuple[Any, ...]] | None = None
        """The frame that called ``trace`` and the stack down to it (outermost first)."""
        self._callers: dict[Any, tuple[Any, ...]] = {}
        """The frames of the running :meth:`call_module` calls, each with the :func:`_frames` of its
        callers (fixed while it runs: every frame above it waits at the same line)."""
        self._stacks: dict[tuple[int, tuple[Any, ...]], tuple[Any, ...]] = {}
        """Every distinct stack of callers kept so far (one object each, alive for the trace), by the ``id``
        of the kept stack it continues and the frames below that (hashing a 40-frame stack of code objects
        at every module call cost 1.7% of a CNN's analysis)."""
        self._node_texts: dict[tuple[int, tuple[Any, ...]], str] = {}
        """A node's stack trace text by (``id`` of its kept callers' stack, the frames below them)."""
        self._leaves: dict[type, bool] = {}
        """Leaf decision by module class (everything it depends on is the class)."""
        self._code = code if code is not None else traced_code(registry)
        self._qualnames: dict[str, int] = {}
        self._candidates: dict[Any, str] = {}
        """fx's name candidate of a call's node (``Graph._target_to_str``: a regex substitution) by function or
        method name: :meth:`node_candidate`."""
        self.opaque_outputs: tuple[str, ...] = ()
        """Type names of output objects that are not data (replaced by None)."""
        self.held_outputs: tuple[str, ...] = ()
        """Nodes of the proxies those objects hold."""
        self.held_state: tuple[str, ...] = ()
        """Nodes of the proxies the copy's modules hold once the forward has run (:attr:`Capture.held_state`)."""
        self.constants: set[str] = set()
        """Root attributes made for tensors computed in the forward from constants (:attr:`Capture.constants`)."""
        self.folded: set[str] = set()
        """Those of them the forward computed, not a tensor the model holds (:attr:`Capture.folded`)."""
        self._stack_copy: dict[str, tuple[str, type]] | None = None
        """The copy of ``module_stack`` the nodes made since it last changed share (fx copies it per node)."""
        self.autocast_seen = False
        """Whether a node was made under torch.autocast (later nodes note their region depth: :func:`autocast.mark`)."""
        self._grad_marks = GradMarks()
        """What notes the nodes made with grad mode disabled by the forward's code."""
        self._checkpoints = CheckpointMarks()
        """The checkpointed calls met (:mod:`~torchscan.graph.checkpoint`)."""
        self.region: Region | None = None
        """The checkpointed call the innermost running :meth:`call_module` runs in (None: none)."""
        self._bytecode: dict[types.CodeType, bytes] = {}
        """Per code object: its bytecode as ``co_code`` gives it (a new copy at every read)."""
        self._codes = Codes()
        """The :class:`_Code` of each code object the stack walks met (stack tuples hash by identity)."""
        self._executions = Executions()
        """The runs of the lines of the user frames met (:mod:`~torchscan.graph.executions`)."""
        self._functions = FunctionMarks()
        """The calls of the user's ``torch.autograd.Function`` subclasses met (:mod:`~torchscan.graph.functions`)."""
        self.returned = ReturnSites()
        """The user lines receiving the results of the module calls traced through (:mod:`.returned`)."""

    def trace(self, root: Any, concrete_args: Any = None) -> fx.Graph:
        """The graph of one call of ``root`` (a module of our copy) on the inputs' placeholders."""
        caller = sys._getframe(1)
        self._entry = (caller, _frames(caller, None, self._codes))
        self.root = root
        self.root_module_name = root._get_name()
        submodules = self.submodules_of(root)
        # each module at its first path, in the order ``named_modules()`` gives them (a module registered
        # at several paths is met first where that walk meets it: before the walk steps into any repeat)
        self.submodule_paths = {}
        for path, module in submodules.items():
            self.submodule_paths.setdefault(module, path)
        self.graph = fx.Graph(tracer_cls=type(self))
        self.tensor_attrs = {}
        for module, path in self.submodule_paths.items():
            prefix = f"{path}." if path else ""
            for key, value in vars(module).items():
                if type(value) in _NOT_TENSORS:  # most of them: tested first (isinstance of torch.Tensor is slow)
                    continue
                if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                    self.tensor_attrs.setdefault(value, prefix + key)
        self.attribute_values = {path: tensor for tensor, path in self.tensor_attrs.items()}
        for kind, key in (("parameter", "_parameters"), ("buffer", "_buffers")):  # as named_parameters/_buffers
            for module, path in self.submodule_paths.items():  # walks them, from the walk made above
                prefix = f"{path}." if path else ""
                for name, tensor in vars(module)[key].items():
                    if tensor is None:
                        continue
                    first = self._tensor_paths.setdefault(id(tensor), (kind, prefix + name, tensor))
                    if first[1] != prefix + name:
                        self.shared_tensors.add(id(tensor))
        self._reuse = BlockReuse(self, self._min_share) if self._reuse_blocks else None
        try:
            with _Interception(self, self._modules) as interception:
                placeholders = [
                    self.create_proxy("placeholder", spec.name or "input", (), {}) for spec in self._inputs.specs
                ]
                args, kwargs = private_arguments(self._inputs.rebuild(placeholders))  # the user's objects: copied
                with autocast.applied(self._inputs.autocast) if self._inputs.autocast else contextlib.nullcontext():
                    returned = self.forward_of(root)(*args, **kwargs)
                output, self.opaque_outputs = output_data(returned)
                held = held_by_objects(returned) if self.opaque_outputs else ()
                self.held_outputs = tuple(proxy.node.name for proxy in held if isinstance(proxy, fx.Proxy))
                self.create_node("output", "output", (self.create_arg(output),), {})
            self.hooked = interception.hooked
            # once the trace's views of the tensor dicts are gone; the root's constants are the tracer's
            state = held_by_state(self._modules, ignore={root: frozenset(self.tensor_attrs.values())})
            self.held_state = self._computed((*interception.stored, *state))
        finally:
            self._entry = None
            self.submodule_paths = None
            self._checkpoints.close()
            self._executions.close()
            self.returned.close()
            self._functions.close()
            if self._reuse is not None:
                self.replayed = tuple(self._reuse.replayed)
            self._reuse = None  # it refers to the tracer: no cycle left
        _drop_unread_attributes(self.graph, {guard.node for guard in self.guards} | set(self.held_outputs))
        return self.graph

    def _computed(self, held: Sequence[Any]) -> tuple[str, ...]:
        """The nodes of the values among ``held`` (what the copy's state holds after the forward) that the forward
        computed: a proxy's (not a parameter's or buffer's ``get_attr``, not an input: those are alive after
        the call anyway), and the ``get_attr`` nodes of a tensor it computed outside the graph from sizes alone
        (ConViT's table of relative positions): a fake of :attr:`folded`, or a real tensor (the copy holds
        fakes of the model's own tensors; a real one is new) whose fake the graph reads."""
        names = [
            value.node.name
            for value in held
            if isinstance(value, fx.Proxy) and value.node.op not in ("get_attr", "placeholder")
        ]
        targets = set()
        for value in held:
            if isinstance(value, FakeTensor):
                target = self.tensor_attrs.get(value)
                if target in self.folded:
                    targets.add(target)
            elif isinstance(value, torch.Tensor):
                target = self.tensor_attrs.get(self._fakes.made(value))
                if target in self.constants:
                    targets.add(target)
        if targets:
            names += [node.name for node in self.graph.nodes if node.op == "get_attr" and node.target in targets]
        return tuple(dict.fromkeys(names))

    def concrete(self, proxy: fx.Proxy, kind: str) -> Any:
        """The value of ``proxy`` read as ``kind`` (:data:`_READ`), from the shape pass of the graph so
        far, kept as a :class:`Guard`: where the forward's Python code needs a value computed from
        sizes (``if H == window``, ``range(h)``, ``t[:, :n]`` on a buffer, ``int(math.sqrt(n))``), the
        trace goes on with it, as a recorded forward would, instead of failing. A value computed from
        tensor data is refused as fx refuses it (``TraceError``): only a real forward knows it."""
        node = proxy.node
        value = self._value(node)
        if kind != "len" and any(isinstance(leaf, (torch.Tensor, Pending)) for leaf in tree_leaves(value)):
            if kind == "bool" and _asserted(node):  # a check of the data: holds, as the analysis assumes
                return True
            return _REFUSED[kind](self, proxy)
        read = READ[kind](value)
        self.guards.append(Guard(node.name, kind, read))
        return read

    def sized_bool(self, proxy: fx.Proxy) -> bool | None:
        """``proxy`` read as a bool where its value is computed from sizes (as :meth:`concrete` reads it: a
        guard), None where it is computed from tensor data (a condition the trace cannot decide)."""
        value = self._value(proxy.node)
        if any(isinstance(leaf, (torch.Tensor, Pending)) for leaf in tree_leaves(value)):
            return None
        return self.concrete(proxy, "bool")

    def both_branches(self, true_fn: Callable[..., Any], false_fn: Callable[..., Any], operands: Any) -> Any:
        """``torch.cond`` on tensor data (:func:`~torchscan.graph.traced_code._traced_cond`): which branch runs
        depends on the input's values, which the analysis does not have, so both are traced, the true branch
        first, and every node each makes is marked :data:`BRANCH` (the call's number, then 0 for the true branch,
        1 for the false one; the ``conditional`` diagnostic reads them). The result is the true branch's (torch
        requires both to return tensors of one shape, dtype and layout)."""
        index, self._branches = self._branches, self._branches + 1
        results = []
        for branch, function in enumerate((true_fn, false_fn)):
            last = next(reversed(self.graph.nodes))  # the placeholders at least: never empty here
            results.append(function(*operands))
            node = last.next
            while node.op != "root":
                node.meta[BRANCH] = (index, branch)
                node = node.next
        return results[0]

    def wrote(self, node: fx.Node) -> None:
        """An index write into the value of ``node`` (whose proxy now stands for the write): told to the
        running block recordings, which refuse a write into a node made before them."""
        reuse = self._reuse
        if reuse is not None and reuse.depth:
            reuse.log.append(("write", node, None))

    def metadata(self, proxy: fx.Proxy, kind: str) -> Any:
        """``proxy.ndim`` (``proxy.dim()``), ``proxy.dtype`` or ``proxy.device`` (``kind``, one of
        :data:`METADATA`) as a plain value where the proxy stands for a tensor (None otherwise: fx's
        attribute proxy then), from the shape pass of the graph so far, kept as a :class:`Guard`.

        Such metadata is fixed where the graph is (its ops are rank-, dtype- and device-specific), so
        reading it adds no node: ``_assert(x.ndim == 4, f"got {x.ndim}D")`` — four nodes per
        normalization layer in timm, none of them an op — runs as plain Python on the trace's ints, as
        torch.export's trace does; ``torch.finfo(x.dtype)`` and ``torch.autocast(x.device.type)``, which
        fx cannot trace (an attribute proxy is no dtype or device), get the value the forward would.
        """
        value = self._value(proxy.node)
        if not isinstance(value, (torch.Tensor, Pending)):
            return None
        read = READ[kind](value)
        if kind == "device" and read.type not in _CONSTANT_DEVICES:
            return None  # ``torch.arange(n, device=x.device)`` would run a real kernel there: a node instead
        if proxy.node.op != "get_attr":  # a parameter's or buffer's is the model's, whatever the input
            self.guards.append(Guard(proxy.node.name, kind, read))
        return read

    def replayed_metadata(self, node: str, kind: str, value: Any) -> None:
        """Metadata read by a recorded block, at a node of its replay (:meth:`metadata` was not run there)."""
        guard = Guard(node, kind, value)
        self.guards.append(guard)
        self.checks.append(guard)

    def _value(self, node: fx.Node) -> Any:
        """The value of ``node`` from the shape pass of the graph so far (begun at the first read)."""
        if self.shapes is None:
            inputs = fake_inputs(self._inputs.specs, self._device, self.fake_mode)
            submodules = self.submodules_of(self.root)
            self.shapes = TraceShapes(
                self.root,
                self.graph,
                inputs,
                self.fake_mode,
                self._fakes,
                self.constants,
                submodules,
                self.attribute_values,
            )
        self.shaping = True
        try:
            return self.shapes.value(node)
        finally:
            self.shaping = False

    def submodules_of(self, root: nn.Module) -> dict[str, nn.Module]:
        """``root.named_modules(remove_duplicate=False)`` as a dict, walked once for the trace, its shape
        pass and the passes after (:attr:`PlanCache.submodules`)."""
        if self._walked is None or self._walked[0] is not root:
            self._walked = (root, dict(root.named_modules(remove_duplicate=False)))
        return self._walked[1]

    def is_tensor_method(self, function: Any) -> bool:
        """``torch.overrides.is_tensor_method_or_property(function)``, remembered per function for the trace."""
        try:
            known = self._tensor_methods.get(function)
        except TypeError:  # an unhashable callable
            return torch.overrides.is_tensor_method_or_property(function)
        if known is None:
            known = self._tensor_methods[function] = torch.overrides.is_tensor_method_or_property(function)
        return known

    def to_bool(self, obj: fx.Proxy) -> bool:
        return self.concrete(obj, "bool")

    def number(self, proxy: fx.Proxy) -> Any:
        """The plain number a proxy stands for (``torch.tensor(num_channels)``, a size or a value computed
        from sizes), read as :meth:`concrete` reads one: as a bool, an int or a float, by its value's type
        (a value computed from tensor data is refused, as ever)."""
        value = self._value(proxy.node)
        kind = "bool" if type(value) is bool else "float" if isinstance(value, float) else "int"
        return self.concrete(proxy, kind)

    def iter(self, obj: fx.Proxy) -> Iterator[Any]:
        """``for item in proxy``, ``f(*proxy)``: one ``getitem`` proxy per item, as many as the value has."""
        return iter([obj[index] for index in range(self.concrete(obj, "len"))])

    @property
    def proxy_type(self) -> type[fx.Proxy]:
        """The class of the proxies this tracer hands out."""
        return _Proxy

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Proxy(node, self)

    def unpacked(self, frame: types.FrameType) -> int | None:
        """How many values the instruction ``frame`` executes unpacks (``a, b = proxy``), else None:
        fx's test in ``Proxy.__iter__`` (an ``UNPACK_SEQUENCE`` at ``f_lasti``), read from the code's
        bytes at that offset with its ``EXTENDED_ARG`` prefixes (fx disassembles the whole calling
        function at every iteration)."""
        code = frame.f_code
        raw = self._bytecode.get(code)
        if raw is None:
            raw = self._bytecode[code] = code.co_code
        return _unpack_count(raw, frame.f_lasti)

    def own_tensor_path(self, tensor: torch.Tensor) -> str | None:
        """The path under which the trace reads a parameter, buffer or tensor attribute of the copy."""
        found = self._tensor_paths.get(id(tensor))
        if found is not None and found[2] is tensor:
            return found[1]
        return self.tensor_attrs.get(tensor)

    def real_of(self, fake: torch.Tensor) -> torch.Tensor:
        """The copy's parameter or buffer behind a fake the trace handed out (else ``fake``)."""
        return self._fakes.real_of(fake)

    def held_fake(self, path: str) -> torch.Tensor:
        """The fake the trace hands out for the tensor the copy holds at ``path`` (as :meth:`buffer`)."""
        owner, _, name = path.rpartition(".")
        state = vars(self.root.get_submodule(owner))
        for kind in ("_parameters", "_buffers"):
            tensor = dict.get(state[kind], name)  # the dict's own value (a trace's view hands out proxies)
            if tensor is not None:
                return self._fakes.any(tensor)
        return self._fakes.any(state[name])  # a tensor attribute (a fake already)

    @property
    def fake_mode(self) -> FakeTensorMode:
        """The fake mode of the trace's fakes."""
        return self._fakes.mode

    def parameter_proxies(self) -> dict[str, fx.Proxy]:
        """The ``get_attr`` proxy of each parameter path read so far (:meth:`parameter`)."""
        return self._proxies

    def frames_from(self, frame: Any) -> tuple[Any, ...]:
        """``frame`` and its callers down to the trace's entry, as :func:`_frames` gives them: walked up
        to the nearest running :meth:`call_module` frame only, whose callers' frames are kept."""
        above, below = self._walk(frame)
        return _joined(above, below)

    def _walk(
        self, frame: Any, users: list[tuple[Any, Any, int]] | None = None
    ) -> tuple[tuple[Any, ...] | None, tuple[Any, ...]]:
        """:meth:`frames_from` in two parts: the kept frames of the callers of the nearest running
        :meth:`call_module` (one object per distinct stack; None where no call runs) and the frames
        from that call's own down to ``frame`` (``users``: the user frames met, as :func:`_walk` gives them)."""
        return _walk(frame, self._entry[0] if self._entry is not None else None, self._callers, self._codes, users)

    def stack_text(self, inner: tuple[Any, ...]) -> str:
        """The stack trace fx would record for a node made from the stack ``inner`` (:func:`_frames`
        below the trace's entry): looked up by the stack, then by its frames outside torchscan (the
        tracer's own frames differ between a traced and a replayed block), formatted once per text."""
        text = self._stack_traces.get(inner)
        if text is None:
            outer = self._entry[1] if self._entry is not None else ()
            stack = tuple(frame for frame in _summaries(outer + inner) if not frame[0].startswith(_OWN_DIR))
            text = self._user_stacks.get(stack)
            if text is None:
                kept = user_frames(stack)
                text = self._stack_texts.text(kept) if kept else ""
                self._user_stacks[stack] = text
            self._stack_traces[inner] = text
        return text

    def runs_above(self) -> tuple[int, ...]:
        """The runs of the lines of the user frames above the innermost running module call."""
        return self._executions.current()

    def get_fresh_qualname(self, prefix: str) -> str:
        """fx's fresh attribute name, counted per tracer (fx's counter is shared by every tracer)."""
        index = self._qualnames.get(prefix, 0)
        while hasattr(self.root, f"{prefix}{index}"):
            index += 1
        self._qualnames[prefix] = index + 1
        return f"{prefix}{index}"

    def forward_of(self, module: nn.Module) -> Callable[..., Any]:
        """:func:`forward_of` ``module``, with the traced code's globals seen through :class:`TracedCode`."""
        return forward_of(module, self._code.function)

    def methods_of(self, cls: type) -> list[tuple[str, types.FunctionType]]:
        """The plain methods of ``cls`` (below ``nn.Module``; ``forward`` and dunders aside) that the
        traced code must see through :class:`TracedCode`, with the functions to bind."""
        return self._code.methods(cls, _TORCH_NN_CLASSES)  # torch.nn's own classes: nothing fx would wrap

    def module_call(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A call of a module of the copy: a ``call_module`` node (a leaf: the weight its kept
        re-parametrization hooks compute is part of the layer, as with ``torch.nn.utils.parametrize``),
        or its kept pre-hooks and its forward traced through."""
        path = self.submodule_paths.get(module)
        if path is not None and self.is_leaf_module(module, path):
            if len(args) == 1 and not kwargs and type(args[0]) is _Proxy and not has_forward_hooks(module):
                cls = type(module)
                returns_input = self._returning.get(cls, _UNKNOWN)
                if returns_input is _UNKNOWN:
                    returns_input = self._returning[cls] = self._registry.returns_input(cls)
                if returns_input is not None and returns_input(module):
                    return self._passed_through(path, args[0])
            return self.call_module(module, _never_called, args, kwargs)
        args, kwargs = run_pre_hooks(module, args, kwargs)
        if path is None:  # a module the model holds outside its tree
            return run_forward_hooks(module, args, kwargs, self.forward_of(module)(*args, **kwargs))
        return self.call_module(module, self.forward_of(module), args, kwargs)

    def _passed_through(self, path: str, value: fx.Proxy) -> fx.Proxy:
        """A leaf call that returns its argument itself (``nn.Identity``, a dropout in eval:
        :meth:`~torchscan.ops.registry.OpLookup.returns_input`): no node, no op — counted as a call of the module,
        its output the argument's node (:attr:`module_outputs`), its place in the order of calls kept
        (:attr:`passed_through`: the report's rows stay in call order)."""
        self.num_calls[path] = self.num_calls.get(path, 0) + 1
        after = last_node(self.graph) or value.node  # never empty: the argument's node is in it
        self.module_outputs.setdefault(path, []).append(value.node.name)
        self.note_passed(path, after)
        reuse = self._reuse
        if reuse is not None and reuse.depth:
            reuse.log.append(("call", path, None))
            reuse.log.append(("output", path, value.node.name))
            reuse.log.append(("passed", path, after))
        return value

    def note_passed(self, path: str, after: fx.Node) -> None:
        """A call of the module at ``path`` that made no node, made after the node ``after`` (a trace's or a
        replay's, in call order): its place among the calls passed after that node."""
        last, count = self._passed
        place = count + 1 if last is after else 0
        self._passed = (after, place)
        self.passed_through.setdefault(path, []).append((after.name, place))

    def parameter(self, tensor: torch.Tensor) -> Any:
        """What traced code gets for a parameter of the copy (a buffer too, with :attr:`proxy_buffers`): the
        proxy of its first path."""
        found = self._tensor_paths.get(id(tensor))
        if found is None or (found[0] != "parameter" and not self.proxy_buffers):
            return self._fakes.any(tensor)
        path = found[1]
        proxy = self._proxies.get(path)
        if proxy is None:
            proxy = self._proxies[path] = self.create_proxy("get_attr", path, (), {})
        return proxy

    def buffer(self, tensor: torch.Tensor | None) -> Any:
        """What traced code gets for a buffer of the copy: its fake (``self.count += 1`` changes only that);
        a value of the trace the forward stored there (``self.cache = x``: timm's ConViT keeps a table it
        computes) as it was stored."""
        if tensor is None or isinstance(tensor, fx.Proxy):
            return tensor
        fake = self._fakes.any(tensor)
        written = self._written.get(id(fake))
        return written[1] if written is not None and written[0] is fake else fake

    def wrote_into(self, tensor: torch.Tensor, proxy: fx.Proxy) -> None:
        """``tensor[index] = value`` of a traced value into a tensor of the copy's (a buffer's fake, a plain tensor
        attribute: a key/value cache written at each call): ``proxy`` (the write's node) stands for it from then on,
        as a proxy written into stands for its write (:meth:`_Proxy.__setitem__`) — read by name again (``self.cache``)
        the module hands out the write, so what the forward reads of it follows the write, where it read the
        tensor as it was (a constant of the graph, the ops on it folded). A block writing so is traced, never
        replayed (the copy's state changes outside its graph)."""
        self._written[id(tensor)] = (tensor, proxy)
        path = self.tensor_attrs.get(tensor)
        if path is not None:  # a plain attribute: the module's dict holds the write (``get_attr`` reads the original)
            owner, _, name = path.rpartition(".")
            module = self.root.get_submodule(owner) if owner else self.root
            if vars(module).get(name) is tensor:
                vars(module)[name] = proxy
        reuse = self._reuse
        if reuse is not None and reuse.depth:
            reuse.log.append(("refused", None, None))

    def shaped(self, tensor: torch.Tensor | None) -> Any:
        """What the trace's shape pass reads of a parameter or buffer of the copy: its fake where one
        was made (a module the pass dispatched has its fakes made first, as :func:`propagate` puts them
        in), else the tensor itself — a rule reads its shape only, and faking it would cost more than
        the rule (no fake is made for a module the rules answer)."""
        return tensor if tensor is None else self._fakes.made(tensor)

    def create_arg(self, a: Any) -> Any:
        kind = type(a)
        if kind is _Proxy or kind is fx.Proxy:  # the common arguments first, as fx's create_arg returns them
            return a.node
        if kind in _PLAIN_ARGUMENTS or a is None:
            return a
        if kind is tuple:
            return tuple([self.create_arg(item) for item in a])
        if kind is list:
            return [self.create_arg(item) for item in a]
        if kind is dict and all(type(key) is str for key in a):  # a call's keyword arguments: fx's dict, made here
            # (fx's own path first tests the dict against parameters, tensors, modules and named tuples: ~8 µs)
            return {key: self.create_arg(value) for key, value in a.items()}
        if dataclasses.is_dataclass(a) and not isinstance(a, (type, Mapping)):  # a dataclass output: by field
            return super().create_arg({f.name: getattr(a, f.name) for f in dataclasses.fields(a)})
        if isinstance(a, torch.Tensor):
            return self._tensor_arg(a)
        try:
            return super().create_arg(a)
        except NotImplementedError:  # a value fx has no argument form for
            if not callable(a) and type(a).__module__.split(".", 1)[0] != "torch":
                raise
            return self._opaque_arg(a)

    def _opaque_arg(self, a: Any) -> fx.Node:
        """A value fx has no argument form for, given to a call recorded whole — a function (``flex_attention``'s
        ``score_mod``, a callback) or an object of torch's (a ``BlockMask``) — as a ``get_attr`` of a constant of
        the root holding it (one per value): the shape pass hands the call the value itself."""
        found = self._opaque.get(id(a))
        if found is None or found[0] is not a:
            found = self._opaque[id(a)] = (a, self.get_fresh_qualname("_opaque_constant"))
            setattr(self.root, found[1], a)
        return self.create_node("get_attr", found[1], (), {})

    def _tensor_arg(self, a: torch.Tensor) -> fx.Node:
        """A concrete tensor argument: ``get_attr`` of its path if it is (the fake of) a parameter or
        buffer of the copy or a tensor attribute of one of its modules, else a new constant of the root; a tensor of
        the copy a traced value was written into, that write (:meth:`wrote_into`: a local name still holding the
        tensor, ``k_out = self.k_cache; k_out[:, :, pos] = k``)."""
        written = self._written.get(id(a))
        if written is not None and written[0] is a:
            return written[1].node
        real = self._fakes.real_of(a)
        found = self._tensor_paths.get(id(real))
        if found is not None and found[2] is real:
            if found[0] == "parameter":
                return self.parameter(real).node
            return self.create_node("get_attr", found[1], (), {})
        qualname = self.tensor_attrs.get(a)
        if not qualname:
            qualname = self.get_fresh_qualname("_tensor_constant")
            self.tensor_attrs[a] = qualname
            setattr(self.root, qualname, a)
            if a._base is None:  # not a view of the copy's tensors (those are found above): made by the forward
                self.constants.add(qualname)
                if not self._fakes.holds(a):  # computed by ops the graph does not hold
                    self.folded.add(qualname)
        return self.create_node("get_attr", qualname, (), {})

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if "forward" in vars(m):  # an instance-level override: traced through
            return False
        cls = type(m)
        leaf = self._leaves.get(cls)
        if leaf is None:
            if wrapped_module(m) is not None:  # torch.compile, DataParallel: the wrapped module is called
                leaf = False
            elif self._registry.lookup(cls) is not None:
                leaf = True
            elif cls in TRACE_THROUGH:  # torch.nn built-ins made of counted sub-modules
                leaf = False
            else:  # fx's rule: torch.nn's own modules, Sequential excepted (reads the class only)
                leaf = super().is_leaf_module(m, module_qualified_name)
            self._leaves[cls] = leaf
        return leaf

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        """fx's ``call_module`` — the scope, the ``module_stack`` entry (keyed ``path``, then ``path@n``
        from the module's second call on), the call count; a ``call_module`` node for a leaf, else the
        forward traced — without fx's copies of the scope, and each call's first output recorded per
        module path."""
        path = self.path_of_module(m)
        scope = self.scope
        outer = scope.module_path, scope.module_type
        scope.module_path, scope.module_type = path, type(m)
        calls = self.num_calls.get(path, 0)
        key = f"{path}@{calls}" if calls > 0 else path
        self.module_stack[key] = (path, type(m))
        self._stack_copy = None
        self.num_calls[path] = calls + 1
        reuse = self._reuse
        if reuse is not None and reuse.depth:
            reuse.log.append(("call", path, None))
        frame = sys._getframe()
        users: list[tuple[Any, Any, int]] = []
        kept, below = self._walk(frame.f_back, users)
        interned = (id(kept), below)  # as node texts are keyed: the few frames below hashed, not the whole stack
        above = self._stacks.get(interned)
        if above is None:  # equal stacks: one object, kept
            above = self._stacks[interned] = _joined(kept, below)
        self._callers[frame] = above
        self._executions.enter(users, frame)
        del users  # it holds frames: the running call's own is not kept past its return
        region = self.region
        if self._codes.checkpoint and _checkpointed(below):  # called inside a checkpointed call: its nodes are in it
            self.region = self._checkpoints.region(frame.f_back)
        leaf = self.is_leaf_module(m, path)
        receivers = () if leaf else self.returned.receivers(frame.f_back, len(self.module_stack) - 1)
        try:
            if leaf:
                result = self.create_proxy("call_module", path, args, kwargs)
            elif reuse is not None and calls == 0 and path:
                result = reuse.call(m, path, forward, args, kwargs)
            else:
                result = forward(*args, **kwargs)
            if has_forward_hooks(m):  # the model's own, traced where they run: in the call, after its forward
                result = run_forward_hooks(m, args, kwargs, result)
            if receivers:
                self.returned.mark(result, receivers)
        finally:
            del self._callers[frame]
            self._executions.leave()
            self.region = region
            del frame  # it refers to this frame: kept, it would hold the frame (and the copy) in a cycle
            popped, _ = self.module_stack.popitem(last=True)
            self._stack_copy = None
            scope.module_path, scope.module_type = outer
        if popped != key:
            raise AssertionError(f"module stack out of order: {popped} left, {key} expected")
        first = result if isinstance(result, fx.Proxy) else first_proxy(result)
        if first is not None:
            self.module_outputs.setdefault(path, []).append(first.node.name)
            if reuse is not None and reuse.depth:
                reuse.log.append(("output", path, first.node.name))
        return result

    def node_candidate(self, target: Any) -> str:
        """The name fx's ``create_node`` derives for a call of ``target`` (``Graph._target_to_str``) before
        making it unique, remembered per function or method name for the trace: passed as the node's
        name, fx makes the same unique name from it without its regex substitution per node."""
        try:
            found = self._candidates.get(target)
        except TypeError:  # an unhashable callable: fx's own derivation
            return self.graph._target_to_str(target)
        if found is None:
            found = self._candidates[target] = self.graph._target_to_str(target)
        return found

    def create_node(
        self,
        kind: str,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None = None,
        type_expr: Any | None = None,
    ) -> fx.Node:
        """fx's node — its scope and a copy of the ``module_stack`` as ``nn_module_stack`` — with the
        stack trace fx's ``record_stack_traces`` gives it (the same filter and format, the tracer's own
        frames left out), from a walk of the Python frames, formatted once per distinct stack (fx
        symbolizes and formats every node's stack: ~half the tracing time of a deep model)."""
        if kind == "call_function":  # a function the traced code saw through a copy of its globals: the original
            target = self._code.original(target)
        if name is None and (kind == "call_function" or kind == "call_method"):
            name = self.node_candidate(target)
        elif name is None and (kind == "call_module" or kind == "get_attr") and type(target) is str:
            name = path_candidate(target)
        if fx_traceback.has_preserved_node_meta():  # a caller asked fx to carry node meta: fx's own path
            node = super().create_node(kind, target, args, kwargs, name, type_expr)
        else:
            node = plain_node(self.graph, kind, target, args, kwargs, name, type_expr)
            self.node_name_to_scope[node.name] = (self.scope.module_path, self.scope.module_type)
            if self.module_stack:  # one copy per state of the stack, shared by its nodes (read only)
                if self._stack_copy is None:
                    self._stack_copy = self.module_stack.copy()
                node.meta["nn_module_stack"] = self._stack_copy
        if kind in _CALLS:  # an op run under torch.autocast or with grad disabled: its state, for the passes
            if self.autocast_seen or autocast.enabled():
                self.autocast_seen = autocast.mark(node, True)
            if not torch.is_grad_enabled():
                self._grad_marks.mark(node)
        if node.stack_trace:
            if kind in _CALLS:  # fx's own path (node meta preserved): a walk of the whole stack
                self._checkpoints.mark(node, self._checkpoints.region(sys._getframe()))
            return node
        users: list[tuple[Any, Any, int]] = []
        above, below = self._walk(sys._getframe(), users)
        if kind in _CALLS and self._codes.function:  # made in a custom Function's forward: its call
            codes = self._codes
            call = self._functions.call(users, [codes[id(frame.f_code)].function for frame, _, _ in users])
            if call is not None:
                node.meta[FUNCTION] = call
        if kind in _CALLS and self._codes.checkpoint:  # inside a checkpointed call: the running module call's, or
            # one called below it (none before a frame of torch's checkpoint was met)
            self._checkpoints.mark(
                node, self._checkpoints.region(sys._getframe()) if _checkpointed(below) else self.region
            )
        key = (id(above), below)  # ``above`` is one kept object per distinct stack: a short key for the text
        text = self._node_texts.get(key)
        if text is None:
            text = self._node_texts[key] = self.stack_text(_joined(above, below))
        if text:
            node.meta["stack_trace"] = text  # what the property's setter does, without Node.__setattr__'s bookkeeping
            runs = self._executions.runs(users)
            if runs:
                node.meta[EXECUTIONS] = runs
        if self._reuse is not None and self._reuse.depth:
            self._reuse.frames[node] = _joined(above, below)
        return node


_LOWER_PATH = re.compile(r"[0-9a-z_.]*").fullmatch
"""A path of lowercase ASCII names and indices: what fx's name derivation changes only by its dots."""


def path_candidate(target: str) -> str | None:
    """The name fx derives for a ``call_module`` or ``get_attr`` node of ``target`` (a module path or
    attribute) before making it unique — ``_snake_case``, then each run of characters no identifier may
    hold made one ``_`` — found without fx's three regex passes where certain: dots become ``_``
    (``features.1.block`` → ``features_1_block``) in a path of lowercase names and indices; None
    (fx's own derivation) for any other target. fx's namespace adds the ``_`` before a leading digit."""
    if _LOWER_PATH(target) is None or ".." in target or (target.startswith("__") and target.endswith("__")):
        return None
    return target.replace(".", "_")


def _drop_unread_attributes(graph: fx.Graph, kept: set[str]) -> None:
    """Erase the ``get_attr`` nodes nothing reads: a parameter proxy made for Python code that read
    only its metadata (``self.fc.weight.dtype``) or compared it (``self.bias is not None``) is no op.
    ``kept``: nodes named elsewhere (a guard's, an output object's), left in."""
    for node in [node for node in graph.nodes if node.op == "get_attr" and not node.users]:
        if node.name not in kept:
            graph.erase_node(node)


class _Proxy(fx.Proxy):
    """fx's proxy, iterated as fx iterates it (``a, b = proxy`` gives ``proxy[0], proxy[1]``, anything
    else asks the tracer) with the unpacking instruction looked up in the tracer's per-code table."""

    tracer: _Tracer

    def __iter__(self) -> Any:
        count = self.tracer.unpacked(sys._getframe(1))
        if count is not None:
            return (self[index] for index in range(count))
        return self.tracer.iter(self)

    def __getattr__(self, k: str) -> Any:
        if k in METADATA:  # a tensor's rank, dtype or device: read off the shape pass (:meth:`_Tracer.metadata`)
            read = self.tracer.metadata(self, k)
            if read is not None:
                return read
        return _Attribute(self, k)

    def __len__(self) -> int:
        return self.tracer.concrete(self, "len")

    def __setitem__(self, key: Any, value: Any) -> None:
        """``x[key] = value``: fx's node for the write (``operator.setitem``, which fx's proxy lacks), and
        ``x`` stands for that node from then on — the shape pass gives it the object written — so what
        the forward reads of ``x`` afterwards follows the write (its data flow, whether it requires
        grad), as in a recorded forward. A block that writes into one of its arguments so changes its
        argument: never replayed (:mod:`~torchscan.graph.reuse`)."""
        before = self.node
        self.node = self.tracer.create_proxy("call_function", operator.setitem, (self, key, value), {}).node
        self.tracer.wrote(before)

    def __index__(self) -> int:
        return self.tracer.concrete(self, "index")

    def __int__(self) -> int:
        return self.tracer.concrete(self, "int")

    def __float__(self) -> float:
        return self.tracer.concrete(self, "float")

    @classmethod
    def __torch_function__(
        cls,
        orig_method: Callable[..., Any],
        types: tuple[type, ...],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """fx's node for a torch function called on proxies (``torch.relu(x)``, ``F.layer_norm(x, …)``),
        made as fx makes it, without fx's two pytree walks to find the tracer and the warnings filter
        pushed and popped to ask torch whether the function is a tensor method (~10 µs a call): the
        tracer is found among the arguments (and the items of a list or tuple argument), the answer
        remembered per function for the trace. Anything else (proxies nested deeper, several tracers,
        a script method or a higher-order op) goes to fx's own."""
        args = args if args else ()
        kwargs = kwargs if kwargs else {}
        tracer = _tracer_of(args, kwargs)
        if tracer is None or isinstance(orig_method, (torch._C.ScriptMethod, torch._ops.HigherOrderOperator)):
            return fx.Proxy.__torch_function__.__func__(cls, orig_method, types, args, kwargs)
        if tracer.is_tensor_method(orig_method):
            made = tracer.create_proxy("call_method", orig_method.__name__, args, kwargs)
            if orig_method is _SET_ITEM and args and type(args[0]) is not _Proxy and isinstance(args[0], torch.Tensor):
                tracer.wrote_into(args[0], made)  # a traced value written into a tensor of the copy
            return made
        return tracer.create_proxy(
            "call_function", orig_method, args, kwargs, name=tracer.node_candidate(orig_method.__name__)
        )


_SET_ITEM = torch.Tensor.__setitem__


def _tracer_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> _Tracer | None:
    """The one tracer of the proxies among ``args`` and ``kwargs``' values (and the items of a list or
    tuple among them); None where there are none at that depth or several tracers (fx's walk decides)."""
    found: _Tracer | None = None
    for value in (*args, *kwargs.values()):
        for item in value if type(value) in (list, tuple) else (value,):
            if isinstance(item, fx.Proxy):
                if found is None:
                    found = item.tracer
                elif item.tracer is not found:
                    return None
    return found if isinstance(found, _Tracer) else None


class _Attribute(fx.proxy.Attribute):
    """fx's lazy attribute proxy (``x.shape``: a ``getattr`` node only where the value is used, a
    method call otherwise), iterated as :class:`_Proxy` (``b, c, h, w = x.shape``): fx's own
    ``__iter__`` disassembles the calling function at every iteration and leaves a frame cycle
    behind for the garbage collector."""

    tracer: _Tracer
    __iter__ = _Proxy.__iter__
    __getattr__ = _Proxy.__getattr__
    __len__ = _Proxy.__len__
    __index__ = _Proxy.__index__
    __int__ = _Proxy.__int__
    __float__ = _Proxy.__float__
    __torch_function__ = _Proxy.__torch_function__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.attr in _RANK_METHODS and not args and not kwargs:  # ``x.dim()``: a rank, as ``x.ndim``
            rank = self.tracer.metadata(self.root, "ndim")
            if rank is not None:
                return rank
        return super().__call__(*args, **kwargs)


_CALLS = frozenset({"call_function", "call_method", "call_module"})
"""The kinds of node that run an op (and so may run it under ``torch.autocast``)."""

_CONSTANT_DEVICES = frozenset({"cpu", "meta"})
"""Device types a device read is a constant of the trace on. A tensor the forward builds from constants
alone is made as the forward makes it, a constant of the graph: on the CPU (as ``torch.arange(n)`` is)
or on meta, never on an accelerator, where it would run a real kernel and hold device memory — there
``x.device`` stays fx's attribute node, and what is built on it a node of the graph."""

_RANK_METHODS = frozenset({"dim", "ndimension"})
"""Tensor methods that return the rank (:meth:`_Tracer.metadata`)."""


_NOT_TENSORS = frozenset({int, float, bool, str, tuple, list, dict, set, type(None), OrderedDict})
"""The types of most of a module's attributes (its tensor and hook dicts, flags, sizes): tested first in
the trace's scan for tensor attributes (``isinstance(x, torch.Tensor)`` on a non-tensor costs ~120 ns, six
times a test against a plain class: torch's metaclass goes through ``type.__instancecheck__``)."""

_PLAIN_ARGUMENTS = frozenset({int, float, bool, str, torch.dtype, torch.device})
"""Argument types fx's ``create_arg`` returns as they are (constants of the graph)."""

_OWN_DIR = str(Path(__file__).resolve().parent.parent) + os.sep
"""torchscan's own folder: its frames (the tracer's) are left out of the nodes' stack traces."""

_TORCH_NN_CLASSES = frozenset(
    {
        nn.Module,
        object,
        *(value for value in vars(nn).values() if isinstance(value, type) and issubclass(value, nn.Module)),
    }
)
"""torch.nn's public module classes (and ``object``): where :meth:`_Tracer.methods_of` stops walking a class's MRO."""


def _never_called(*args: Any, **kwargs: Any) -> Any:
    """The forward handed to fx's ``call_module`` for a leaf (a leaf gets a node; its forward never runs)."""
    raise AssertionError("a leaf module's forward is not traced")


class _TensorView(dict):  # type: ignore[type-arg]
    """A module's tensor dict while it is traced: no read hands traced code the copy's own tensor (the user's
    parameter or buffer itself, which the lazy copy holds: :func:`~torchscan.graph.clone.shadow_copy`).
    A read by name (``self.weight``) gives :meth:`_named`; a walk of the dict (``parameters()``,
    ``buffers()``, ``state_dict()``, ``.get``, ``.values()``, ``.items()``) gives the tensors' fakes: a forward
    updating a parameter in place through ``parameters()`` (a momentum encoder's EMA under ``no_grad``)
    changed the user's model before, and one reading their dtypes or devices reads them off the fakes."""

    tracer: _Tracer

    by_name = False
    """Whether a read by name gives the tracer's proxy (parameters) rather than the fake (buffers)."""

    def __getitem__(self, name: str) -> Any:
        return self._handed(dict.__getitem__(self, name), self.by_name or self.tracer.proxy_buffers)

    def _handed(self, tensor: Any, by_name: bool = False) -> Any:
        if tensor is None or isinstance(tensor, fx.Proxy):
            return tensor
        if self.tracer.shaping:
            return self.tracer.shaped(tensor)
        return self.tracer.parameter(tensor) if by_name else self.tracer.buffer(tensor)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[name] if dict.__contains__(self, name) else default

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self._handed(tensor) for tensor in dict.values(self)]

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return [(name, self._handed(tensor)) for name, tensor in dict.items(self)]


class _ParameterView(_TensorView):
    """A module's ``_parameters`` while it is traced: a read by name gives the tracer's proxy (a ``get_attr``
    node), a walk the fakes (which an op of the graph reads as that ``get_attr``: :meth:`_Tracer.create_arg`)."""

    by_name = True


class _BufferView(_TensorView):
    """A module's ``_buffers`` while it is traced: reads give fakes."""


class _Interception(RoutedCalls):
    """Routes the calls and tensor reads of every module of the copy to the tracer, for the
    duration of one trace; the copy's modules are as before afterwards.

    Besides the call slot (:class:`RoutedCalls`), each module gets views of its tensor dicts, and a
    traced-through module its class's methods as the tracer sees them (:meth:`_Tracer.methods_of`:
    ``self.helper()`` reaching an ``fx.wrap``-ed function or ``math``) as instance attributes; kept
    re-parametrization hooks that set a module attribute during the trace have it restored.
    """

    apply = staticmethod(functools.partial(apply_on_copy, replace=False))
    """A module's cast that makes new tensors stops the trace (the recording that follows holds it)."""

    def __init__(self, tracer: _Tracer, modules: Sequence[nn.Module]) -> None:
        super().__init__(modules, lambda module: _Call(tracer, module))
        self._tracer = tracer
        self._saved: list[tuple[nn.Module, dict[str, Any]]] = []
        self._methods: list[tuple[nn.Module, list[str]]] = []
        self._dicts: list[tuple[dict[str, Any], Any, Any]] = []
        self.stored: list[Any] = []
        """The values the forward stored in place of a buffer (``self.table = ...`` where ``table`` is one), found
        on exit: the trace's writes are not kept, but a real forward's are, and the model holds them after it."""
        self.hooked = False
        """Whether a module held forward hooks on exit (registered by the model's code during the trace)."""

    def __enter__(self) -> _Interception:
        super().__enter__()
        paths = self._tracer.submodule_paths or {}
        for module in self._modules:
            state = vars(module)
            if state.get("_forward_pre_hooks"):
                self._saved.append((module, dict(state)))
            self._dicts.append((state, state["_parameters"], state["_buffers"]))
            parameters, buffers = _ParameterView(state["_parameters"]), _BufferView(state["_buffers"])
            parameters.tracer = buffers.tracer = self._tracer
            state["_parameters"], state["_buffers"] = parameters, buffers
            path = paths.get(module)
            if path is None or not self._tracer.is_leaf_module(module, path):
                methods = {name: made for name, made in self._tracer.methods_of(type(module)) if name not in state}
                for name, made in methods.items():
                    state[name] = types.MethodType(made, module)
                if methods:
                    self._methods.append((module, list(methods)))
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for state, parameters, buffers in self._dicts:  # the dicts as they were (a trace's writes are not kept)
            if state.get("_forward_hooks"):
                self.hooked = True
            for name, value in dict.items(state["_buffers"]):
                if value is not None and value is not dict.get(buffers, name):
                    self.stored.append(value)
            state["_parameters"], state["_buffers"] = parameters, buffers
        for module, names in self._methods:
            for name in names:
                vars(module).pop(name, None)
        for module, saved in self._saved:
            unrouted(saved)
            vars(module).clear()
            vars(module).update(saved)


class _Call:
    """The per-instance call slot of one module of the copy while it is traced (see :class:`_Interception`)."""

    __slots__ = ("_module", "_tracer")

    def __init__(self, tracer: _Tracer, module: nn.Module) -> None:
        self._tracer = tracer
        self._module = module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._tracer.shaping:  # the trace's shape pass runs the module: its own call
            return self._module._call_impl(*args, **kwargs)
        return self._tracer.module_call(self._module, args, kwargs)


def output_data(output: Any) -> tuple[Any, tuple[str, ...]]:
    """The forward's output as data: tensors and plain values kept, containers rebuilt (dataclasses
    and mappings as dicts), any other object (a cache object, a generator) replaced by None; and the
    type names replaced. An output with no tensor at all is a :class:`CaptureError`."""
    opaque: list[str] = []
    found = [False]

    def walk(value: Any) -> Any:
        if isinstance(value, (fx.Proxy, torch.Tensor)):
            found[0] = True
            return value
        if isinstance(value, DATA_TYPES):
            return value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {field.name: walk(getattr(value, field.name)) for field in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, (tuple, list)):
            items = [walk(item) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            if hasattr(value, "_fields"):
                return type(value)(*items)
            try:  # a subclass whose constructor takes other arguments: its plain base
                return type(value)(items)
            except Exception:
                return (tuple if isinstance(value, tuple) else list)(items)
        opaque.append(type(value).__name__)
        return None

    data = walk(output)
    if not found[0]:
        raise CaptureError(
            f"the forward returned no tensor ({type(output).__name__}: {_short(output)}): an output must hold "
            "tensors, possibly in tuples, lists, dicts or dataclasses"
        )
    return data, tuple(opaque)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _frames(frame: Any, stop: Any, codes: Codes) -> tuple[Any, ...]:
    """``frame`` and its callers up to ``stop`` (excluded), outermost first, as one flat tuple
    (:class:`_Code` of the code object, line, …): a cheap key (one tuple per walk)."""
    return _walk(frame, stop, {}, codes)[1]


def _joined(above: tuple[Any, ...] | None, below: tuple[Any, ...]) -> tuple[Any, ...]:
    """The whole stack from :func:`_walk`'s two parts."""
    return below if above is None else above + below


def plain_node(
    graph: fx.Graph,
    kind: str,
    target: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str | None = None,
    type_expr: Any | None = None,
) -> fx.Node:
    """``graph.create_node(kind, target, args, kwargs, name, type_expr)``: the same node, without fx's
    scan of every argument for SymInts (a trace or a recording on static shapes makes none). Made bare,
    then given its arguments, both at once as fx's setters do (arguments are not in fx's node lookup keys)."""
    node = graph.create_node(kind, target, None, None, name, type_expr)
    if args or kwargs:
        node._update_args_kwargs(args or (), kwargs if kwargs else node._kwargs)
    return node


def _checkpointed(frames: tuple[Any, ...]) -> bool:
    """Whether a stack tuple of :func:`_walk` (tokens at even positions) holds a frame of torch's checkpoint."""
    return any(token.checkpoint for token in frames[::2])


@final
class _Code:
    """A code object in a stack tuple of :func:`_walk`, hashed and compared by identity: a code object hashes
    its constants, names, local names and line table at every lookup (0.1–0.8 µs each, a few µs for the
    key of a node's stack); one per code object per trace (:data:`Codes`), so equal stacks stay equal."""

    __slots__ = ("checkpoint", "code", "function", "lines", "user")

    def __init__(self, code: types.CodeType) -> None:
        self.code = code
        self.function = False
        """Whether it is the ``forward`` of a user's ``torch.autograd.Function`` (:mod:`~torchscan.graph.functions`)."""
        self.checkpoint = code in CHECKPOINT_CODES
        """Whether it is torch's checkpoint (:data:`~torchscan.graph.checkpoint.CHECKPOINT_CODES`)."""
        self.user = is_user_file(code.co_filename)
        """Whether it runs user code (:func:`~torchscan.graph.executions.is_user_file`)."""
        self.lines: dict[int, int] = {}
        """The line of each instruction offset met (``f_lineno`` scans the code's line table at each read)."""


class Codes(dict[int, _Code]):
    """The :class:`_Code` of each code object a trace's walks met, by ``id`` (the token holds its code: the id
    stays that code's while the table lives)."""

    checkpoint = False
    """Whether one of them is torch's checkpoint (until then no stack is looked at for one)."""
    function = False
    """Whether one of them is a user's ``torch.autograd.Function`` forward (likewise)."""


def _walk(
    frame: Any,
    stop: Any,
    callers: Mapping[Any, tuple[Any, ...]],
    codes: Codes,
    users: list[tuple[Any, Any, int]] | None = None,
) -> tuple[tuple[Any, ...] | None, tuple[Any, ...]]:
    """:func:`_frames` of ``frame`` up to the first of its callers found in ``callers`` (that frame
    included, its line read now), with what ``callers`` keeps for it (the :func:`_frames` above it);
    ``(None, _frames(frame, stop))`` where none is. ``codes``: the trace's :class:`_Code` tokens; ``users``
    (if given) gets each user frame met below that caller, innermost first, with the frame just below it
    (None for ``frame`` itself) and its line: :meth:`~torchscan.graph.executions.Executions.runs`."""
    found: list[Any] = []
    child = None
    while frame is not None and frame is not stop:
        code = frame.f_code
        token = codes.get(id(code))
        if token is None or token.code is not code:
            token = codes[id(code)] = _Code(code)
            if token.checkpoint:
                codes.checkpoint = True
            if token.user and code.co_name == "forward" and is_function_forward(frame):
                token.function = codes.function = True
        line = token.lines.get(frame.f_lasti)
        if line is None:  # a line is a function of the code and the instruction (a debugger's jump aside)
            line = token.lines[frame.f_lasti] = frame.f_lineno
        found.append(line)
        found.append(token)
        above = callers.get(frame)
        if above is not None:  # a running call: its callers are known, its own line is read now
            found.reverse()
            return above, tuple(found)
        if users is not None and token.user:
            users.append((frame, child, line))
        child = frame
        frame = frame.f_back
    found.reverse()
    return None, tuple(found)


_UNPACK_SEQUENCE, _EXTENDED_ARG = dis.opmap["UNPACK_SEQUENCE"], dis.opmap["EXTENDED_ARG"]


def _unpack_count(raw: bytes, offset: int) -> int | None:
    """The count of the ``UNPACK_SEQUENCE`` at byte ``offset`` of the bytecode ``raw`` (2-byte code
    units: opcode, then the argument's low byte, its higher bytes in the ``EXTENDED_ARG`` units just
    before), else None."""
    if not 0 <= offset < len(raw) - 1 or raw[offset] != _UNPACK_SEQUENCE:
        return None
    count, shift, before = raw[offset + 1], 8, offset - 2
    while before >= 0 and raw[before] == _EXTENDED_ARG:
        count |= raw[before + 1] << shift
        shift, before = shift + 8, before - 2
    return count


def _summaries(frames: tuple[Any, ...]) -> list[tuple[str, int, str]]:
    """(file, line, function) of each frame of a :func:`_frames` tuple, outermost first."""
    return [
        (token.code.co_filename, line, token.code.co_name)
        for token, line in zip(frames[::2], frames[1::2], strict=True)
    ]


_UNKNOWN = object()
"""A class not looked up yet (:attr:`_Tracer._returning`)."""

BRANCH = "torchscan_branch"
"""Meta key of a node made by a branch of ``torch.cond`` on tensor data: ``(call, branch)``, the call's number in
the trace and 0 for the true branch, 1 for the false one (:meth:`_Tracer.both_branches`)."""

ROOT_CALL = "torchscan_root_call"
"""Meta key marking the call of a model that is itself one op (e.g. a bare ``nn.Conv2d``)."""


class _LeafRoot(nn.Module):
    """Holds a model that is itself one op (a bare ``nn.Conv2d``), called once by a one-node graph."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)


def _leaf_root_graph(inputs: ModelInputs) -> fx.Graph:
    """placeholders (one per input tensor) -> call_module ``model`` (the user's call) -> output."""
    graph = fx.Graph()
    placeholders = [graph.placeholder(spec.name or "input") for spec in inputs.specs]
    args, kwargs = private_arguments(inputs.rebuild(placeholders))
    call = graph.call_module("model", args, kwargs)
    call.meta[ROOT_CALL] = True
    if inputs.autocast:
        call.meta[AUTOCAST] = inputs.autocast
        call.meta[DEPTH] = autocast.nesting()
    graph.output(call)
    return graph


def traced_code(registry: Registry) -> TracedCode:
    """The functions of traced code for a capture with ``registry`` (an ``fx.wrap``-ed function it counts stays one
    node): one table may serve every trace of one capture (it holds no trace's state)."""
    return TracedCode(leaf=lambda function: registry.lookup(function) is not None)


def capture(
    model: nn.Module,
    registry: Registry,
    inputs: ModelInputs,
    reuse: bool = True,
    modules: Sequence[nn.Module] | None = None,
    min_share: float = MIN_SHARE,
    proxy_buffers: bool = False,
    code: TracedCode | None = None,
) -> Capture:
    """Trace a copy of ``model`` called with ``inputs`` (``reuse``: repeated blocks traced once and
    replayed, :mod:`torchscan.graph.reuse`, where replays could skip at least ``min_share`` of the
    modules; the graph is the same either way; ``modules``: ``model.modules()`` when the caller has
    walked them; ``proxy_buffers``: traced code gets a buffer read by name as its ``get_attr`` proxy, as it
    gets a parameter, instead of its fake — fx's ``proxy_buffer_attributes``, for a forward that hands a
    buffer's method a traced size where torch's argument parser refuses a proxy, ``self.ids.expand(n, -1)``;
    ``code``: the traced functions of an earlier trace of the same capture (:func:`traced_code`), reused).

    The copy holds the model's own parameter and buffer objects until the shape pass puts
    fakes in (``Capture.fakes``): traced code gets parameters as proxies and buffers as fakes
    (:class:`_Interception`), never the model's own tensors.
    """
    fake_mode = analysis_mode()
    fakes = Fakes(model, fake_mode, modules)
    copied = shadow_copy(model, fakes, lazy=True, modules=modules)
    clone = copied.root
    device = input_device(model)
    tracer = _Tracer(registry, inputs, fakes, copied.modules, reuse, min_share, device, proxy_buffers, code)
    submodules: dict[str, nn.Module] | None = None
    if isinstance(model, fx.GraphModule):  # already a graph (torch.export's .module(), fx's own): used as is
        return dataclasses.replace(_graph_capture(model, clone, inputs, fake_mode, fakes), shared=copied.shared)
    try:
        if tracer.is_leaf_module(clone, ""):
            root: nn.Module = _LeafRoot(clone)
            graph = _leaf_root_graph(inputs)
            outputs: dict[str, tuple[str, ...]] = {}
            passed: dict[str, tuple[tuple[str, int], ...]] = {}
        else:
            root = clone
            try:
                graph = tracer.trace(clone)
            except CaptureError:
                raise
            except Exception as error:
                raise CaptureError(
                    f"torch.fx could not trace {type(model).__name__}: {type(error).__name__}: {error}"
                ) from error
            outputs = {path: tuple(names) for path, names in tracer.module_outputs.items()}
            passed = {path: tuple(calls) for path, calls in tracer.passed_through.items()}
            submodules = tracer.submodules_of(clone)  # the trace's walk
        return Capture(
            graph=graph,
            root=root,
            module_outputs=outputs,
            fake_mode=fake_mode,
            fakes=fakes,
            shared=copied.shared,
            opaque_outputs=tracer.opaque_outputs,
            held_outputs=tracer.held_outputs,
            held_state=tracer.held_state,
            constants=frozenset(tracer.constants),
            folded=frozenset(tracer.folded),
            replayed=tracer.replayed,
            hooked=tracer.hooked,
            guards=tuple(tracer.guards),
            checks=tuple(tracer.checks),
            passed_through=passed,
            memo=Memo(
                traced=tracer.shapes, shapes=PlanCache(submodules=submodules, attributes=tracer.attribute_values)
            ),
        )
    finally:
        vars(tracer).clear()  # its proxies refer back to it: freed now (a failed trace's too), not by the collector


GRAPH_MODULE = "fx-graph"
"""The capture method named in the report's context for a model that is an fx ``GraphModule``."""


def _graph_capture(
    model: fx.GraphModule, clone: nn.Module, inputs: ModelInputs, fake_mode: FakeTensorMode, fakes: Fakes
) -> Capture:
    """The graph of an fx ``GraphModule`` (e.g. ``torch.export(...).module()``) copied onto our copy of
    it, its placeholders one per input tensor, nodes nothing uses removed (export's guard call)."""
    graph = fx.Graph()
    output = graph.graph_copy(model.graph, {})
    graph.output(output)
    placeholders = [node for node in graph.nodes if node.op == "placeholder"]
    if len(placeholders) != len(inputs.specs):
        raise CaptureError(
            f"the graph of {type(model).__name__} takes {len(placeholders)} tensor input(s), "
            f"{len(inputs.specs)} were given"
        )
    graph.owning_module = clone  # what fx's purity check reads call_module targets from
    graph.eliminate_dead_code()
    return Capture(graph=graph, root=clone, module_outputs={}, fake_mode=fake_mode, method=GRAPH_MODULE, fakes=fakes)


def input_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a stateless model)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):  # stops at the first: no full walk
        return tensor.device
    return torch.device("cpu")
