"""Capture with torch.fx on a fake copy of the model.

The user's model is never run nor traced: a structural copy whose parameters and buffers are
fake tensors (no storage) is traced instead, so tracing cannot change the model's state and a
model built on the ``meta`` device works. Leaves are the modules the op registry has a formula
for, plus torch's own built-in modules (fx's default); everything else is traced through, so
functional calls and branches become nodes.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import traceback
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

try:  # fx generates a graph module's Python code only when asked (torch >= 2.3); plain otherwise
    from torch.fx._lazy_graph_module import _LazyGraphModule as _GraphModule
except ImportError:  # pragma: no cover - older torch
    _GraphModule = fx.GraphModule  # type: ignore[misc]
from torch.utils._mode_utils import no_dispatch
from torch.utils._pytree import tree_leaves

from torchscan.errors import CaptureError
from torchscan.inputs import ModelInputs
from torchscan.ops import AUTOWRAP_FUNCTIONS, TRACE_THROUGH
from torchscan.ops.registry import Registry

__all__ = ["Capture", "capture", "drop_hooks", "fake_copy"]


@dataclass(frozen=True, slots=True)
class Capture:
    """A traced fake copy of the model (``root`` is the copy, ``graph_module`` its graph).

    ``module_outputs`` maps a module path to the fx node names of the outputs of each of its
    calls (first tensor of the returned structure), so every module row gets an output shape.
    """

    graph_module: fx.GraphModule
    root: nn.Module
    module_outputs: Mapping[str, tuple[str, ...]]
    fake_mode: FakeTensorMode
    method: str = "torch.fx"
    fakes: Fakes | None = None
    """Fakes still to be put into ``root`` where an op is dispatched (None: the copy is all fake)."""


def fake_copy(model: nn.Module, fake_mode: FakeTensorMode) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers are fake tensors sharing nothing.

    Tied tensors stay tied (each tensor is faked once); hooks are dropped from the copy so user
    callbacks never see analysis calls. The copy is structural (:func:`_shadow`): every module
    is a new object; a module whose state cannot be copied that way (slots) is deep-copied.
    """
    fakes = Fakes(model, fake_mode)
    return shadow_copy(model, fakes, lazy=False)


def shadow_copy(model: nn.Module, fakes: Fakes, lazy: bool) -> nn.Module:
    """A structural copy of ``model`` (hooks dropped) with fakes of its parameters and buffers
    (``lazy``: the model's own tensor objects, fakes put in later by :meth:`Fakes.fill`, and
    handed to traced code by the tracer); a model without plain module state is deep-copied
    with every tensor faked."""
    keep = lambda tensor: tensor  # noqa: E731
    try:
        clone = _shadow(model, keep if lazy else fakes.of, keep if lazy else fakes.of, {})
    except TypeError:  # a module without a plain __dict__
        try:
            clone = copy.deepcopy(model, dict(fakes.all()))
        except Exception as error:
            raise CaptureError(f"{type(model).__name__} cannot be copied for analysis: {error}") from error
    for module in clone.modules():
        drop_hooks(module)
    return clone


class Fakes:
    """The fakes of one model's parameters and buffers, each made once, on first use.

    A copy can hold the real tensors (shape rules read only their shapes) and get fakes put in
    (:meth:`fill`) only where an op is dispatched on fake tensors: most parameters of a model
    made of common layers are never faked.
    """

    def __init__(self, model: nn.Module, fake_mode: FakeTensorMode) -> None:
        named = (*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False))
        self._real = {id(tensor): tensor for _, tensor in named}
        keys = {key: _storage_key(tensor) for key, tensor in self._real.items()}
        counts = Counter(keys.values())
        self._alone = {key for key, storage in keys.items() if counts[storage] == 1}
        self._mode = fake_mode
        self._made: dict[int, torch.Tensor] = {}

    def of(self, tensor: torch.Tensor) -> torch.Tensor:
        """The fake of a parameter or buffer of the model; any other tensor as is."""
        key = id(tensor)
        made = self._made.get(key)
        if made is not None:
            return made
        if self._real.get(key) is not tensor:
            return tensor
        fake = _plain_fake(tensor, self._mode) if key in self._alone else None
        if fake is None:  # views, shared storages, subclasses…: torch's own conversion
            fake = self._mode.from_tensor(tensor, static_shapes=True)
        self._made[key] = fake
        return fake

    def all(self) -> dict[int, torch.Tensor]:
        """Every fake, by the id of its real tensor."""
        return {key: self.of(tensor) for key, tensor in self._real.items()}

    def fill(self, module: nn.Module) -> list[torch.Tensor]:
        """Put fakes in place of the real tensors of ``module`` (a module of *our copy*) and its
        sub-modules; returns the fakes put in."""
        put: list[torch.Tensor] = []
        for owner in module.modules():
            for tensors in (owner._parameters, owner._buffers):
                for name, tensor in tensors.items():
                    if tensor is not None and (fake := self.of(tensor)) is not tensor:
                        tensors[name] = fake
                        put.append(fake)
        return put


