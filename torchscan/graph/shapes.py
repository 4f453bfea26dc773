"""Shapes and dtypes of every node, from one run of the graph on fake tensors.

Fake tensors carry shape, dtype, strides and device but no data: no arithmetic is done, so the
cost of this pass does not depend on the input resolution or the batch size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import operator
import os
import sys
import threading
import traceback
import weakref
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensor,
    FakeTensorMode,
    UnsupportedOperatorException,
)
from torch.fx.immutable_collections import immutable_dict
from torch.fx.node import map_arg

from torchscan.errors import CaptureError, InputError, ShapeError
from torchscan.graph import autocast
from torchscan.graph.autocast import AUTOCAST
from torchscan.graph.clone import Fakes
from torchscan.graph.dispatch_memo import Dispatch, DispatchMemo
from torchscan.graph.grad_mode import NO_GRAD
from torchscan.graph.graded import GradFlow
from torchscan.graph.routing import forward_of, run_pre_hooks
from torchscan.graph.rules import RULES, Fresh, Pending, ShapeRules, answer, materialize
from torchscan.graph.writes import written
from torchscan.inputs import InputSpec
from torchscan.ops import DEFAULT_REGISTRY, Saves
from torchscan.records import StorageRef, TensorSpec, tensor_leaves
from torchscan.records.frozen import frozen_record

__all__ = [
    "NodePlan",
    "NodeValues",
    "Opaque",
    "PlanCache",
    "SpecTable",
    "StorageIds",
    "TraceShapes",
    "describe",
    "fake_inputs",
    "propagate",
]

_PLAIN = (
    int,
    float,
    bool,
    str,
    complex,
    type(None),
    torch.dtype,
    torch.device,
    torch.memory_format,
    torch.layout,
    slice,
    type(Ellipsis),
)


_ARITHMETIC_MODULES = frozenset({"_operator", "math"})
"""Where Python's operators and ``math``'s functions live (``operator.floordiv.__module__``): on plain values
(sizes read off shapes, ``H // 2``) they run as they are (:meth:`_ShapeRunner.run_node`'s arithmetic path)."""


def _plain_values(args: tuple[Any, ...]) -> bool:
    """Whether every argument is plain data (:data:`_PLAIN`), a ``torch.Size`` or a tuple of plain data."""
    for arg in args:
        kind = type(arg)
        if kind in _PLAIN_TYPES or kind is torch.Size:
            continue
        if kind is not tuple or any(type(item) not in _PLAIN_TYPES for item in arg):
            return False
    return True


@frozen_record
class Opaque:
    """A value that is neither a tensor nor plain data (kept by type name only)."""

    type_name: str


@frozen_record
class NodeValues:
    """Described arguments and result of one node (tensors as :class:`TensorSpec`).

    ``storages`` holds one :class:`StorageRef` per tensor of ``output``, in ``tensor_leaves`` order.
    """

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    output: Any
    storages: tuple[StorageRef, ...] = ()
    passthrough: bool = False
    result: Any = dataclasses.field(default=None, compare=False, repr=False)
    """The node's result as the shape pass made it (fake tensors, :class:`Pending` ones), where it ran:
    the memory pass runs calls again on these (their strides and aliasing as torch made them)."""


@frozen_record
class NodePlan:
    """What the shape pass looks up once per call node: what it calls (the module object, the
    function, or the tensor method's function), its shape rule, and for an op that computes with
    weights (conv, linear…) the dtypes of the module's own floating-point parameters. These depend
    on the graph and the model's copy only, so one plan serves every run of the same capture."""

    callee: Any
    rule: Any
    weighted: bool
    weight_dtypes: tuple[torch.dtype, ...] = ()


@dataclass(slots=True)
class PlanCache:
    """What the shape pass looks up once per capture and reuses on every run of it at other inputs
    (a sweep): a :class:`NodePlan` per call node by name, the graph's steps in order (each node with
    the nodes whose values its run is the last to read, freed after it) and the copy's submodules
    by path. All of it depends on the graph and the copy only."""

    nodes: dict[str, NodePlan] = dataclasses.field(default_factory=dict)
    steps: tuple[tuple[fx.Node, tuple[fx.Node, ...]], ...] | None = None
    submodules: dict[str, nn.Module] | None = None
    """The copy's submodules by path, a module registered at several paths under each."""
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The plain tensor attributes of the copy's modules as the trace found them, by path: a ``get_attr`` node reads
    the tensor it was made for, where the forward rebinds the attribute later (``self.cache = self.cache.to(x)``:
    the copy then holds the trace's value there)."""


def is_passthrough(inputs: Any, result: Any) -> bool:
    """True when ``result`` is a container (tuple, namedtuple, dict…) whose tensors are all tensors
    of ``inputs``: packing computes nothing. A call returning one of its arguments as a bare
    tensor is not a passthrough: it may have modified it in place, so it needs a formula."""
    if isinstance(result, (torch.Tensor, Pending)):
        return False
    outputs = _tensors(result)
    if not outputs:
        return False
    given = {id(tensor) for tensor in _tensors(inputs)}
    return all(id(tensor) in given for tensor in outputs)


SpecTable = dict[tuple[Any, ...], TensorSpec]
"""One run's specs by value (shape, dtype, contiguous): :func:`describe` hands out one frozen spec per
distinct value instead of one per tensor read (a deep model's nodes mostly share a few dozen), so an
analysis leaves fewer objects for the cyclic garbage collector to walk after it."""


def tensor_spec(tensor: torch.Tensor | Pending, specs: SpecTable | None = None) -> TensorSpec:
    """The spec of a (fake, meta or real) tensor, or of a :class:`Pending` one (new, contiguous); with
    ``specs``, the table's spec of that value (added where new)."""
    if type(tensor) is Pending:
        key: tuple[Any, ...] = (tensor.shape, tensor.dtype, True)
    else:
        try:
            contiguous = tensor.is_contiguous()
        except RuntimeError:  # sparse or exotic layouts
            contiguous = True
        key = (tuple(tensor.shape), tensor.dtype, contiguous)
    if specs is None:
        return TensorSpec(*key)
    spec = specs.get(key)
    if spec is None:
        spec = specs[key] = TensorSpec(*key)
    return spec


_PLAIN_TYPES = frozenset(_PLAIN)


def describe(value: Any, specs: SpecTable | None = None) -> Any:
    """Tensors to :class:`TensorSpec`, containers recursively, plain data as is, the rest opaque
    (``specs``: one run's table, :data:`SpecTable`)."""
    kind = type(value)  # the common exact types first: this runs for every argument of every node
    if kind in _PLAIN_TYPES:
        return value
    if kind is tuple or kind is list:
        return tuple([describe(item, specs) for item in value])
    if kind is immutable_dict or kind is dict:  # a node's keyword arguments (most often none): before the ABC test
        return {key: describe(item, specs) for key, item in value.items()}
    if kind is torch.Size:  # a size read by the forward (``x.size()``, ``x.shape``): before the tensor test
        return tuple([int(size) for size in value])
    if kind is Pending or isinstance(value, (torch.Tensor, Pending)):
        return tensor_spec(value, specs)
    if isinstance(value, torch.Size):
        return tuple([int(size) for size in value])
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(describe(item, specs) for item in value)
    if isinstance(value, Mapping):
        return {key: describe(item, specs) for key, item in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {name: describe(getattr(value, name), specs) for name in value.__dataclass_fields__}
    return Opaque(type(value).__name__)


def shapes_of(value: Any) -> tuple[tuple[int, ...], ...]:
    """Shapes of the tensors in a described value."""
    return tuple(spec.shape for spec in tensor_leaves(value))


_LIBRARY_DIRS = (os.path.dirname(torch.__file__), os.path.dirname(os.path.dirname(__file__)))


def _user_frame(node: fx.Node) -> str:
    """The innermost frame of the user's code that made the call (library frames skipped)."""
    lines = (node.stack_trace or "").splitlines()
    for position in range(len(lines) - 1, -1, -1):
        line = lines[position].strip()
        if not line.startswith('File "'):
            continue
        path = line.split('"', 2)[1]
        if not path.startswith(_LIBRARY_DIRS):
            code = lines[position + 1].strip() if position + 1 < len(lines) else ""
            return f"\n  at {line}" + (f"\n    {code}" if code and not code.startswith("File ") else "")
    return ""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (its type's name when it has none)."""
    return next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)


def shape_list(shapes: Sequence[Sequence[int]]) -> str:
    """Shapes as an error message lists them: ``(1, 3), (8,)``, or ``()`` for none."""
    return ", ".join(str(tuple(shape)) for shape in shapes) or "()"


def user_frame_of_stack(frames: traceback.StackSummary | list[traceback.FrameSummary]) -> str:
    """The innermost frame of the user's code in a stack (library frames skipped), as an error's suffix."""
    for frame in reversed(frames):
        if not frame.filename.startswith(_LIBRARY_DIRS) and not frame.filename.startswith("<"):
            code = (frame.line or "").strip()
            where = f'File "{frame.filename}", line {frame.lineno}, in {frame.name}'
            return f"\n  at {where}" + (f"\n    {code}" if code else "")
    return ""


@contextlib.contextmanager
def quiet_fake_tensor_log() -> Iterator[None]:
    """FakeTensor logs a traceback before raising a shape error: we raise a clearer one (records of
    other threads pass)."""
    logger = logging.getLogger("torch._subclasses.fake_tensor")
    thread = threading.get_ident()

    def drop(record: logging.LogRecord) -> bool:  # this analysis's records only: other threads log as before
        return record.thread != thread or record.levelno < logging.ERROR

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _tensors(value: Any) -> list[Any]:
    """The tensors of a value in the order :func:`describe` then ``tensor_leaves`` list them."""
    kind = type(value)
    if kind is FakeTensor or kind is Pending:  # the common case first: one tensor
        return [value]
    found: list[Any] = []
    _collect_tensors(value, found)
    return found


def _collect_tensors(value: Any, found: list[Any]) -> None:
    """:func:`_tensors` into ``found`` (one list for the whole walk, no generator per level)."""
    if isinstance(value, (torch.Tensor, Pending)):
        found.append(value)
    elif type(value) in _PLAIN_TYPES:
        return
    elif isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        for item in value:
            _collect_tensors(item, found)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_tensors(item, found)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            _collect_tensors(getattr(value, name), found)


def _made(value: Any) -> Any:
    """``value`` with every :class:`Pending` tensor in it made (containers rebuilt only where one was)."""
    if type(value) is Pending:
        return value.fake()
    if isinstance(value, (tuple, list)):
        items = [_made(item) for item in value]
        if all(item is old for item, old in zip(items, value, strict=True)):
            return value
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        made = {key: _made(item) for key, item in value.items()}
        if all(made[key] is item for key, item in value.items()):
            return value
        return type(value)(made)
    if type(value) is slice:
        parts = (_made(value.start), _made(value.stop), _made(value.step))
        return (
            value
            if all(a is b for a, b in zip(parts, (value.start, value.stop, value.step), strict=True))
            else slice(*parts)
        )
    return value


class StorageIds:
    """Numbers storages in order of first sight; keeps them alive so no address is reused (the
    shape pass and the recording fallbacks give every node's outputs their storages this way). A
    :class:`Pending` value is numbered when first seen, and its storage, once made, keeps that number."""

    def __init__(self) -> None:
        self._refs: dict[int, StorageRef] = {}
        self._pending: dict[int, StorageRef] = {}
        self._alive: list[Any] = []
        self._count = 0
        self.on_made = _OnMade(self)
        """:meth:`made`, for a :class:`Pending` value to call: one object for all, holding these ids
        weakly (they keep the pending values alive: a bound method per value was a reference cycle
        per value, left to the cyclic collector)."""

    def ref(self, tensor: torch.Tensor | Pending, persistent: bool = False) -> StorageRef:
        if type(tensor) is Pending:
            ref = self._pending.get(id(tensor))
            if ref is None:
                ref = self._pending[id(tensor)] = self._next(tensor.nbytes(), persistent)
                self._alive.append(tensor)
            return ref
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse and other storage-less layouts
            return StorageRef(id=-1, nbytes=tensor.numel() * tensor.element_size())
        key = storage._cdata  # its impl's address (a weak ref's too): kept alive below, so never reused
        if key not in self._refs:
            self._refs[key] = self._next(int(storage.nbytes()), persistent, persistent and tensor.requires_grad)
            self._alive.append(storage)
        return self._refs[key]

    def alias(self, tensor: torch.Tensor, of: torch.Tensor) -> None:
        """``tensor``'s storage is ``of``'s (the fake a fake mode made of a real tensor): the same number, so views of
        either are views of one storage. Nothing where ``tensor``'s storage is numbered already."""
        key = tensor.untyped_storage()._cdata
        if key not in self._refs:
            self._refs[key] = self.ref(of)
            self._alive.append(tensor.untyped_storage())

    def refs(self, value: Any) -> tuple[StorageRef, ...]:
        """One :class:`StorageRef` per tensor of ``value``, in ``tensor_leaves`` order of its description."""
        return tuple(self.ref(tensor) for tensor in _tensors(value))

    def made(self, pending: Pending, meta: torch.Tensor) -> None:
        """``pending``'s storage was made: it keeps the number ``pending`` got."""
        ref = self._pending.get(id(pending))
        if ref is not None:
            storage = meta.untyped_storage()
            self._refs[storage._cdata] = ref
            self._alive.append(storage)

    def _next(self, nbytes: int, persistent: bool, trainable: bool = False) -> StorageRef:
        self._count += 1
        return StorageRef(id=self._count - 1, nbytes=nbytes, persistent=persistent, trainable=trainable)


class _OnMade:
    """Calls :meth:`StorageIds.made` of the ids it was made for while they are alive (once they are
    gone, nothing reads their numbers)."""

    __slots__ = ("_ids",)

    def __init__(self, ids: StorageIds) -> None:
        self._ids = weakref.ref(ids)

    def __call__(self, pending: Pending, meta: torch.Tensor) -> None:
        ids = self._ids()
        if ids is not None:
            ids.made(pending, meta)


class _ShapeRunner:
    """Runs the graph on fake tensors and records every node's described arguments and result.

    An op with a shape rule (:mod:`torchscan.graph.rules`) gets its fake output made directly
    from the rule's answer; the others (and calls a rule declines) are dispatched on fake tensors.
    With ``fakes``, the module holds real parameters and buffers: a dispatched module call gets
    its fakes put in first, an attribute read its fake. A tensor read by ``get_attr`` is model
    memory (a persistent storage) unless its target is one of ``constants`` (a tensor the forward
    computes from constants, made anew by every call: an activation).

    It runs a node as ``fx.Interpreter`` does (placeholders take the inputs in order, values freed
    after their last reader, targets resolved against ``module``), with the graph's steps and the
    module's submodules looked up once per capture (``plans``) instead of once per run.
    """

    def __init__(
        self,
        module: nn.Module,
        graph: fx.Graph,
        module_paths: Mapping[str, str],
        rules: ShapeRules,
        fake_mode: FakeTensorMode | None,
        fakes: Fakes | None,
        plans: PlanCache,
        constants: Collection[str] = frozenset(),
        memo: bool = True,
        fill: bool = True,
    ) -> None:
        if plans.submodules is None:
            plans.submodules = dict(module.named_modules(remove_duplicate=False))  # every path (build_graph's too)
        if plans.steps is None:
            plans.steps = _steps(graph)
        self.module, self.graph, self.submodules = module, graph, plans.submodules
        self._memo = DispatchMemo(fake_mode) if memo and fake_mode is not None else None
        self._plans = plans.nodes
        self._shared: dict[tuple[str, Any], NodePlan] = {}
        """(op, function or module class) -> a plan: a function's for all its nodes; a module class's rule and
        weighted flag for all its modules' plans."""
        self._steps = plans.steps
        self._attributes = plans.attributes
        self._constants = constants
        self.values: dict[str, NodeValues] = {}
        self._module_paths = module_paths
        self._rules = rules
        self._fake_mode = fake_mode
        self._fakes = fakes
        self._fill = fill
        """Whether a dispatched module call gets the fakes put into the copy (not while it is traced: its
        tensors are read through the tracer's views, which hand out the same fakes)."""
        self._storages = StorageIds()
        self._grads = GradFlow(self.values, self.submodules)
        """``x.requires_grad`` read by the forward's code: as a training forward's tensors carry it."""
        self._specs: SpecTable = {}
        self._env: dict[fx.Node, Any] = {}
        self._inputs: Iterator[Any] = iter(())
        if fakes is None:
            for tensor in (*module.parameters(), *module.buffers()):
                self._storages.ref(tensor, persistent=True)

    def run(self, *inputs: Any) -> Any:
        """Run every node in order on ``inputs`` (one per placeholder); the output node's value."""
        env, self._inputs = self._env, iter(inputs)
        for node, frees in self._steps:
            env[node] = self.run_node(node)
            for dead in frees:
                del env[dead]
            if node.op == "output":
                return env[node]
        return None

    def fetch_attr(self, target: str) -> Any:
        """The attribute at dotted path ``target`` of the module: a parameter or buffer registered on a module of
        :attr:`submodules` read from its dict (what ``nn.Module.__getattr__`` reads, without a lookup per part of
        the path), anything else part by part."""
        owner_path, _, name = target.rpartition(".")
        owner = self.submodules.get(owner_path) if owner_path else self.module
        if owner is not None:
            state = vars(owner)
            if name not in state and not hasattr(type(owner), name):  # no attribute that ``getattr`` reads first
                for tensors in (state.get("_parameters"), state.get("_buffers")):
                    if tensors is not None and name in tensors:
                        return tensors[name]
        value = self.module
        for position, atom in enumerate(target.split(".")):
            if not hasattr(value, atom):
                raise RuntimeError(f"Node referenced nonexistent target {'.'.join(target.split('.')[: position + 1])}")
            value = getattr(value, atom)
        return value

    def placeholder(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if str(target).startswith("*"):
            return list(self._inputs)
        try:
            return next(self._inputs)
        except StopIteration:
            if args:
                return args[0]
            raise RuntimeError(f"no input was given for the model's parameter {target}") from None

    def output(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return args[0]

    def call_function(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return target(*args, **kwargs)

    def call_method(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        owner, *rest = args
        return getattr(owner, target)(*rest, **kwargs)

    def get_attr(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        value = self._attributes.get(target)
        if value is None:
            value = self.fetch_attr(str(target))
        if not isinstance(value, torch.Tensor):
            return value
        fake = value if self._fakes is None else self._fakes.of(value)
        self._storages.ref(fake, persistent=target not in self._constants)
        return fake

    def call_module(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The module's kept re-parametrization hooks and forward (no user or global hook runs)."""
        module = self.submodules.get(str(target)) or self.fetch_attr(str(target))
        if self._fakes is not None:
            for fake in self._fakes.fill(module, put_in=self._fill):
                self._storages.ref(fake, persistent=True)
        args, kwargs = run_pre_hooks(module, tuple(args), dict(kwargs))
        return forward_of(module)(*args, **kwargs)

    def run_node(self, n: fx.Node) -> Any:
        """The node's value, its :class:`NodeValues` kept; run under the ``torch.autocast`` state and the grad
        mode its op ran under (:mod:`~torchscan.graph.autocast`, :mod:`~torchscan.graph.grad_mode`: autocast off
        and grad on for the others, whatever the thread's: the trace's shape pass runs inside the forward)."""
        meta = n.meta
        if AUTOCAST not in meta and NO_GRAD not in meta and torch.is_grad_enabled() and not autocast.enabled():
            return self._run_node(n, cast=False)  # most nodes, most of the time
        state = meta.get(AUTOCAST)
        grad = NO_GRAD not in meta
        if torch.is_grad_enabled() is not grad:
            with torch.set_grad_enabled(grad):
                return self.run_node(n)
        if state is None and not autocast.enabled():
            return self._run_node(n, cast=False)
        with autocast.applied(state or ()):
            return self._run_node(n, cast=state is not None)

    def _run_node(self, n: fx.Node, cast: bool) -> Any:
        """:meth:`run_node` (``cast``: under autocast, where neither rules nor the dispatch memo answer,
        and the op takes tensors of other dtypes than its weights': autocast casts them)."""
        # fx's run_node also sets fx_traceback's current node (for its own error context): our
        # errors name the node themselves, and that context manager costs more than a rule
        env = self._env
        args, kwargs = map_arg(n.args, env.__getitem__), map_arg(n.kwargs, env.__getitem__)
        if (
            n.op == "call_function"
            and not kwargs
            and getattr(n.target, "__module__", None) in _ARITHMETIC_MODULES
            and _plain_values(args)
        ):
            return self._arithmetic(n, args)
        if n.target is getattr and n.op == "call_function" and args[1:] == ("requires_grad",) and not kwargs:
            return self._answered(n, args, self._grads.requires_grad(n.args[0]))
        plan = self._plan(n)
        specs = self._specs
        described_args, described_kwargs = describe(args, specs), describe(kwargs, specs)
        if plan is not None and plan.weighted and not cast:
            self._check_dtypes(n, plan, described_args, described_kwargs)
        try:
            result = None if cast else self._by_rule(plan, args, kwargs)
            # the arguments the call ran on are kept: a result passing one through is told by identity
            if result is None and plan is not None and self._memo is not None and not cast:
                result, args, kwargs = self._memo.call(n.op, n.target, args, kwargs, self._dispatch(n, plan))
            elif result is None:
                result, args, kwargs = self._dispatch(n, plan)(args, kwargs)
            result = written(n.target, args, result)  # an index write: the tensor it wrote (None from Python)
        except (ShapeError, CaptureError):
            raise
        except (DataDependentOutputException, DynamicOutputShapeException) as error:
            raise CaptureError(
                f"fx node '{n.name}' ({self._op_name(n)}) has a data-dependent output shape "
                f"({error}): fake tensors cannot say its size{_user_frame(n)}"
            ) from error
        except UnsupportedOperatorException as error:  # no fake kernel, and the analysis runs no real one
            raise CaptureError(
                f"fx node '{n.name}' ({self._op_name(n)}) calls {error.func}, which has no fake (meta) kernel on "
                f"this device: fake tensors cannot run it, and the analysis runs no real kernel{_user_frame(n)}"
            ) from error
        except Exception as error:
            if n.target in BACKWARD_IN_FORWARD:
                where = _where(n, self._module_paths.get(n.name, ""), self._op_name(n))
                raise backward_in_forward(where, _user_frame(n)) from error
            raise self._shape_error(n, args, kwargs, error) from error
        storages = self._storages.refs(result)
        self.values[n.name] = NodeValues(
            args=described_args,
            kwargs=described_kwargs,
            output=describe(result, specs),
            storages=storages,
            passthrough=n.op != "placeholder" and is_passthrough((args, kwargs), result),
            result=result,
        )
        return result

    def _answered(self, n: fx.Node, args: tuple[Any, ...], result: Any) -> Any:
        """A node answered without a rule or a dispatch: its values are its arguments and result described,
        with no storage."""
        self.values[n.name] = NodeValues(
            args=describe(args, self._specs),
            kwargs={},
            output=describe(result, self._specs),
            storages=(),
            passthrough=False,
            result=result,
        )
        return result

    def _arithmetic(self, n: fx.Node, args: tuple[Any, ...]) -> Any:
        """Size arithmetic (``x.shape[0] // 2``: an operator or ``math`` function of plain values and
        shapes), run as it is: no rule, no dispatch, no tensor, so its values are its arguments and
        result described, with no storage — what the general path gives such a node, ~4× cheaper
        (15% of the nodes of the timm corpus are such arithmetic)."""
        try:
            result = n.target(*args)
        except Exception as error:
            raise self._shape_error(n, args, {}, error) from error
        return self._answered(n, args, result)

    def _dispatch(self, n: fx.Node, plan: NodePlan | None) -> Dispatch:
        """Running the node as fx would (a dispatched op gets its pending tensors made first)."""

        def run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
            if plan is not None:
                args, kwargs = _made(args), _made(kwargs)
            return getattr(self, n.op)(n.target, args, kwargs), args, kwargs

        return run

    def _plan(self, n: fx.Node) -> NodePlan | None:
        """The node's :class:`NodePlan` (None for placeholders, attributes and the output)."""
        if n.op not in ("call_module", "call_function", "call_method"):
            return None
        plan = self._plans.get(n.name)
        if plan is None:
            if n.op == "call_module":
                callee = self.submodules.get(str(n.target)) or self.fetch_attr(str(n.target))
                target = type(callee)
            elif n.op == "call_method":
                callee = target = getattr(torch.Tensor, str(n.target), None)
            else:
                callee = target = n.target
            key = (n.op, target)  # fx's graph keys its nodes by target too: always hashable
            shared = self._shared.get(key)
            if shared is None:  # the same for every node calling the same function or module class
                weighted = n.op != "call_method" and DEFAULT_REGISTRY.saves(target) is Saves.WEIGHTED
                rule = self._rules.rule_for(callee) if self._fake_mode is not None else None
                shared = self._shared[key] = NodePlan(callee, rule, weighted)
            if n.op != "call_module":
                plan = shared
            elif shared.weighted:  # its own weights' dtypes: parameters(recurse=False)
                weights = tuple(
                    t.dtype
                    for t in dict.values(callee._parameters)
                    if t is not None and (t.dtype.is_floating_point or t.dtype.is_complex)
                )
                plan = NodePlan(callee, shared.rule, True, weights)
            else:
                plan = NodePlan(callee, shared.rule, False)
            self._plans[n.name] = plan
        return plan

    def _by_rule(self, plan: NodePlan | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """The node's result from its shape rule, or None (no rule, or the rule declines)."""
        if plan is None or plan.rule is None or self._fake_mode is None:
            return None
        result = answer(plan.rule, plan.callee, args, kwargs)
        return Pending(result, self._fake_mode, self._storages.on_made) if type(result) is Fresh else result

    def _shape_error(self, n: fx.Node, args: Sequence[Any], kwargs: Mapping[str, Any], error: Exception) -> ShapeError:
        return self._rejected(n, describe((tuple(args), dict(kwargs))), first_line(error))

    def _rejected(self, n: fx.Node, described: Any, reason: str) -> ShapeError:
        """The :class:`ShapeError` of node ``n`` refusing its arguments (``described``) for ``reason``."""
        path = self._module_paths.get(n.name, "")
        shapes = shapes_of(described)
        message = (
            f"{_where(n, path, self._op_name(n))} rejected input shapes {shape_list(shapes)}"
            f"{_dtype_list(described)}: {reason}{_user_frame(n)}{_dtype_hint(self._target(n), described)}"
            f"{_guards_hint(self._target(n))}{_key_hint(self._target(n), described)}"
        )
        return ShapeError(message, node=n.name, module_path=path, input_shapes=shapes)

    def _target(self, n: fx.Node) -> Any:
        """What the node calls: the module's class, the function, or the tensor method."""
        if n.op == "call_module":
            return type(self.submodules.get(str(n.target)) or self.fetch_attr(str(n.target)))
        if n.op == "call_method":
            return getattr(torch.Tensor, str(n.target), n.target)
        return n.target

    def _op_name(self, n: fx.Node) -> str:
        target = self._target(n)
        return target.__name__ if isinstance(target, type) else getattr(target, "__name__", str(target))

    def _check_dtypes(self, n: fx.Node, plan: NodePlan, args: Any, kwargs: Any) -> None:
        """A weighted op (conv, linear…) whose tensors differ in dtype fails in eager PyTorch (``Input type (Half)
        and bias type (float) should be the same``, ``mat1 and mat2 must have the same dtype, but got Long and
        Float``) but not on fake tensors: raise it as the model would, saying what to pass (``args``, ``kwargs``
        described)."""
        conflict = dtype_conflict([t.dtype for t in tensor_leaves((args, kwargs))], plan.weight_dtypes)
        if conflict is None:
            return
        found, given = conflict
        if not (given.is_floating_point or given.is_complex):  # integers or bools: the dtype given by mistake
            raise self._rejected(n, (args, kwargs), mixed_dtypes_reason(found, given))
        raise mixed_dtypes_error(
            _where(n, self._module_paths.get(n.name, ""), self._op_name(n)), found, given, _user_frame(n)
        )


BACKWARD_IN_FORWARD = frozenset({torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward, "backward"})
"""Calls that run a backward pass inside the forward (a physics-informed net's derivatives of its output, a
gradient penalty): ``torch.autograd.grad``, ``torch.autograd.backward``, ``Tensor.backward`` (a method node's
target is its name)."""


def backward_in_forward(where: str, frame: str) -> CaptureError:
    """The error of a call of :data:`BACKWARD_IN_FORWARD` (``where``: the node or layer; ``frame``: the user's line,
    as an error's suffix)."""
    return CaptureError(
        f"{where} runs a backward pass inside the forward (torch.autograd.grad or .backward(), as a physics-informed "
        "network or a gradient penalty does): not supported, the analysis keeps no autograd graph of the forward's "
        f"values (shape rules make none, a real forward runs under no_grad){frame}"
    )


def dtype_conflict(
    inputs: Sequence[torch.dtype], weights: Sequence[torch.dtype]
) -> tuple[torch.dtype, torch.dtype] | None:
    """The dtype a weighted op (conv, linear…) computes in and another dtype it is given, or None where its
    tensors agree: eager PyTorch refuses them mixed (``mat1 and mat2 must have the same dtype``, ``Input type
    (Half) and bias type (float) should be the same``), fake tensors do not. ``inputs``: the dtypes of its tensor
    arguments, ``weights``: those of the module's own floating-point parameters (empty for a function, whose
    weights are arguments). It computes in its weights' dtype, else in its last floating-point argument's."""
    computing = [dtype for dtype in (*inputs, *weights) if dtype.is_floating_point or dtype.is_complex]
    if not computing:
        return None
    found = weights[0] if weights else computing[-1]
    given = next((dtype for dtype in (*inputs, *weights) if dtype != found), None)
    return None if given is None else (found, given)


def mixed_dtypes_error(where: str, found: torch.dtype, given: torch.dtype, frame: str) -> InputError:
    """The error of a weighted op (``where``) computing in ``found`` given a tensor of another floating dtype."""
    return InputError(
        f"{where} computes in {found} but gets {given} input: the model would fail the same way. Pass "
        f"dtype={_spelling(found)} (the dtype of the model's weights), or convert the model first "
        f"(model.to({_spelling(given)})) to analyse it in {given}{frame}"
    )


def mixed_dtypes_reason(found: torch.dtype, given: torch.dtype) -> str:
    """Why a weighted op computing in ``found`` refuses a tensor of the integer or bool dtype ``given``."""
    return f"the layer computes in {found} but gets a {given} tensor: eager PyTorch refuses mixed dtypes"


def _where(n: fx.Node, path: str, op: str) -> str:
    """``layer 'conv1' (Conv2d, fx node 'conv1')`` or ``fx node 'add_3' (add)``."""
    return f"layer '{path}' ({op}, fx node '{n.name}')" if path else f"fx node '{n.name}' ({op})"


def _spelling(dtype: torch.dtype) -> str:
    return str(dtype)  # ``torch.float32``


def _dtype_list(described: Any) -> str:
    """`` [float16, float32]``: the dtypes of the op's tensors when they are not all float32."""
    dtypes = list(dict.fromkeys(str(spec.dtype).removeprefix("torch.") for spec in tensor_leaves(described)))
    return f" [{', '.join(dtypes)}]" if dtypes and dtypes != ["float32"] else ""


_ID_OPS = frozenset(
    {torch.nn.Embedding, torch.nn.EmbeddingBag, torch.nn.functional.embedding, torch.nn.functional.embedding_bag}
)
"""Ops whose first input is integer ids (token ids, indices)."""


def _guards_hint(target: Any) -> str:
    """What to do when the guards of a program ``torch.export`` made (its ``GuardsFn`` module, found only where
    torch.export is imported) refuse the input: it holds for the shapes it was exported with."""
    guards = getattr(sys.modules.get("torch.export._unlift"), "GuardsFn", None)
    if guards is None or target is not guards:
        return ""
    return (
        "\n  hint: an exported program holds for the input shapes it was exported with (its guards): give no input "
        "shape to analyse it at its own, or export it with dynamic_shapes for others"
    )


def _key_hint(target: Any, described: Any) -> str:
    """What to give a forward that reads its input by a string key (``batch["x"]``) but got a tensor: a mapping."""
    if target not in (operator.getitem, torch.Tensor.__getitem__):
        return ""
    args = described[0] if isinstance(described, tuple) and described and isinstance(described[0], tuple) else ()
    key = args[1] if len(args) > 1 else None
    if not isinstance(key, str):
        return ""
    return (
        f"\n  hint: the forward reads a tensor by the key {key!r}: it takes a mapping of tensors (a dict), not a "
        f"tensor; give the call as made: crawl_module(model, args=({{{key!r}: torch.randn(...)}},), batch_size=None)"
    )


def _dtype_hint(target: Any, described: Any) -> str:
    """What to pass when a layer's first input has the wrong kind of dtype for it: float ids into an
    embedding, integers (``dtype=torch.long`` given for an image) into a layer that computes in floats."""
    first = next(iter(tensor_leaves(described)), None)
    if first is None:
        return ""
    if target in _ID_OPS and first.dtype.is_floating_point:
        return f"\n  hint: this layer takes integer ids; pass dtype=torch.long for this input (it is {first.dtype})"
    if (
        target not in _ID_OPS
        and not first.dtype.is_floating_point
        and not first.dtype.is_complex
        and first.dtype != torch.bool
    ):
        return (
            f"\n  hint: this layer computes in floating point but gets {first.dtype}: dtype=torch.long is for "
            "token ids only; leave this input's dtype at its default (torch.float32)"
        )
    return ""


def _steps(graph: fx.Graph) -> tuple[tuple[fx.Node, tuple[fx.Node, ...]], ...]:
    """Each node of ``graph`` in order with the nodes it is the last to read (their values are freed after it)."""
    last: dict[fx.Node, list[fx.Node]] = {}
    seen: set[fx.Node] = set()
    for node in reversed(graph.nodes):
        for source in node.all_input_nodes:
            if source not in seen:
                seen.add(source)
                last.setdefault(node, []).append(source)
    return tuple((node, tuple(last.get(node, ()))) for node in graph.nodes)


def fake_inputs(specs: Sequence[InputSpec], device: torch.device, fake_mode: FakeTensorMode) -> list[Any]:
    """One new fake tensor per input spec, on ``device``, made in ``fake_mode`` (a shape pass's inputs)."""
    with fake_mode:
        return [materialize(Fresh(spec.shape, spec.dtype, device), fake_mode) for spec in specs]


def _clean(error: ShapeError) -> ShapeError:
    """``error`` without the graph dump fx appends to an error raised inside its interpreter."""
    return ShapeError(error.message, node=error.node, module_path=error.module_path, input_shapes=error.input_shapes)


class TraceShapes:
    """The shape pass of a graph while it is being traced: a node's value is computed when the trace
    first needs it (Python code branching on a size, a size used as an ``int``), with every node made
    before it run once, in graph order, as :func:`propagate` runs them (nothing is freed: later nodes
    are not made yet); :meth:`finish` runs the rest once the trace is done, giving what
    :func:`propagate` gives. While the trace runs, the copy's tensors are read as fakes through the
    tracer (none is put in); after it, a dispatched module call gets its fakes put in, as in :func:`propagate`.
    ``submodules``: ``root.named_modules(remove_duplicate=False)`` as a dict, when the caller has walked it;
    ``attributes``: :attr:`PlanCache.attributes`."""

    def __init__(
        self,
        root: nn.Module,
        graph: fx.Graph,
        inputs: Sequence[Any],
        fake_mode: FakeTensorMode,
        fakes: Fakes | None,
        constants: Collection[str],
        submodules: dict[str, nn.Module] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self._paths: dict[str, str] = {}
        attributes = {} if attributes is None else attributes
        plans = PlanCache(steps=(), submodules=submodules, attributes=attributes)  # node by node: no steps yet
        self._runner = _ShapeRunner(root, graph, self._paths, RULES, fake_mode, fakes, plans, constants, fill=False)
        self._runner._inputs = iter(inputs)
        self._graph, self._last = graph, graph._root
        self._fake_mode = fake_mode

    def value(self, node: fx.Node) -> Any:
        """The value of ``node`` (made already), running the nodes made since the last call first. An
        error fails the trace (the capture that follows names the layer)."""
        env = self._runner._env
        if node not in env:
            self._run(node)
        return env[node]

    def finish(self, module_paths: Mapping[str, str]) -> dict[str, NodeValues]:
        """Every node's values (:func:`propagate`'s), the nodes not run yet run now (``module_paths``:
        each node's module path, for errors)."""
        self._paths.update(module_paths)
        self._runner._fill = True  # the trace is over: the copy is read as it is
        try:
            self._run(None)
        except ShapeError as error:
            raise _clean(error) from None
        return self._runner.values

    def _run(self, until: fx.Node | None) -> None:
        env, run_node = self._runner._env, self._runner.run_node
        root, current = self._graph._root, self._last.next
        with self._fake_mode, quiet_fake_tensor_log(), torch.enable_grad():
            while current is not root:
                env[current] = run_node(current)
                self._last = current
                if current is until:
                    return
                current = current.next


def propagate(
    root: nn.Module,
    graph: fx.Graph,
    inputs: Sequence[Any],
    module_paths: Mapping[str, str],
    rules: ShapeRules = RULES,
    fakes: Fakes | None = None,
    plans: PlanCache | None = None,
    constants: frozenset[str] = frozenset(),
    memo: bool = True,
) -> dict[str, NodeValues]:
    """Run ``graph`` (a graph of a call of ``root``) on (fake) ``inputs`` and describe every node's values.

    Must be called inside the fake mode that made the inputs and the module's tensors.
    ``module_paths`` maps node names to their module path (used in error messages); ``rules``
    answer the common ops without a dispatch (``NO_RULES``: dispatch every op); ``fakes`` are
    put into a module that still holds real tensors where an op is dispatched. ``plans`` memoizes
    the lookups that depend on the graph and the copy only (:class:`PlanCache`) across runs of the
    same capture (a sweep).
    ``constants``: the ``get_attr`` targets that are activations (:attr:`Capture.constants`).
    ``memo``: a torch op dispatched again with the same signature gets its output from the first
    dispatch's metadata (:mod:`~torchscan.graph.dispatch_memo`; False: dispatch every time).
    """
    fake_mode = detect_fake_mode(list(inputs))
    plans = PlanCache() if plans is None else plans
    interpreter = _ShapeRunner(root, graph, module_paths, rules, fake_mode, fakes, plans, constants, memo)
    # grad mode on whatever the caller's: some modules (MultiheadAttention) take another path under no_grad
    with quiet_fake_tensor_log(), torch.enable_grad():
        try:
            interpreter.run(*inputs)
        except ShapeError as error:  # fx appended its graph dump: raise ours clean, torch's error as context
            raise _clean(error) from None
    return interpreter.values
