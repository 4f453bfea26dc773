"""The copy of the user's model that every capture runs: nothing the forward can reach is shared.

The copy is structural: every module is a new object of the same class; parameters and buffers
are fakes (no storage) or, for the last-resort real forward, private real copies; and everything
else the model holds is copied too (containers at any depth, plain objects, closures and bound
methods that refer to the model, generators' states), so a forward that appends to a list, bumps
a counter in a plain object, changes a held tensor in place or keeps its last output reaches only
the copy. User hooks are dropped from the copy (and named, :func:`hooks_of`); hooks that are part of what
the model computes are kept (:func:`kept_hook`): torch's own weight re-parametrization hooks (weight norm,
spectral norm, pruning), which only touch the module they are given (the copy's), and the forward hooks a model
library registers for its own outputs (Hugging Face's output capture).
"""

from __future__ import annotations

import copy
import enum
import functools
import math
import sys
import types
import weakref
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.nn.modules import module as module_state
from torch.nn.utils import parametrize, prune
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm
from torch.utils._mode_utils import no_dispatch
from torch.utils._pytree import tree_map

from torchscan.errors import CaptureError
from torchscan.graph.fake import fake_tensor
from torchscan.records.frozen import frozen_record

__all__ = [
    "HELD_STATE_BUDGET",
    "LRU_CACHE",
    "Fakes",
    "IgnoredHook",
    "ModelCopy",
    "fake_copy",
    "hooks_of",
    "kept_hook",
    "private_arguments",
    "real_copy",
    "reparametrized_names",
    "shadow_copy",
]

TensorMap = Callable[[torch.Tensor], torch.Tensor]