_CONTAINERS = (list, dict, set, OrderedDict)
"""Attribute types copied one level deep (a forward that appends to a list must not reach the model)."""


def _shadow(
    module: nn.Module,
    parameter_of: Callable[[torch.Tensor], torch.Tensor],
    buffer_of: Callable[[torch.Tensor], torch.Tensor],
    memo: dict[int, Any],
) -> nn.Module:
    """A new module of the same class with a shallow copy of ``module``'s state: sub-modules
    shadowed in turn (shared ones once), parameters and buffers mapped by ``parameter_of`` and
    ``buffer_of``, other
    tensor attributes deep-copied, plain containers copied, every other attribute shared
    (deep-copying a module's Python state costs more than the rest of the analysis of a small model).
    """
    found = memo.get(id(module))
    if found is not None:
        return found
    cls = type(module)
    clone = cls.__new__(cls)
    memo[id(module)] = clone
    state: dict[str, Any] = {}
    for key, value in vars(module).items():
        if key in ("_parameters", "_buffers"):
            tensor_of = parameter_of if key == "_parameters" else buffer_of
            state[key] = {name: None if tensor is None else tensor_of(tensor) for name, tensor in value.items()}
        elif key == "_modules":
            state[key] = {
                name: None if child is None else _shadow(child, parameter_of, buffer_of, memo)
                for name, child in value.items()
            }
        elif isinstance(value, torch.Tensor):  # a plain tensor attribute: copied, as by deepcopy
            state[key] = copy.deepcopy(value, memo)
        elif type(value) in _CONTAINERS:
            state[key] = value.copy()
        else:
            state[key] = value
    vars(clone).update(state)
    return clone


def _storage_key(tensor: torch.Tensor) -> int | None:
    """Identity of a tensor's storage (None for storage-less layouts)."""
    try:
        return tensor.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):
        return None


def _plain_fake(tensor: torch.Tensor, fake_mode: FakeTensorMode) -> FakeTensor | None:
    """The fake of a plain dense leaf tensor alone in its storage, made directly: what
    ``from_tensor`` makes of it (same sizes, strides, storage size, dtype, device, grad flag,
    parameter flag, and for a real 0-dim integer or float64 tensor the value ``item()`` returns,
    e.g. BatchNorm's ``num_batches_tracked``) at a tenth of the cost; None for anything else (views,
    shared storages, subclasses, grads, attributes, exotic layouts), which ``from_tensor`` converts."""
    scalar = tensor.dim() == 0 and tensor.device.type != "meta"
    if (
        type(tensor) not in (torch.Tensor, nn.Parameter)
        or vars(tensor)
        or tensor.layout != torch.strided
        or tensor.device.type not in ("cpu", "cuda", "meta")
        or (scalar and (fake_mode.shape_env is not None or "item_memo" not in vars(FakeTensor)))
        or not tensor.is_leaf
        or tensor.grad is not None
        or (tensor.requires_grad and tensor.grad_dtype != tensor.dtype)
        or tensor.is_quantized
        or tensor.is_nested
        or tensor.is_conj()
        or tensor.is_neg()
        or tensor._is_zerotensor()
        or tensor.is_inference()
        or tensor._is_view()
        or tensor.storage_offset() != 0
        or torch._C._functorch.is_functorch_wrapped_tensor(tensor)
    ):
        return None
    with no_dispatch():
        meta = torch.empty_strided(
            tensor.shape, tensor.stride(), dtype=tensor.dtype, device="meta", requires_grad=tensor.requires_grad
        )
        if meta.untyped_storage().nbytes() != tensor.untyped_storage().nbytes():
            return None
        fake = FakeTensor(fake_mode, meta, tensor.device)
    if type(tensor) is nn.Parameter:
        fake._is_param = True  # what from_tensor marks: isinstance(fake, nn.Parameter)
    if scalar and tensor.dtype in _MEMO_DTYPES:
        with no_dispatch():
            value = tensor.item()
        if not (math.isnan(value) or math.isinf(value)):
            fake.item_memo = value  # what from_tensor memoizes for a plain fake mode
    return fake


