"""Capture by recording one forward pass on fake tensors (the fallback when torch.fx cannot trace).

The fake copy of the model runs once under a ``TorchFunctionMode`` that appends every torch
function and tensor method call to an fx graph, while the copy's module calls, routed to the
recorder (:class:`RoutedCalls`: never a hook), keep the module stack, so rows and module
attribution are the same as with fx. Modules the op registry has a formula for are recorded as one
``call_module`` node and their insides are not recorded. What is lost: Python control flow is fixed
to this input (a branch not taken is absent), and Python-level arithmetic on sizes is baked in as
constants.
"""

from __future__ import annotations

import contextlib
import dataclasses
import operator
import sys
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
    UnsupportedOperatorException,
    unset_fake_temporarily,
)
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves, tree_map

from torchscan.errors import CaptureError, InputError, ShapeError
from torchscan.graph import autocast
from torchscan.graph.checkpoint import CheckpointMarks, Region
from torchscan.graph.clone import ModelCopy
from torchscan.graph.dispatch_memo import Dispatch, DispatchMemo
from torchscan.graph.executions import LIBRARY_DIRS as _LIBRARY_DIRS  # their frames: no user frames
from torchscan.graph.fake import analysis_mode
from torchscan.graph.functions import FUNCTION, FunctionCall, FunctionMarks, is_function_forward
from torchscan.graph.grad_mode import GradMarks
from torchscan.graph.held import held_by_objects, held_by_state
from torchscan.graph.rejected import CHECK_FUNCTIONS, RejectedInput, model_caller, own_check, rejected_input
from torchscan.graph.returned import ReturnSites
from torchscan.graph.routing import RoutedCalls, forward_of, run_forward_hooks, run_pre_hooks
from torchscan.graph.rules import RULES, Fresh, ShapeRules, answer, materialize
from torchscan.graph.shapes import (
    BACKWARD_IN_FORWARD,
    NodeValues,
    SpecTable,
    StorageIds,
    backward_in_forward,
    describe,
    dtype_conflict,
    first_line,
    is_passthrough,
    mixed_dtypes_error,
    mixed_dtypes_reason,
    shape_list,
    shapes_of,
    user_frame_of_stack,
)
from torchscan.graph.stack_text import StackTexts
from torchscan.graph.trace import Capture, output_data, plain_node
from torchscan.graph.writes import written
from torchscan.ops.registry import Registry, Saves
from torchscan.records import tensor_leaves

__all__ = ["NeedsValues", "record"]


class NeedsValues(CaptureError):
    """The forward read tensor values (``item()``, ``if x.sum() > 0``, data-dependent sizes) that fake
    tensors do not have; ``recorded_bytes`` sums the tensors it had made before."""

    def __init__(self, message: str, recorded_bytes: int) -> None:
        super().__init__(message)
        self.recorded_bytes = recorded_bytes


class _FakeKernelDisagrees(Exception):
    """An op's fake kernel rejected arguments its real kernel accepts (e.g. a dtype the meta kernel
    does not allow): fake tensors cannot answer, a real forward may."""


_NEEDS_VALUES = (
    DataDependentOutputException,
    DynamicOutputShapeException,
    UnsupportedOperatorException,
    _FakeKernelDisagrees,
)
"""What fake tensors raise where an op needs values (or has no fake kernel): a real forward may answer."""

_PROBE_LIMIT = 64 * 2**20
"""Most bytes of zeros a check of a rejected op on its real kernel may allocate (:func:`_real_kernel_accepts`)."""

_READS_VALUES = frozenset(
    {
        torch.Tensor.item,
        torch.Tensor.tolist,
        torch.Tensor.numpy,
        torch.Tensor.__bool__,
        torch.Tensor.__int__,
        torch.Tensor.__float__,
        torch.Tensor.__index__,
        torch.Tensor.__array__,
        torch.Tensor.data_ptr,
    }
)
"""Tensor methods that read values: fake tensors fail them whatever the shapes (a real forward may answer)."""


class _OpFailed(Exception):
    """An op rejected its arguments (raised out of the recorded forward, turned into a ShapeError)."""

    def __init__(self, error: ShapeError) -> None:
        super().__init__(error.message)
        self.error = error


NN_MODULE_STACK = "nn_module_stack"