class Fakes:
    """The fakes of one model's parameters and buffers, each made once, on first use.

    A copy can hold the real tensors (shape rules read only their shapes) and get fakes put in
    (:meth:`fill`) only where an op is dispatched on fake tensors: most parameters of a model
    made of common layers are never faked. Other tensors the model holds get fakes from
    :meth:`any` (made at once: the copy must not share them).
    """

    def __init__(self, model: nn.Module, fake_mode: FakeTensorMode, modules: Sequence[nn.Module] | None = None) -> None:
        self._real = {  # every parameter and buffer, from one walk of the modules (``modules``: its result)
            id(tensor): tensor
            for module in (model.modules() if modules is None else modules)
            for tensors in (module._parameters, module._buffers)
            for tensor in dict.values(tensors)
            if tensor is not None
        }
        self._alone: set[int] | None = None
        """Ids of the tensors alone in their storage (made at the first fake: most analyses make few)."""
        self.mode = fake_mode
        self._made: dict[int, torch.Tensor] = {}
        self._real_of: dict[int, torch.Tensor] = {}
        self._held: list[torch.Tensor] = []  # tensors faked by any(): alive, so their ids stay unique
        self._held_fakes: set[int] = set()  # ids of their fakes (alive in ``_made``)

    def of(self, tensor: torch.Tensor) -> torch.Tensor:
        """The fake of a parameter or buffer of the model; any other tensor as is."""
        key = id(tensor)
        made = self._made.get(key)
        if made is not None:
            return made
        if self._real.get(key) is not tensor:
            return tensor
        if self._alone is None:
            keys = {key: _storage_key(tensor) for key, tensor in self._real.items()}
            counts = Counter(keys.values())
            self._alone = {key for key, storage in keys.items() if counts[storage] == 1}
        fake = _plain_fake(tensor, self.mode) if key in self._alone else None
        if fake is None:  # views, shared storages, subclasses…: torch's own conversion
            fake = self.mode.from_tensor(tensor, static_shapes=True)
        self._made[key] = fake
        self._real_of[id(fake)] = tensor
        return fake

    def made(self, tensor: torch.Tensor) -> torch.Tensor:
        """The fake of a parameter or buffer where one was made already (:meth:`of`), else the tensor
        itself: what a shape rule reads of a module whose fakes are not put in (its shapes only)."""
        return self._made.get(id(tensor), tensor)

    def any(self, tensor: torch.Tensor) -> torch.Tensor:
        """The fake of any tensor the model holds (a parameter's or buffer's own fake for those)."""
        if id(tensor) in self._real or isinstance(tensor, FakeTensor):
            return self.of(tensor)
        made = self._made.get(id(tensor))
        if made is None:
            try:
                made = self.mode.from_tensor(tensor, static_shapes=True)
            except Exception as error:  # an exotic tensor subclass fake tensors do not know
                raise CaptureError(f"cannot fake a {type(tensor).__name__} the model holds: {error}") from error
            self._made[id(tensor)] = made
            self._held.append(tensor)
            self._held_fakes.add(id(made))
        return made

    def holds(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor`` is the fake :meth:`any` made of a tensor the model holds outside its parameters
        and buffers (a tensor in a plain list or object): state the forward reads, not one it computes."""
        return id(tensor) in self._held_fakes

    def real_of(self, tensor: torch.Tensor) -> torch.Tensor:
        """The model's parameter or buffer behind a fake made by :meth:`of` (else ``tensor``)."""
        return self._real_of.get(id(tensor), tensor)

    def fill(self, module: nn.Module, put_in: bool = True) -> list[torch.Tensor]:
        """Put fakes in place of the real tensors of ``module`` (a module of *our copy*) and its
        sub-modules; returns the fakes put in (``put_in=False``: the fakes it would put in, nothing
        changed)."""
        put: list[torch.Tensor] = []
        for owner in module.modules():
            for tensors in (owner._parameters, owner._buffers):
                for name, tensor in dict.items(tensors):  # the copy's own (a trace's view hands out fakes)
                    if tensor is not None and (fake := self.of(tensor)) is not tensor:
                        if put_in:
                            tensors[name] = fake
                        put.append(fake)
        return put


@frozen_record
class IgnoredHook:
    """A hook of the user's model that the analysis did not run (``kind``: e.g. ``forward pre-hook``)."""

    module_path: str
    kind: str
    name: str

    def describe(self) -> str:
        where = "" if self.module_path == "<global>" else f" on '{self.module_path or '<root>'}'"
        return f"{self.kind} {self.name}{where}"


_KEPT_HOOKS = (WeightNorm, SpectralNorm, prune.BasePruningMethod)
"""torch's own forward pre-hooks that recompute a re-parametrized weight from the module they are
given (the copy's): run on the copy, since the forward reads the weight they set."""

_HOOK_INSTALLERS: tuple[tuple[str, str], ...] = (
    ("transformers.utils.output_capturing", "install_output_capuring_hook"),
)
"""(module, function) of the library functions that register forward hooks which are part of what a model's
forward computes: Hugging Face's output capture (``hidden_states``, ``attentions``), registered at a model's first
call asking for them, with a flag on the model saying so — a model called so before its analysis holds them, and
its forward (the copy's too) does not register them again. Looked up only where the library is imported."""


_EXPORT_HOOKS: tuple[tuple[str, str], ...] = (
    ("torch.export._unlift", "_create_stateful_graph_module"),
    ("torch.export._unlift", "_check_input_constraints_pre_hook"),
)
"""(module, function) of the hooks ``torch.export``'s ``ExportedProgram.module()`` registers on the module it makes
(the functions, or the hooks nested in them): its bookkeeping of module-typed graph inputs, and its check of the
input against the exported shapes, which the graph itself checks too (its ``_guards_fn`` node). Torch's own: no
user callback, run or not (not reported as ignored). Looked up only where torch.export is imported."""


def _installed_hook_codes() -> frozenset[types.CodeType]:
    """The code of the functions that :data:`_HOOK_INSTALLERS` define and register as hooks (nested in them)."""
    return _codes_of(_HOOK_INSTALLERS)


def _export_hook_codes() -> frozenset[types.CodeType]:
    """The code of the hooks of :data:`_EXPORT_HOOKS`."""
    return _codes_of(_EXPORT_HOOKS)


def _codes_of(functions: Sequence[tuple[str, str]]) -> frozenset[types.CodeType]:
    """The code of each of ``functions`` (module, name) that is imported, and the code nested in it."""
    codes: set[types.CodeType] = set()
    for module_name, name in functions:
        code = getattr(getattr(sys.modules.get(module_name), name, None), "__code__", None)
        if code is not None:
            codes.add(code)
            codes.update(const for const in code.co_consts if isinstance(const, types.CodeType))
    return frozenset(codes)


def kept_hook(key: str, hook: Any) -> bool:
    """Whether a copy keeps ``hook``, held in a module's hook dict ``key`` (``_forward_pre_hooks``…): part of what
    the model computes, as its own code would have it — a pre-hook of :data:`_KEPT_HOOKS`, or a forward hook made
    by one of :data:`_HOOK_INSTALLERS` (run where its module is called:
    :func:`~torchscan.graph.routing.run_forward_hooks`).
    Any other hook is the user's (a callback, a monitoring tool's): never run on the copy."""
    if key == "_forward_pre_hooks":
        return isinstance(hook, _KEPT_HOOKS)
    if key == "_forward_hooks":
        code = getattr(hook, "__code__", None)
        return isinstance(code, types.CodeType) and code in _installed_hook_codes()
    return False


def reparametrized_names(module: nn.Module) -> tuple[str, ...]:
    """Names of the tensors ``module`` computes from others at each call (``weight`` of a weight-,
    spectral-normed or pruned layer; any ``torch.nn.utils.parametrize`` parametrization)."""
    names: list[str] = []
    state = vars(module)
    if _may_hold_parametrizations(module, state) and parametrize.is_parametrized(module):
        names.extend(module.parametrizations.keys())
    for hook in (state.get("_forward_pre_hooks") or {}).values():
        if isinstance(hook, (WeightNorm, SpectralNorm)):
            names.append(hook.name)
        elif isinstance(hook, prune.BasePruningMethod):
            names.append(hook._tensor_name)
    return tuple(names)


def _may_hold_parametrizations(module: nn.Module, state: dict[str, Any]) -> bool:
    """Whether ``module.parametrizations`` can be found at all (a registered submodule, an instance or
    class attribute): where it cannot, ``is_parametrized``'s attribute lookup only fails, through
    ``nn.Module.__getattr__`` and its exception (~1 µs a module)."""
    return (
        "parametrizations" in (state.get("_modules") or ())
        or "parametrizations" in state
        or hasattr(type(module), "parametrizations")
    )


_HOOK_DICTS = {
    "_forward_pre_hooks": "forward pre-hook",
    "_forward_hooks": "forward hook",
    "_backward_pre_hooks": "backward pre-hook",
    "_backward_hooks": "backward hook",
}

_MODULE_INTERNALS = frozenset(
    {
        "_non_persistent_buffers_set",
        "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called",
        "_forward_pre_hooks_with_kwargs",
        "_state_dict_hooks",
        "_state_dict_pre_hooks",
        "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks",
    }
)
"""nn.Module's own bookkeeping containers: copied one level (they hold callables and names)."""


_GLOBAL_HOOKS = {
    "_global_forward_pre_hooks": "global forward pre-hook",
    "_global_forward_hooks": "global forward hook",
    "_global_backward_pre_hooks": "global backward pre-hook",
    "_global_backward_hooks": "global backward hook",
}
"""torch's process-wide module hooks (``register_module_forward_hook``…): never run on the copy either."""


def hooks_of(model: nn.Module, modules: Sequence[tuple[str, nn.Module]] | None = None) -> tuple[IgnoredHook, ...]:
    """The user hooks of ``model`` and its sub-modules that a copy drops (kept ones excluded), and
    torch's global module hooks, which calls on the copy never run (``modules``: ``model.named_modules()``
    when the caller has it)."""
    found: list[IgnoredHook] = []
    for key, kind in _GLOBAL_HOOKS.items():
        for hook in (getattr(module_state, key, None) or {}).values():
            found.append(IgnoredHook("<global>", kind, _callable_name(hook)))
    for path, module in model.named_modules() if modules is None else modules:
        state = vars(module)
        for key, kind in _HOOK_DICTS.items():
            hooks = state.get(key)
            if not hooks:  # most modules: four empty dicts
                continue
            for hook in hooks.values():
                if not kept_hook(key, hook) and getattr(hook, "__code__", None) not in _export_hook_codes():
                    found.append(IgnoredHook(path, kind, _callable_name(hook)))
    return tuple(found)


def _callable_name(hook: Any) -> str:
    name = getattr(hook, "__qualname__", None) or type(hook).__qualname__
    return f"'{name}'"


@frozen_record
class ModelCopy:
    """A copy of a model: its ``root``, every module of it (``modules``: the tree and the modules the
    model holds elsewhere) and the attributes left shared with the model (``shared``, ``Class.name``:
    too large to copy, see :data:`HELD_STATE_BUDGET`)."""

    root: nn.Module
    modules: tuple[nn.Module, ...]
    shared: tuple[str, ...]


def fake_copy(model: nn.Module, fake_mode: FakeTensorMode) -> ModelCopy:
    """A copy of ``model`` whose tensors (parameters, buffers and held ones) are fakes sharing nothing."""
    return shadow_copy(model, Fakes(model, fake_mode), lazy=False)


def shadow_copy(model: nn.Module, fakes: Fakes, lazy: bool, modules: Sequence[nn.Module] | None = None) -> ModelCopy:
    """A structural copy of ``model`` (user hooks dropped) with fakes of its tensors (``lazy``: the
    model's own parameter and buffer objects in the modules' tensor dicts, fakes put in later by
    :meth:`Fakes.fill` and handed to traced code by the tracer; every other reference to a tensor
    is a fake at once; ``modules``: ``model.modules()`` when the caller has walked them)."""
    keep: TensorMap = lambda tensor: tensor  # noqa: E731
    return _copy(_Copier(keep if lazy else fakes.of, fakes.any, _registered(model, modules)), model)


def real_copy(model: nn.Module) -> ModelCopy:
    """A copy of ``model`` with private real copies of its tensors, for the last-resort real forward."""
    copies: dict[int, torch.Tensor] = {}

    def real(tensor: torch.Tensor) -> torch.Tensor:
        made = copies.get(id(tensor))
        if made is None:
            with torch.no_grad():
                made = tensor.detach().clone()
            if isinstance(tensor, nn.Parameter):
                made = nn.Parameter(made, requires_grad=tensor.requires_grad)
            copies[id(tensor)] = made
        return made

    return _copy(_Copier(real, real, _registered(model)), model)


def _copy(copier: _Copier, model: nn.Module) -> ModelCopy:
    root = copier.module(model)
    return ModelCopy(root=root, modules=tuple(copier.modules), shared=tuple(copier.shared))


def private_arguments(arguments: Any) -> Any:
    """A call's ``arguments`` (``(args, kwargs)``, their containers rebuilt) with each value the forward could
    change in place copied for this call: a list, a dict, a plain object (a Hugging Face ``DynamicCache`` given
    as ``past_key_values``, which the forward fills), as the model's held state is copied (objects shared
    among them stay shared; one past :data:`HELD_STATE_BUDGET` values is shared). Tensors, proxies, graph nodes
    and plain values are as they are. Without it, a traced forward left its proxies in the user's cache, and the
    user's next real forward failed inside the analysis's tracer."""
    keep: TensorMap = lambda tensor: tensor  # noqa: E731
    copier = _Copier(keep, keep, frozenset())

    def one(value: Any) -> Any:
        if type(value) in _ATOMIC or isinstance(value, (torch.Tensor, fx.Proxy, fx.Node)) or _immutable(value):
            return value
        return copier._held(type(value), "argument", value)

    return tree_map(one, arguments)


def _registered(model: nn.Module, modules: Sequence[nn.Module] | None = None) -> frozenset[int]:
    return frozenset(id(module) for module in (model.modules() if modules is None else modules))


_ATOMIC: frozenset[type] = frozenset(
    {
        int,
        float,
        complex,
        bool,
        str,
        bytes,
        type(None),
        type(Ellipsis),
        type(NotImplemented),
        range,
        slice,
        torch.dtype,
        torch.device,
        torch.layout,
        torch.memory_format,
        torch.Size,
        torch.finfo,
        torch.iinfo,
        types.BuiltinFunctionType,
        types.ModuleType,
        types.MethodDescriptorType,
        types.WrapperDescriptorType,
        types.MethodWrapperType,
        types.ClassMethodDescriptorType,
        types.GetSetDescriptorType,
        property,
        frozenset,
    }
)
"""Types whose values the forward cannot change: shared, not copied."""


_TENSORS, _CHILDREN, _HOOKS, _INTERNAL, _COMPILED = "tensors", "children", "hooks", "internal", "compiled"
_STATE_KINDS: dict[str, str] = {
    "_parameters": _TENSORS,
    "_buffers": _TENSORS,
    "_modules": _CHILDREN,
    **dict.fromkeys(_HOOK_DICTS, _HOOKS),
    **dict.fromkeys(_MODULE_INTERNALS, _INTERNAL),
    "_compiled_call_impl": _COMPILED,
}
"""How :meth:`_Copier.module` copies each of ``nn.Module``'s own attributes (any other: :meth:`_Copier._held`)."""


LRU_CACHE = type(functools.lru_cache(maxsize=None)(lambda: None))
"""``functools._lru_cache_wrapper``: what ``@lru_cache`` and ``@cache`` make."""

HELD_STATE_BUDGET = 50_000
"""Most values (other than numbers, strings and the like) visited to copy one attribute of one module
(a model holding a trainer, a dataset…): past it the attribute is shared with the model and a
``held-state-shared`` diagnostic names it."""


def _immutable(value: Any) -> bool:
    """A value of an :data:`_ATOMIC` type, or a tuple of them (a kernel size, a stride): never changed."""
    kind = type(value)
    return kind in _ATOMIC or (kind is tuple and _ATOMIC.issuperset(map(type, value)))


class _OverBudget(Exception):
    """An attribute's held state has more than :data:`HELD_STATE_BUDGET` values."""


class _Copier:
    """Copies a model and what it holds, one memo for all (shared objects stay shared, cycles kept)."""

    def __init__(self, parameter_of: TensorMap, tensor_of: TensorMap, registered: frozenset[int]) -> None:
        self._parameter_of = parameter_of
        self._tensor_of = tensor_of
        self._registered = registered
        """Ids of the model's registered modules (whose tensors ``parameter_of`` maps; the others' ``tensor_of``)."""
        self._memo: dict[int, Any] = {}
        self._alive: list[Any] = []  # originals seen: their ids stay unique while copying
        self._left: int | None = None
        """Values the attribute being copied may still take (:data:`HELD_STATE_BUDGET`)."""
        self.shared: list[str] = []
        """Attributes (``Class.name``) left shared with the model: too large to copy."""
        self.modules: list[nn.Module] = []
        """Every module of the copy: the model's tree and modules it holds elsewhere."""

    def module(self, module: nn.Module) -> nn.Module:
        """A new module of the same class: sub-modules copied in turn (shared ones once), tensors
        mapped, hooks filtered, a ``torch.compile`` of the module itself dropped, the rest copied."""
        found = self._memo.get(id(module))
        if found is not None:
            return found
        cls = type(module)
        clone = cls.__new__(cls)
        self._memo[id(module)] = clone
        self.modules.append(clone)
        try:
            state = vars(module)
        except TypeError as error:
            raise CaptureError(f"{cls.__name__} cannot be copied for analysis: it has no __dict__") from error
        copied: dict[str, Any] = {}
        for key, value in state.items():
            kind = _STATE_KINDS.get(key)
            if kind is _HOOKS and not value:  # most of a module's state: hook dicts, empty; a new one each
                copied[key] = type(value)()
            elif kind is None:
                if type(value) in _ATOMIC or _immutable(value):  # plain config values, sizes, strides: shared
                    copied[key] = value
                elif key == "forward" and isinstance(value, types.FunctionType):  # an instance-level forward
                    copied[key] = self._function(value, with_globals=True)
                else:
                    copied[key] = self._held(cls, key, value)
            elif kind is _INTERNAL:
                copied[key] = value.copy()
            elif kind is _TENSORS:
                tensor_of = self._parameter_of if id(module) in self._registered else self.value
                copied[key] = {name: None if tensor is None else tensor_of(tensor) for name, tensor in value.items()}
            elif kind is _CHILDREN:
                copied[key] = {name: None if child is None else self.module(child) for name, child in value.items()}
            elif kind is _HOOKS:  # hooks registered: those the analysis keeps (a forward hook's closure copied)
                kept = {k: hook for k, hook in value.items() if kept_hook(key, hook)}
                if key == "_forward_hooks":
                    kept = {k: self.value(hook) for k, hook in kept.items()}
                copied[key] = type(value)(kept)
            else:  # _compiled_call_impl: never run a compiled kernel, the module's own forward is analysed
                copied[key] = None
        vars(clone).update(copied)
        return clone

    def _held(self, owner: type, key: str, value: Any) -> Any:
        """The copy of one attribute's value within the budget; past it, the value itself (named in
        :attr:`shared`) and nothing the attempt copied kept."""
        if type(value) in _ATOMIC:
            return value
        memo_size, alive_size, outer = len(self._memo), len(self._alive), self._left
        self._left = HELD_STATE_BUDGET
        try:
            return self.value(value)
        except _OverBudget:
            for made in list(self._memo)[memo_size:]:
                del self._memo[made]
            del self._alive[alive_size:]
            self.shared.append(f"{owner.__name__}.{key}")
            return value
        finally:
            self._left = outer

    def value(self, value: Any) -> Any:
        """A copy of one value the model holds (shared when the forward cannot change it)."""
        cls = type(value)
        if cls in _ATOMIC:
            return value
        if self._left is not None:
            self._left -= 1
            if self._left < 0:
                raise _OverBudget
        found = self._memo.get(id(value))
        if found is not None:
            return found
        if isinstance(value, torch.Tensor):
            return self._remember(value, self._tensor_of(value))
        if isinstance(value, nn.Module):
            return self.module(value)
        if isinstance(value, (type, enum.Enum)):
            return value
        if cls is torch.Generator:
            generator = torch.Generator(device=value.device)
            generator.set_state(value.get_state())
            return self._remember(value, generator)
        if isinstance(value, list):
            clone = [] if cls is list else self._emptied(value)
            self._remember(value, clone)
            clone.extend([self.value(item) for item in list(value)])
            return clone
        if isinstance(value, tuple):
            items = [self.value(item) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return self._remember(value, cls(*items) if hasattr(value, "_fields") else cls(items))
        if isinstance(value, dict):
            return self._copy_dict(value)
        if isinstance(value, deque):
            queue: deque[Any] = deque(maxlen=value.maxlen)
            self._remember(value, queue)
            queue.extend([self.value(item) for item in list(value)])
            return queue
        if isinstance(value, set):
            items_set: set[Any] = set()
            self._remember(value, items_set)
            items_set.update(self.value(item) for item in list(value))
            return items_set
        if isinstance(value, types.FunctionType):
            return self._function(value)
        if isinstance(value, types.MethodType):
            func, owner = self.value(value.__func__), self.value(value.__self__)
            if func is value.__func__ and owner is value.__self__:
                return value
            return self._remember(value, types.MethodType(func, owner))
        if isinstance(value, functools.partial):
            func, args, keywords = self.value(value.func), self.value(value.args), self.value(value.keywords)
            return self._remember(value, functools.partial(func, *args, **keywords))
        if cls is weakref.ReferenceType:  # a reference to a module or tensor (a tied weight's owner): to its copy
            target = value()
            if isinstance(target, (nn.Module, torch.Tensor)):  # kept alive by the copy (its modules, its fakes)
                return self._remember(value, weakref.ref(self.value(target)))
            return value  # dead, or a plain object: shared
        if cls is LRU_CACHE:  # a cache the module holds: the copy gets an empty one of its own, never the model's
            parameters = value.cache_parameters()
            cache = functools.lru_cache(maxsize=parameters["maxsize"], typed=parameters["typed"])
            return self._remember(value, cache(self.value(value.__wrapped__)))
        if callable(value) and not hasattr(value, "__dict__"):
            return value  # builtins, ops, C functions: nothing the forward can change
        return self._object(value)

    def _remember(self, original: Any, clone: Any) -> Any:
        self._memo[id(original)] = clone
        self._alive.append(original)
        return clone

    @staticmethod
    def _emptied(value: Any) -> Any:
        """An empty container of ``value``'s own (sub)class, its other attributes shallow-copied."""
        clone = copy.copy(value)
        clone.clear()
        return clone

    def _copy_dict(self, value: dict[Any, Any]) -> dict[Any, Any]:
        cls = type(value)
        if cls is dict or cls is OrderedDict:
            clone: dict[Any, Any] = cls()
        elif cls is defaultdict:
            clone = defaultdict(value.default_factory)  # type: ignore[attr-defined]
        else:
            try:
                clone = self._emptied(value)
            except Exception:  # a mapping type we cannot rebuild: shared
                return self._remember(value, value)
        self._remember(value, clone)
        for key, item in list(value.items()):
            clone[key] = self.value(item)
        return clone

    def _function(self, function: types.FunctionType, with_globals: bool = False) -> types.FunctionType:
        """The function itself, or (when its closure holds something copied) a new function over
        new cells with the copied contents; defaults copied likewise. ``with_globals`` (a module's
        instance-level forward, e.g. ``net.forward = lambda x: orig(x)`` at a script's top level):
        the globals its code reads are copied too, into a private copy of its globals."""
        scope = self._globals_of(function) if with_globals else function.__globals__
        cells = function.__closure__ or ()
        if not cells and not function.__defaults__ and not function.__kwdefaults__ and scope is function.__globals__:
            return function
        new_cells = tuple(types.CellType() for _ in cells)
        made = types.FunctionType(function.__code__, scope, function.__name__, None, new_cells)
        self._remember(function, made)
        changed = False
        for old, new in zip(cells, new_cells, strict=True):
            try:
                content = old.cell_contents
            except ValueError:  # an empty cell
                continue
            new.cell_contents = self.value(content)
            changed = changed or new.cell_contents is not content
        defaults = self.value(function.__defaults__) if function.__defaults__ else function.__defaults__
        kwdefaults = self.value(function.__kwdefaults__) if function.__kwdefaults__ else function.__kwdefaults__
        changed = changed or defaults is not function.__defaults__ or kwdefaults is not function.__kwdefaults__
        if not changed and scope is function.__globals__:
            self._memo[id(function)] = function
            return function
        made.__defaults__, made.__kwdefaults__ = defaults, kwdefaults
        made.__qualname__, made.__module__, made.__doc__ = function.__qualname__, function.__module__, function.__doc__
        made.__dict__.update(function.__dict__)
        return made

    def _globals_of(self, function: types.FunctionType) -> dict[str, Any]:
        """``function``'s globals, or a shallow copy of them in which the names its code reads are copied."""
        scope = function.__globals__
        replaced = {}
        for name in _names_read(function.__code__):
            if name in scope:
                value = scope[name]
                copied = self.value(value)
                if copied is not value:
                    replaced[name] = copied
        if not replaced:
            return scope
        made = dict(scope)
        made.update(replaced)
        return made

    def _object(self, value: Any) -> Any:
        """A plain object: a shallow copy whose attributes are copied in turn; an object that cannot
        be copied (locks, handles, C objects) is shared."""
        try:
            clone = copy.copy(value)
        except Exception:
            return self._remember(value, value)
        self._remember(value, clone)
        state = getattr(clone, "__dict__", None)
        if isinstance(state, dict) and clone is not value:
            for key, item in list(state.items()):
                state[key] = self.value(item)
        return clone


def _names_read(code: types.CodeType) -> set[str]:
    """Global (and attribute) names a code object and the code nested in it read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_read(const)
    return names


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
        fake = fake_tensor(fake_mode, meta, tensor.device)
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