_MEMO_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.float64)
"""Dtypes of the real scalars whose value ``from_tensor`` memoizes for ``item()``."""


def drop_hooks(module: nn.Module) -> None:
    """Empty the hook dicts of a module of *our copy* (user callbacks must not see analysis calls)."""
    for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
        if getattr(module, hooks, None):
            setattr(module, hooks, type(getattr(module, hooks))())


class _Tracer(fx.Tracer):
    """fx tracer whose leaves are the modules with a formula; records module outputs.

    The root is called as the user's call is made: one placeholder per input tensor, every
    other value (``None``, flags, ints) concrete, so ``if mask is not None`` takes the branch
    the call takes and ``**kwargs`` or decorated forwards are no obstacle.
    """

    def __init__(self, registry: Registry, inputs: ModelInputs, fakes: Fakes | None = None) -> None:
        super().__init__(autowrap_functions=AUTOWRAP_FUNCTIONS)
        self._fakes = fakes
        """Fakes handed to traced code in place of the model's own buffers (None: the copy is fake)."""
        self._real_of_fake: dict[int, torch.Tensor] = {}
        """The model's buffer behind each fake handed out, by the fake's id (for ``get_attr`` paths)."""
        self._stack_traces: dict[tuple[tuple[str, int, str], ...], str] = {}
        """Stack trace text by stack (file, line, function of each frame, outermost first)."""
        self._registry = registry
        self._inputs = inputs
        self.module_outputs: dict[str, list[str]] = {}
        self._buffers: dict[int, tuple[str, torch.Tensor]] | None = None
        """The root's buffers by id (made at the first tensor argument; the root is set by ``trace``)."""
        self._entry: tuple[Any, tuple[tuple[str, int, str], ...]] | None = None
        """The frame that called ``trace`` and the stack down to it (outermost first)."""
        self._leaves: dict[type, bool] = {}
        """Leaf decision by module class (everything it depends on is the class)."""

    def trace(self, root: Any, concrete_args: Any = None) -> fx.Graph:
        caller = sys._getframe(1)
        self._entry = (caller, _frames(caller, None))
        try:
            return super().trace(root, concrete_args)
        finally:
            self._entry = None

    def create_args_for_root(
        self, root_fn: Callable[..., Any], is_module: bool, concrete_args: Any = None
    ) -> tuple[Callable[..., Any], list[Any]]:
        placeholders = [self.create_proxy("placeholder", spec.name or "input", (), {}) for spec in self._inputs.specs]
        args, kwargs = self._inputs.rebuild(placeholders)
        if not is_module:
            return lambda: root_fn(*args, **kwargs), []

        def call(root: nn.Module) -> Any:
            return root_fn(root, *args, **kwargs)

        return call, [self.root]

    def create_arg(self, a: Any) -> Any:
        if dataclasses.is_dataclass(a) and not isinstance(a, (type, Mapping)):  # a dataclass output: by field
            return super().create_arg({f.name: getattr(a, f.name) for f in dataclasses.fields(a)})
        if isinstance(a, torch.Tensor) and not isinstance(a, nn.Parameter):
            return self._tensor_arg(a)
        return super().create_arg(a)

    def _tensor_arg(self, a: torch.Tensor) -> fx.Node:
        """fx's ``create_arg`` of a tensor that is not a parameter (a buffer: ``get_attr`` of its path;
        else a constant attribute of the root), with the buffers looked up by id: fx scans every
        module's buffers per tensor argument, quadratic in depth when each layer makes a constant."""
        if self._buffers is None:
            self._buffers = {}
            for path, buffer in self.root.named_buffers():
                self._buffers.setdefault(id(buffer), (path, buffer))
        a = self._real_of_fake.get(id(a), a)
        found = self._buffers.get(id(a))
        if found is not None and found[1] is a:
            return self.create_node("get_attr", found[0], (), {})
        qualname = self.tensor_attrs.get(a)
        if not qualname:
            qualname = self.get_fresh_qualname("_tensor_constant")
            self.tensor_attrs[a] = qualname
            setattr(self.root, qualname, a)
        return self.create_node("get_attr", qualname, (), {})

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        """fx's attribute of a module during tracing (a proxy for a parameter); a buffer of the
        model is handed out as its fake, so traced code (``self.count += 1``) never touches it."""
        value = super().getattr(attr, attr_val, parameter_proxy_cache)
        if self._fakes is None or not isinstance(value, torch.Tensor):
            return value
        fake = self._fakes.of(value)
        if fake is not value:
            self._real_of_fake[id(fake)] = value
        return fake

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        cls = type(m)
        leaf = self._leaves.get(cls)
        if leaf is None:
            if self._registry.lookup(cls) is not None:
                leaf = True
            elif cls in TRACE_THROUGH:  # torch.nn built-ins made of counted sub-modules
                leaf = False
            else:  # fx's rule: torch.nn's own modules, Sequential excepted (reads the class only)
                leaf = super().is_leaf_module(m, module_qualified_name)
            self._leaves[cls] = leaf
        return leaf

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        result = super().call_module(m, forward, args, kwargs)
        first = result if isinstance(result, fx.Proxy) else _first_proxy(result)
        if first is not None:
            self.module_outputs.setdefault(self.path_of_module(m), []).append(first.node.name)
        return result

    def create_node(
        self,
        kind: str,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None = None,
        type_expr: Any | None = None,
    ) -> fx.Node:
        """fx's node with the stack trace fx's ``record_stack_traces`` gives it (the same frames,
        filter and format), from a walk of the Python frames, formatted once per distinct stack
        (fx symbolizes and formats every node's stack: ~half the tracing time of a deep model)."""
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        if node.stack_trace:
            return node
        entry, outer = self._entry if self._entry is not None else (None, ())
        inner = _frames(sys._getframe(), entry)
        text = self._stack_traces.get(inner)
        if text is None:
            stack = outer + inner
            summary = traceback.StackSummary.from_list([traceback.FrameSummary(*entry) for entry in stack])
            user_frames = self._filter_traceback_frames(summary)
            text = self._stack_traces[inner] = "".join(user_frames.format()).strip() if user_frames else ""
        if text:
            node.stack_trace = text
        return node