class _Recorder(TorchFunctionMode):
    """Appends each call made outside counted leaf modules to ``graph``."""

    def __init__(
        self,
        root: nn.Module,
        registry: Registry,
        fake_mode: FakeTensorMode | None = None,
        rules: ShapeRules = RULES,
        memo: bool = True,
    ) -> None:
        super().__init__()
        self.fake_mode = fake_mode
        """The recording's fake mode: where shape rules answer instead of a dispatch (None: a real forward)."""
        self.rules = rules
        self.memo = DispatchMemo(fake_mode) if fake_mode is not None and memo else None
        """Repeated torch calls answered from the first dispatch's output metadata."""
        self._autocast_seen = False
        """Whether a call was made under torch.autocast (:func:`~torchscan.graph.autocast.mark`)."""
        self.grad_marks = GradMarks() if fake_mode is not None else None
        """What notes a node made with grad mode disabled (:class:`~torchscan.graph.grad_mode.GradMarks`): on fake
        tensors, where the forward runs with grad enabled (a real forward runs under ``no_grad`` throughout)."""
        self.checkpoints = CheckpointMarks() if fake_mode is not None else None
        """The checkpointed calls met (:mod:`~torchscan.graph.checkpoint`): on fake tensors, as grad mode."""
        self.regions: dict[Any, Region | None] = {}
        """The frames of the running module calls, each with the checkpointed call it runs in
        (:meth:`~torchscan.graph.checkpoint.CheckpointMarks.near`)."""
        self.graph = fx.Graph()
        self.root = root
        self.registry = registry
        self.paths: dict[int, str] = {}
        parameters: dict[int, tuple[str, torch.Tensor]] = {}
        buffers: dict[int, tuple[str, torch.Tensor]] = {}
        for path, module in root.named_modules():  # one walk: paths, then tensors as named_parameters/_buffers
            self.paths[id(module)] = path
            prefix = f"{path}." if path else ""
            for found, kind in ((parameters, "_parameters"), (buffers, "_buffers")):
                for name, tensor in vars(module)[kind].items():
                    if tensor is not None and id(tensor) not in found:
                        found[id(tensor)] = (prefix + name, tensor)
        self.attrs = {key: path for key, (path, _) in (*parameters.items(), *buffers.items())}
        self.env: dict[int, fx.Node] = {}
        self.alive: list[Any] = []  # keeps recorded tensors alive so their ids stay unique
        self.stack: list[str] = []
        self._keys: list[str] = []
        """``nn_module_stack`` key of each entry of ``stack``: the path, ``path@k`` from its second call on."""
        self._stacks: dict[tuple[tuple[str, ...], tuple[str, ...]], OrderedDict[str, tuple[str, type]]] = {}
        self._types: dict[str, type] = {}
        """The class of the module at each path entered (every path ``stack`` holds)."""
        self._calls: dict[str, int] = {}
        self.leaf_depth = 0
        self.pending: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.module_outputs: dict[str, list[str]] = {}
        self.values: dict[str, NodeValues] = {}
        self.constants = 0
        self._traces: dict[tuple[tuple[str, int, str], ...], str] = {}
        """Stack trace text by stack (file, line, function of each user frame, outermost first)."""
        self._stack_texts = StackTexts()
        self.storages = StorageIds()
        """Storage of every recorded tensor (views and in-place results share their base's), as the
        shape pass numbers them for fx captures; the model's parameters and buffers are persistent."""
        self._specs: SpecTable = {}
        """One spec per distinct tensor value described (:data:`~torchscan.graph.shapes.SpecTable`)."""
        for _, tensor in (*parameters.values(), *buffers.values()):
            self.storages.ref(tensor, persistent=True)
        self.returned = ReturnSites()
        """The user lines receiving the results of module calls (:mod:`~torchscan.graph.returned`)."""
        self.functions = FunctionMarks()
        """The calls of the user's ``torch.autograd.Function`` subclasses (:mod:`~torchscan.graph.functions`)."""
        self._forwards: dict[Any, bool] = {}
        """Whether a code object is a user's Function ``forward`` (:func:`.functions.is_function_forward`)."""
        self.callers: dict[Any, tuple[tuple[str, int, str], ...]] = {}
        """The frames of the running module calls (:func:`record`'s slots), each with the user frames
        above it (fixed while it runs: every frame above it waits at the same line)."""

    # -- values -> nodes ---------------------------------------------------------------
    def _bind(self, tensor: torch.Tensor, node: fx.Node) -> None:
        self.env[id(tensor)] = node
        self.alive.append(tensor)
        if node.op in ("placeholder", "get_attr"):  # a tensor the model holds is persistent
            ref = self.storages.ref(tensor, persistent=node.op == "get_attr")
            self.values[node.name] = NodeValues((), {}, describe(tensor, self._specs), storages=(ref,))

    def _node_of(self, tensor: torch.Tensor) -> fx.Node:
        node = self.env.get(id(tensor))
        if node is not None:
            return node
        path = self.attrs.get(id(tensor))
        if path is None:  # a tensor the forward made outside torch functions: keep it as a constant
            path = f"_torchscan_constant_{self.constants}"
            self.constants += 1
            setattr(self.root, path, tensor)  # the root is our copy, never the user's model
        node = self.graph.get_attr(path)
        node.meta[NN_MODULE_STACK] = self._stack_meta()  # read where first used, as fx traces it
        node.stack_trace = self.stack_trace()
        self._bind(tensor, node)
        return node

    def node_of(self, value: Any) -> fx.Node | None:
        """The node of a recorded tensor (None: not a recorded tensor)."""
        return self.env.get(id(value)) if isinstance(value, torch.Tensor) else None

    def function_call(self, frame: Any) -> FunctionCall | None:
        """The call of the outermost user ``torch.autograd.Function`` forward running at ``frame``, below the nearest
        running module call (:mod:`~torchscan.graph.functions`)."""
        found: list[tuple[Any, Any, int]] = []
        forwards = self._forwards
        while frame is not None and frame not in self.callers:
            code = frame.f_code
            if code.co_name == "forward":
                forward = forwards.get(code)
                if forward is None:
                    forward = forwards[code] = is_function_forward(frame)
                if forward:
                    found.append((frame, None, 0))
            frame = frame.f_back
        return self.functions.call(found, [True] * len(found)) if found else None

    def _arg(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return self._node_of(value)
        if isinstance(value, (tuple, list)):
            items = [self._arg(item) for item in value]
            if not hasattr(value, "_fields"):
                return type(value)(items)
            try:
                return type(value)(*items)
            except Exception:  # a named tuple whose ``__new__`` reads its fields as tensors (``PackedSequence``
                return tuple(items)  # reads their devices) cannot hold nodes: fx maps its arguments as a tuple
        if isinstance(value, Mapping):
            return {key: self._arg(item) for key, item in value.items()}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. a ModelOutput: by field
            return {f.name: self._arg(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return value

    def _stack_meta(self) -> OrderedDict[str, tuple[str, type]]:
        """The node's ``nn_module_stack``: one object shared by the nodes made under the same stack (as
        the tracer shares its copy), each module named by the class its call entered with."""
        stack = (tuple(self.stack), tuple(self._keys))
        made = self._stacks.get(stack)
        if made is None:
            made = self._stacks[stack] = OrderedDict(
                (key, (path, self._types[path])) for path, key in zip(*stack, strict=True) if path
            )
        return made

    def stack_trace(self) -> str | None:
        """The Python stack here as fx's ``record_stack_traces`` gives a traced node's (the same
        format; torch's and torchscan's frames left out), so the eager-liveness rules read recorded
        graphs as they read traced ones; formatted once per distinct stack."""
        stack = self.user_frames(sys._getframe(1))
        text = self._traces.get(stack)
        if text is None:
            text = self._traces[stack] = self._stack_texts.text(stack)
        return text or None

    def user_frames(self, frame: Any) -> tuple[tuple[str, int, str], ...]:
        """(file, line, function) of ``frame`` and its callers outside torch and torchscan, outermost
        first: walked up to the nearest running module call only, whose callers' are kept."""
        frames = []
        callers = self.callers
        while frame is not None:
            above = callers.get(frame)
            if above is not None:  # a running module call (torchscan's own frame): its callers are known
                frames.reverse()
                return above + tuple(frames)
            code = frame.f_code
            if not code.co_filename.startswith(_LIBRARY_DIRS):
                frames.append((code.co_filename, frame.f_lineno, code.co_name))
            frame = frame.f_back
        frames.reverse()
        return tuple(frames)

    def _emit(
        self,
        op: str,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        stack_trace: str | None = None,
    ) -> fx.Node:
        node = plain_node(self.graph, op, target, self._arg(tuple(args)), self._arg(dict(kwargs)))
        node.meta[NN_MODULE_STACK] = self._stack_meta()
        node.meta["stack_trace"] = stack_trace  # the property's setter, without Node.__setattr__'s bookkeeping
        self._autocast_seen = autocast.mark(node, self._autocast_seen)  # its torch.autocast state, for the passes
        if self.grad_marks is not None:
            self.grad_marks.mark(node)
        region = self.checkpoints.near(sys._getframe(), self.regions) if self.checkpoints is not None else None
        if region is not None:
            self.checkpoints.mark(node, region)
        # a Function's forward runs with grad disabled: only then is the stack walked for one (one C call else)
        call = None if torch.is_grad_enabled() else self.function_call(sys._getframe())
        if call is not None:
            node.meta[FUNCTION] = call
        described = describe(result, self._specs)
        self.values[node.name] = NodeValues(
            describe(tuple(args), self._specs),
            describe(dict(kwargs), self._specs),
            described,
            storages=self.storages.refs(result),
            passthrough=is_passthrough((args, kwargs), result),
            result=result,
        )
        if isinstance(result, torch.Tensor):
            self._bind(result, node)
        elif isinstance(result, (tuple, list)):
            outer = node.meta[NN_MODULE_STACK].copy()
            if op == "call_module" and outer:  # the items are taken in the caller's scope, as fx traces them
                outer.popitem(last=True)
            for index, item in enumerate(result):
                if isinstance(item, torch.Tensor):
                    item_node = plain_node(self.graph, "call_function", operator.getitem, (node, index), {})
                    item_node.meta[NN_MODULE_STACK] = outer
                    item_node.meta["stack_trace"] = stack_trace
                    self._autocast_seen = autocast.mark(item_node, self._autocast_seen)
                    if self.grad_marks is not None:
                        self.grad_marks.mark(item_node)
                    if region is not None:
                        self.checkpoints.mark(item_node, region)
                    self.values[item_node.name] = NodeValues(
                        (described, index),
                        {},
                        describe(item, self._specs),
                        storages=self.storages.refs(item),
                        result=item,
                    )
                    self._bind(item, item_node)
        return node

    # -- torch calls ---------------------------------------------------------------------
    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        kwargs = dict(kwargs or {})
        if self.registry.saves(func) is Saves.WEIGHTED and not autocast.enabled():  # mixed dtypes: eager refuses
            # them (fake kernels do not), unless autocast casts them
            self._check_dtypes(func, args, kwargs)
        try:
            result = self.by_rule(func, args, kwargs)
            if result is None and self.memo is not None and not autocast.enabled():
                result = self.memo.call("torch_function", func, tuple(args), kwargs, _run(func))[0]
            elif result is None:
                result = func(*args, **kwargs)
            result = written(func, args, result)  # an index write: the tensor it wrote, recorded as its result
        except (_OpFailed, RejectedInput, *_NEEDS_VALUES):
            raise
        except Exception as error:
            if func in CHECK_FUNCTIONS and (caller := model_caller(func)) is not None:  # ``torch._assert`` failed
                raise RejectedInput(error, caller) from error
            if func in BACKWARD_IN_FORWARD:
                path = self.innermost_path()
                where = f"layer '{path}' ({_name(func)})" if path else f"the model's call of {_name(func)}"
                raise backward_in_forward(where, user_frame_of_stack(traceback.extract_stack())) from error
            if func in _READS_VALUES:
                raise
            if _real_kernel_accepts(func, args, kwargs):
                raise _FakeKernelDisagrees(f"{_name(func)}: {first_line(error)}") from error
            raise _OpFailed(self._op_error(func, args, kwargs, error)) from error
        if self.leaf_depth == 0 and _has_tensor(result):
            name = getattr(func, "__name__", "")
            trace = self.stack_trace()
            if name and getattr(torch.Tensor, name, None) is func:
                self._emit("call_method", name, tuple(args), kwargs, result, trace)
            else:
                self._emit("call_function", func, tuple(args), kwargs, result, trace)
        return result

    def by_rule(self, target: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """What a shape rule answers for calling ``target`` (a function, a tensor method, a module) on
        fake tensors, a new result made a fake of the recording's mode; None where no rule answers
        (the call runs). The rules are checked against dispatch, as in the shape pass of fx captures. Under
        ``torch.autocast`` the call runs (rules know nothing of its casts)."""
        if self.fake_mode is None or autocast.enabled():
            return None
        rule = self.rules.rule_for(target)
        if rule is None:
            return None
        result = answer(rule, target, tuple(args), kwargs)
        return materialize(result, self.fake_mode) if type(result) is Fresh else result

    def _check_dtypes(self, func: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise what eager PyTorch raises where a weighted function (``F.linear``, ``F.conv2d``…) gets tensors
        of mixed dtypes (:func:`~torchscan.graph.shapes.dtype_conflict`), as the shape pass of a trace does."""
        leaves = [leaf for leaf in tree_leaves((tuple(args), kwargs)) if isinstance(leaf, torch.Tensor)]
        conflict = dtype_conflict([leaf.dtype for leaf in leaves], ())
        if conflict is None:
            return
        found, given = conflict
        if given.is_floating_point or given.is_complex:
            path = self.innermost_path()
            where = f"layer '{path}' ({_name(func)})" if path else f"({_name(func)})"
            raise mixed_dtypes_error(where, found, given, user_frame_of_stack(traceback.extract_stack()))
        raise _OpFailed(self._op_error(func, args, kwargs, RuntimeError(mixed_dtypes_reason(found, given))))

    def innermost_path(self) -> str:
        """The path of the innermost module call running ("" where only the root's runs)."""
        return next((path for path in reversed(self.stack) if path), "")

    def layer(self) -> tuple[str, str] | None:
        """The path and class name of the innermost module call running (None where only the root's runs)."""
        path = self.innermost_path()
        return (path, self._types[path].__name__) if path else None

    def _op_error(self, func: Any, args: Sequence[Any], kwargs: Mapping[str, Any], error: Exception) -> ShapeError:
        """The error of an op that rejected its arguments: the layer, the op, the input shapes and dtypes,
        torch's reason and the user's line."""
        path = self.innermost_path()
        described = describe((tuple(args), dict(kwargs)))
        shapes = shapes_of(described)
        dtypes = sorted({str(spec.dtype).removeprefix("torch.") for spec in tensor_leaves(described)})
        where = f"layer '{path}' " if path else ""
        name = _name(func)
        message = (
            f"{where}({name}) rejected input shapes {shape_list(shapes)} (dtypes {', '.join(dtypes) or '-'}): "
            f"{first_line(error)}{user_frame_of_stack(traceback.extract_stack())}"
        )
        return ShapeError(message, node=name, module_path=path, input_shapes=shapes)

    def finish(self, output: Any) -> None:
        """The graph's output node, returning ``output`` (its tensors keep their storages: the
        output allocates nothing)."""
        node = self.graph.output(self._arg(output))
        described = describe(output, self._specs)
        self.values[node.name] = NodeValues((described,), {}, described, storages=self.storages.refs(output))

    def recorded_bytes(self) -> int:
        """Bytes of the tensors recorded so far (inputs and op outputs)."""
        return sum(
            spec.numel * spec.dtype.itemsize for values in self.values.values() for spec in tensor_leaves(values.output)
        )

    def _leave(self) -> None:
        self.stack.pop()
        self._keys.pop()

    # -- module hooks --------------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Enter a module call; True when it is a counted leaf recorded as one ``call_module`` node."""
        path = self.paths.get(id(module), "")
        self._types[path] = type(module)  # what :meth:`_stack_meta` names the entries of ``stack`` by
        calls = self._calls.get(path, 0)
        self._calls[path] = calls + 1
        self.stack.append(path)
        self._keys.append(f"{path}@{calls}" if calls else path)
        if self.leaf_depth == 0 and path and self.registry.lookup(type(module)) is not None:
            self.pending.append((args, kwargs))
            self.leaf_depth += 1
            return True
        if self.leaf_depth:
            self.leaf_depth += 1
        else:
            self.pending.append(((), {}))
        return False

    def post_hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        path = self.stack[-1]
        if self.leaf_depth > 1:
            self.leaf_depth -= 1
            self._leave()
            return
        call_args, call_kwargs = self.pending.pop()
        if self.leaf_depth == 1:
            self.leaf_depth = 0
            # the module's own call in its stack, traced at its caller's line; the recorder's own reads
            # of the tensors (shapes, layouts, storages) are not the model's calls: not seen by this mode
            with torch._C.DisableTorchFunction():
                self._emit("call_module", path, call_args, call_kwargs, output, self.stack_trace())
        self._leave()
        first = _first_tensor(output)
        if path and first is not None and id(first) in self.env:
            self.module_outputs.setdefault(path, []).append(self.env[id(first)].name)


def _run(func: Any) -> Dispatch:
    """``func`` as :meth:`DispatchMemo.call` dispatches it: its result and the arguments it ran on."""
    return lambda args, kwargs: (func(*args, **kwargs), args, kwargs)


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or str(func)


def _real_kernel_accepts(func: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """Whether ``func`` accepts, on its real kernel, zeros of the shapes, dtypes and devices its fake
    kernel rejected: a check only where that costs little (at most :data:`_PROBE_LIMIT` bytes, no
    ``meta`` tensor), outside the fake mode, under ``no_grad``, with the RNG forked (a random op
    leaves the caller's state as it was); it reads and changes nothing of the model's (fresh zeros)."""
    tensors = [leaf for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)]
    if not tensors or any(tensor.device.type == "meta" for tensor in tensors):
        return False
    if sum(tensor.numel() * tensor.element_size() for tensor in tensors) > _PROBE_LIMIT:
        return False

    def zeros(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return torch.zeros(value.shape, dtype=value.dtype, device=value.device)
        return value

    cuda = sorted({tensor.device for tensor in tensors if tensor.device.type == "cuda"}, key=str)
    with unset_fake_temporarily(), torch.no_grad(), torch.random.fork_rng(devices=cuda, device_type="cuda"):
        try:
            real_args, real_kwargs = tree_map(zeros, (tuple(args), dict(kwargs)))
            func(*real_args, **real_kwargs)
        except Exception:
            return False
    return True


def _has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (tuple, list)) and any(isinstance(item, torch.Tensor) for item in value)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (tuple, list)) else ()
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def record(
    copied: ModelCopy,
    registry: Registry,
    mode: FakeTensorMode | contextlib.AbstractContextManager[Any],
    make_inputs: Callable[[], tuple[tuple[Any, ...], dict[str, Any], list[tuple[str, torch.Tensor]]]],
    method: str = "eager-record",
    rules: ShapeRules = RULES,
    memo: bool = True,
    autocast_state: autocast.Autocast = (),
) -> tuple[Capture, dict[str, NodeValues]]:
    """Record one forward of the copy of the user's model on the inputs ``make_inputs`` builds inside ``mode``.

    ``make_inputs`` returns the call's ``args``, ``kwargs`` and its input tensors with their
    placeholder names, in placeholder order. On fake tensors, the calls ``rules`` answer (functions,
    tensor methods, counted leaf modules without kept hooks) get the rule's answer instead of a
    dispatch, as in the shape pass (``NO_RULES``: dispatch every call), and with ``memo`` a torch
    call repeated with the same signature its first dispatch's output metadata
    (:mod:`~torchscan.graph.dispatch_memo`). The forward runs under ``autocast_state`` (the caller's
    ``torch.autocast``); a call made under autocast runs (no rule, no memo) and its node carries the state.

    The copy is fake (``mode`` is its FakeTensorMode) or, as a last resort, real (``mode`` is
    ``torch.no_grad()``). Returns the capture and every node's values, described as they were when
    the call was made (no replay needed).
    """
    clone = copied.root
    recorder = _Recorder(clone, registry, mode if isinstance(mode, FakeTensorMode) else None, rules, memo)

    def slot(module: nn.Module) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            frame = sys._getframe()
            recorder.callers[frame] = recorder.user_frames(frame.f_back)
            if recorder.checkpoints is not None:
                recorder.regions[frame] = recorder.checkpoints.near(frame.f_back, recorder.regions)
            # the root's caller is not the forward's: nothing of the graph receives the root's result
            depth = sum(1 for path in recorder.stack if path)  # the module calls the caller runs in (the root aside)
            receivers = recorder.returned.receivers(frame.f_back, depth) if recorder.stack else ()
            try:
                output = run(args, kwargs)
                if receivers:
                    recorder.returned.mark(output, receivers, recorder.node_of)
                return output
            finally:
                del recorder.callers[frame]
                recorder.regions.pop(frame, None)
                del frame  # it refers to this frame: kept, it would hold the frame in a cycle

        def run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            counted = recorder.pre_hook(module, args, kwargs)
            # a counted leaf without kept hooks: its shape rule's answer where there is one, else its forward
            output = None
            if counted and not module._forward_pre_hooks:
                with torch._C.DisableTorchFunction():  # the rule's own tensor queries are not calls of the model
                    output = recorder.by_rule(module, args, kwargs)
            if output is None:
                # after the recorder's pre-hook, so a counted leaf's kept re-parametrization hooks run inside it
                call_args, call_kwargs = run_pre_hooks(module, args, kwargs)
                output = forward_of(module)(*call_args, **call_kwargs)
            else:
                call_args, call_kwargs = args, kwargs
            output = run_forward_hooks(module, call_args, call_kwargs, output)  # the model's own, if any
            recorder.post_hook(module, args, kwargs, output)
            return output

        return call

    tensors: list[tuple[str, torch.Tensor]] = []
    try:
        with mode, torch.enable_grad() if isinstance(mode, FakeTensorMode) else contextlib.nullcontext():
            args, kwargs, tensors = make_inputs()
            for name, tensor in tensors:
                recorder._bind(tensor, recorder.graph.placeholder(name))
            with recorder, RoutedCalls(copied.modules, slot), autocast.applied(autocast_state):
                returned = clone(*args, **kwargs)
                output, opaque = output_data(returned)
            held = held_by_objects(returned) if opaque else ()
            held_outputs = tuple(
                dict.fromkeys(
                    recorder.env[id(tensor)].name
                    for tensor in held
                    if isinstance(tensor, torch.Tensor) and id(tensor) in recorder.env
                )
            )
            held_state = tuple(
                dict.fromkeys(
                    node.name
                    for tensor in held_by_state(copied.modules, buffers=True)  # a replaced buffer's: the graph's
                    if isinstance(tensor, torch.Tensor)
                    and (node := recorder.env.get(id(tensor))) is not None
                    and node.op not in ("get_attr", "placeholder")
                )
            )
            recorder.finish(output)
    except _OpFailed as failed:
        raise failed.error from None
    except RejectedInput as rejected:  # ``torch._assert`` of the model's code: its check, as a real forward fails it
        raise rejected_input(rejected.error, rejected.frame, type(clone).__name__, recorder.layer(), tensors) from None
    except _NEEDS_VALUES as error:
        frame = user_frame_of_stack(traceback.extract_tb(error.__traceback__))
        why = (
            f"an op's fake kernel rejected what its real kernel accepts: {first_line(error)}"
            if isinstance(error, _FakeKernelDisagrees)
            else f"values are needed: {type(error).__name__}: {first_line(error)}"
        )
        raise NeedsValues(
            f"recording a forward of {type(clone).__name__} ({method}) stopped where {why}{frame}",
            recorder.recorded_bytes(),
        ) from error
    except (CaptureError, InputError):
        raise
    except Exception as error:
        check = own_check(error)
        if check is not None:  # the model's own check rejected its input: a real forward fails it the same way
            raise rejected_input(error, check, type(clone).__name__, recorder.layer(), tensors) from None
        frame = user_frame_of_stack(traceback.extract_tb(error.__traceback__))
        raise CaptureError(
            f"recording a forward of {type(clone).__name__} ({method}) failed: {type(error).__name__}: "
            f"{first_line(error)}{frame}"
        ) from error
    finally:
        if recorder.checkpoints is not None:
            recorder.checkpoints.close()  # the frames it kept hold the forward's locals
        recorder.functions.close()
        recorder.returned.close()
    outputs = {path: tuple(names) for path, names in recorder.module_outputs.items()}
    fake_mode = mode if isinstance(mode, FakeTensorMode) else analysis_mode()
    capture = Capture(
        graph=recorder.graph,
        root=clone,
        module_outputs=outputs,
        fake_mode=fake_mode,
        method=method,
        shared=copied.shared,
        opaque_outputs=opaque,
        held_outputs=held_outputs,
        held_state=held_state,
    )
    return capture, recorder.values