def _frames(frame: Any, stop: Any) -> tuple[tuple[str, int, str], ...]:
    """(file, line, function) of ``frame`` and its callers up to ``stop`` (excluded), outermost first."""
    frames = []
    while frame is not None and frame is not stop:
        code = frame.f_code
        frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


def _first_proxy(value: Any) -> fx.Proxy | None:
    """The first proxy among the leaves of a module's returned structure."""
    return next((leaf for leaf in tree_leaves(value) if isinstance(leaf, fx.Proxy)), None)


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
    args, kwargs = inputs.rebuild(placeholders)
    call = graph.call_module("model", args, kwargs)
    call.meta[ROOT_CALL] = True
    graph.output(call)
    return graph


def capture(model: nn.Module, registry: Registry, inputs: ModelInputs) -> Capture:
    """Trace a copy of ``model`` called with ``inputs`` with torch.fx.

    The copy holds the model's own parameter and buffer objects until the shape pass puts
    fakes in (``Capture.fakes``): traced code gets parameters as proxies and buffers as fakes
    (:meth:`_Tracer.getattr`), never the model's own tensors.
    """
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    fakes = Fakes(model, fake_mode)
    clone = shadow_copy(model, fakes, lazy=True)
    tracer = _Tracer(registry, inputs, fakes)
    if tracer.is_leaf_module(clone, ""):
        root: nn.Module = _LeafRoot(clone)
        graph = _leaf_root_graph(inputs)
        outputs: dict[str, tuple[str, ...]] = {}
    else:
        root = clone
        try:
            graph = tracer.trace(clone)
        except Exception as error:
            raise CaptureError(
                f"torch.fx could not trace {type(model).__name__}: {type(error).__name__}: {error}"
            ) from error
        outputs = {path: tuple(names) for path, names in tracer.module_outputs.items()}
    # fx.GraphModule generates and compiles the graph's Python code at once (~70 us per node); the
    # analysis only reads the graph and interprets it, so the code is made only if it is asked for
    graph_module = _GraphModule(root, graph, class_name=type(model).__name__)
    return Capture(graph_module=graph_module, root=root, module_outputs=outputs, fake_mode=fake_mode, fakes=fakes)


def input_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a stateless model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
