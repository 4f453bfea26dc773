"""Deep snapshots of a model and of the process's global torch state, and a readable diff of two.

A snapshot is a flat mapping from a readable path (``model.fc.weight``, ``model.state[0]``,
``torch.get_rng_state()``) to a comparable fingerprint. Objects are compared by identity (the
snapshot holds a reference, so an id cannot be reused by a replacement), tensors by identity,
version counter, metadata, gradient and values (a clone taken at snapshot time), scalars by value.
"""

from __future__ import annotations

import collections
import enum
import gc
import hashlib
import logging
import math
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx._symbolic_trace as fx_trace
import torch.overrides
import torch.utils._python_dispatch as python_dispatch
import torchvision.models.swin_transformer as swin_transformer
from torch import fx, nn

__all__ = [
    "LOGGERS",
    "Digest",
    "Same",
    "Snapshot",
    "TensorState",
    "assert_unchanged",
    "describe_changes",
    "differences",
    "restore_globals",
    "snapshot",
    "snapshot_globals",
    "snapshot_model",
]

LOGGERS = ("torch._subclasses.fake_tensor", "torch.fx")
"""Loggers whose configuration an analysis might touch (to quiet fake-tensor or fx noise)."""

MAX_DEPTH = 40
"""Nesting depth past which objects are compared by identity only (cycles are cut before that)."""

_SCALARS = (bool, int, float, complex, str, bytes, type(None), type(Ellipsis))
_VALUES = (torch.dtype, torch.device, torch.layout, torch.memory_format, enum.Enum)
"""Immutable objects compared by value (their repr)."""
_OPAQUE = (
    type,
    types.ModuleType,
    types.BuiltinFunctionType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.CodeType,
    types.FrameType,
    threading.Thread,
    fx.Proxy,
    fx.Node,
    fx.Graph,
    fx.Tracer,
)
"""Objects compared by identity only (not walked into). Python functions are walked into their closure
cells (not their globals), bound methods into ``__self__`` and ``__func__``."""


class Same:
    """Compares equal only to a ``Same`` of the very same object; holds a reference to it."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __repr__(self) -> str:
        return f"<{_describe(self.obj)} at {id(self.obj):#x}>"


def _describe(obj: Any) -> str:
    kind = type(obj).__name__
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return f"{kind} {getattr(obj, '__qualname__', '?')}"
    return kind  # never getattr on arbitrary objects: an fx Proxy answers with a Proxy


@dataclass(frozen=True, eq=False)
class TensorState:
    """A tensor's identity, metadata, version counter, gradient and values (None for meta/fake)."""

    tensor: Same
    type: str
    shape: tuple[int, ...]
    stride: tuple[int, ...] | None
    dtype: torch.dtype
    device: str
    requires_grad: bool
    version: int | None
    grad: TensorState | None
    values: torch.Tensor | None = field(repr=False)

    @classmethod
    def of(cls, tensor: torch.Tensor) -> TensorState:
        try:
            version: int | None = tensor._version
        except (RuntimeError, AttributeError):  # inference tensors have no version counter
            version = None
        try:
            stride: tuple[int, ...] | None = tuple(tensor.stride())
        except (RuntimeError, NotImplementedError):  # sparse and other strideless layouts
            stride = None
        values = None
        if _readable(tensor):
            with torch.no_grad():
                values = tensor.detach().clone()
        grad = tensor.grad if tensor.is_leaf else None
        return cls(
            tensor=Same(tensor),
            type=type(tensor).__name__,
            shape=tuple(tensor.shape),
            stride=stride,
            dtype=tensor.dtype,
            device=str(tensor.device),
            requires_grad=tensor.requires_grad,
            version=version,
            grad=None if grad is None else cls.of(grad),
            values=values,
        )

    def _meta(self) -> tuple[Any, ...]:
        return (self.tensor, self.type, self.shape, self.stride, self.dtype, self.device, self.requires_grad)

    def differences(self, other: TensorState) -> list[str]:
        """What differs from ``other``, in words (empty when equal)."""
        found = []
        for name in ("tensor", "type", "shape", "stride", "dtype", "device", "requires_grad", "version", "grad"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                found.append(f"{name} {mine!r} -> {theirs!r}")
        if not _same_values(self.values, other.values):
            found.append(f"values {_summary(self.values)} -> {_summary(other.values)}")
        return found

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorState) and not self.differences(other)

    def __hash__(self) -> int:
        return hash(self._meta())

    def __repr__(self) -> str:
        version = f", v{self.version}" if self.version is not None else ""
        return f"<{self.type} {list(self.shape)} {self.dtype} {self.device}{version} at {id(self.tensor.obj):#x}>"


def _readable(tensor: torch.Tensor) -> bool:
    """Whether the tensor has real values to clone (not meta, fake, or another subclass)."""
    return (
        type(tensor) in (torch.Tensor, nn.Parameter) and tensor.device.type != "meta" and tensor.layout == torch.strided
    )


def _same_values(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    return a.is_floating_point() and bool(torch.isclose(a, b, rtol=0, atol=0, equal_nan=True).all())


def _summary(values: torch.Tensor | None) -> str:
    if values is None:
        return "(no values)"
    flat = values.flatten()
    shown = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in flat[:4].tolist())
    return f"[{shown}{', …' if flat.numel() > 4 else ''}]"


@dataclass(frozen=True)
class Snapshot:
    """Fingerprints by path (see the module docstring)."""

    entries: dict[str, Any]

    def __or__(self, other: Snapshot) -> Snapshot:
        return Snapshot({**self.entries, **other.entries})


# -- the model ----------------------------------------------------------------------------


def snapshot_model(model: Any, name: str = "model") -> Snapshot:
    """Every parameter, buffer, flag, hook and ``__dict__`` entry of ``model`` and its sub-modules,
    and every tensor, counter and object reachable from them through containers and plain objects."""
    entries: dict[str, Any] = {}
    _Walker(entries).walk(model, name, 0)
    return Snapshot(entries)


class _Walker:
    def __init__(self, entries: dict[str, Any]) -> None:
        self.entries = entries
        self.seen: dict[int, str] = {}
        self.keep: list[Any] = []  # objects seen stay alive, so ids stay unique during the walk

    def walk(self, value: Any, path: str, depth: int) -> None:
        if isinstance(value, _SCALARS):
            self.entries[path] = (type(value).__name__, value)
            return
        if isinstance(value, _VALUES):
            self.entries[path] = (type(value).__name__, repr(value))
            return
        if isinstance(value, _OPAQUE) or depth > MAX_DEPTH:
            self.entries[path] = Same(value)
            return
        first = self.seen.get(id(value))
        if first is not None:  # shared or cyclic: the same object as at the first path
            self.entries[path] = ("same object as", first, Same(value))
            return
        self.seen[id(value)] = path
        self.keep.append(value)
        if isinstance(value, torch.Tensor):
            self.entries[path] = TensorState.of(value)
        elif isinstance(value, nn.Module):
            self._module(value, path, depth)
        elif isinstance(value, types.FunctionType):
            self.entries[path] = Same(value)
            for name, cell in zip(value.__code__.co_freevars, value.__closure__ or (), strict=True):
                try:
                    content = cell.cell_contents
                except ValueError:  # a cell not yet bound
                    content = "<empty cell>"
                self.walk(content, f"{path}.<closure {name}>", depth + 1)
        elif isinstance(value, types.MethodType):
            self.entries[path] = Same(value)
            self.walk(value.__self__, f"{path}.__self__", depth + 1)
            self.walk(value.__func__, f"{path}.__func__", depth + 1)
        elif isinstance(value, (dict, collections.OrderedDict)):
            self.entries[path] = (type(value).__name__, Same(value), tuple(_key(key) for key in value))
            for key, item in value.items():
                self.walk(item, f"{path}[{_key(key)}]", depth + 1)
        elif isinstance(value, (list, tuple, collections.deque)):
            self.entries[path] = (type(value).__name__, Same(value), len(value))
            for index, item in enumerate(value):
                self.walk(item, f"{path}[{index}]", depth + 1)
        elif isinstance(value, (set, frozenset)):
            items = sorted(value, key=_sort_key)
            self.entries[path] = (type(value).__name__, Same(value), tuple(_sort_key(item) for item in items))
            for index, item in enumerate(items):
                self.walk(item, f"{path}{{{index}}}", depth + 1)
        else:
            self._object(value, path, depth)

    def _module(self, module: nn.Module, path: str, depth: int) -> None:
        state = vars(module)
        self.entries[path] = ("module", Same(module), Same(type(module)), tuple(state))
        for key, value in state.items():
            if key in ("_parameters", "_buffers", "_modules") and type(value) in (dict, collections.OrderedDict):
                self.entries[f"{path}.<{key}>"] = (Same(value), tuple(value))
                for name, item in value.items():
                    self.walk(item, f"{path}.{name}", depth + 1)
            else:
                self.walk(value, f"{path}.{key}", depth + 1)

    def _object(self, obj: Any, path: str, depth: int) -> None:
        state = _attributes(obj)
        self.entries[path] = (type(obj).__name__, Same(obj), tuple(state) if state is not None else None)
        for key, value in (state or {}).items():
            self.walk(value, f"{path}.{key}", depth + 1)


def _attributes(obj: Any) -> dict[str, Any] | None:
    """An object's ``__dict__`` and ``__slots__`` values (None when it has neither)."""
    found: dict[str, Any] = {}
    has_state = False
    try:
        found.update(vars(obj))
        has_state = True
    except TypeError:
        pass
    for cls in type(obj).__mro__:
        slots = vars(cls).get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            has_state = True
            try:
                found[slot] = getattr(obj, slot)
            except AttributeError:
                found[slot] = "<unset slot>"
    return found if has_state else None


def _key(key: Any) -> str:
    return repr(key) if isinstance(key, _SCALARS) else f"<{type(key).__name__} at {id(key):#x}>"


def _sort_key(item: Any) -> tuple[str, str]:
    return (type(item).__name__, repr(item) if isinstance(item, _SCALARS) else f"{id(item):020d}")


# -- the process ----------------------------------------------------------------------------

_PATCHABLE: tuple[tuple[Any, str, str], ...] = (
    (nn.Module, "__call__", "nn.Module.__call__"),
    (nn.Module, "__getattr__", "nn.Module.__getattr__"),
    (nn.Module, "__setattr__", "nn.Module.__setattr__"),
    (torch.Tensor, "__getitem__", "torch.Tensor.__getitem__"),
    (math, "sqrt", "math.sqrt"),
)
"""(owner, attribute, entry) of the functions fx's patcher (or an analysis) may replace process-wide."""

_SWIN = "torchvision.models.swin_transformer."
"""Entry prefix of the globals of a module whose functions fx wraps (``torch.fx.wrap``) while tracing."""

_MISSING = object()


def snapshot_globals() -> Snapshot:
    """The process-wide state an analysis could leave changed: patched functions and globals, fx
    tracing flags, torch modes, grad/inference mode, defaults, the RNG, the garbage collector,
    live threads, and the configuration of the loggers torch's tracing uses."""
    entries: dict[str, Any] = {entry: Same(getattr(owner, name)) for owner, name, entry in _PATCHABLE}
    entries.update(
        {
            "torch.fx._symbolic_trace.is_fx_tracing()": _is_fx_tracing(),
            "torch.fx._symbolic_trace.CURRENT_PATCHER": Same(fx_trace.CURRENT_PATCHER),
            "fx wrapped functions": tuple(sorted(map(repr, getattr(fx_trace, "_wrapped_fns_to_patch", {})))),
            "torch function modes": tuple(map(Same, torch.overrides._get_current_function_mode_stack())),
            "dispatch modes": tuple(map(Same, python_dispatch._get_current_dispatch_mode_stack())),
            "torch.is_grad_enabled()": torch.is_grad_enabled(),
            "torch.is_inference_mode_enabled()": torch.is_inference_mode_enabled(),
            "torch.get_default_dtype()": torch.get_default_dtype(),
            "torch.get_default_device()": str(torch.get_default_device()),
            "torch.get_rng_state()": Digest(torch.get_rng_state().numpy().tobytes()),
            "torch.get_num_threads()": torch.get_num_threads(),
            "torch.are_deterministic_algorithms_enabled()": torch.are_deterministic_algorithms_enabled(),
            "torch.jit tracing state": Same(torch._C._get_tracing_state()),
            "gc.isenabled()": gc.isenabled(),
            "threading.active_count()": threading.active_count(),
        }
    )
    for name, value in vars(swin_transformer).items():
        entries[_SWIN + name] = Same(value)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        entries[f"logger {name}"] = (
            logger.level,
            logger.disabled,
            logger.propagate,
            tuple(map(Same, logger.filters)),
            tuple((Same(handler), handler.level, tuple(map(Same, handler.filters))) for handler in logger.handlers),
        )
    return Snapshot(entries)


def _is_fx_tracing() -> bool:
    """``is_fx_tracing()`` without its one-time deprecation warning (torch >= 2.6 has the bare getter)."""
    getter = getattr(fx_trace, "_get_is_fx_tracing", None)
    return getter() if getter is not None else fx_trace.is_fx_tracing()


@dataclass(frozen=True)
class Digest:
    """Bytes (an RNG state) compared by value, shown by length and hash."""

    data: bytes

    def __repr__(self) -> str:
        return f"<{len(self.data)} bytes, sha1 {hashlib.sha1(self.data).hexdigest()[:12]}>"


def restore_globals(before: Snapshot) -> list[str]:
    """Put back what differs from ``before`` (a :func:`snapshot_globals`) where that can be done, so a
    failing test does not break the tests after it: patched functions and globals, fx's patcher and
    tracing flag, leaked torch modes, grad mode, defaults, the RNG, the collector, logger settings.
    Returns the entries put back (live threads and inference mode cannot be)."""
    now = snapshot_globals().entries
    old = before.entries
    changed = [path for path in {**old, **now} if not _equal(old.get(path, _MISSING), now.get(path, _MISSING))]
    for owner, name, entry in _PATCHABLE:
        if entry in changed:
            _put_back(owner, name, old[entry].obj)
    for path in changed:
        if path.startswith(_SWIN):
            name = path.removeprefix(_SWIN)
            if path in old:
                setattr(swin_transformer, name, old[path].obj)
            else:
                delattr(swin_transformer, name)
    simple: dict[str, Callable[[Any], None]] = {
        "torch.fx._symbolic_trace.is_fx_tracing()": _set_fx_tracing,
        "torch.fx._symbolic_trace.CURRENT_PATCHER": lambda value: setattr(fx_trace, "CURRENT_PATCHER", value.obj),
        "torch function modes": lambda value: _pop_modes(
            len(value), torch.overrides._get_current_function_mode_stack, torch._C._pop_torch_function_stack
        ),
        "dispatch modes": lambda value: _pop_modes(
            len(value), python_dispatch._get_current_dispatch_mode_stack, python_dispatch._pop_mode
        ),
        "torch.is_grad_enabled()": torch.set_grad_enabled,
        "torch.get_default_dtype()": torch.set_default_dtype,
        "torch.get_default_device()": lambda value: torch.set_default_device(None if value == "cpu" else value),
        "torch.get_rng_state()": lambda value: torch.set_rng_state(
            torch.frombuffer(bytearray(value.data), dtype=torch.uint8)
        ),
        "torch.get_num_threads()": torch.set_num_threads,
        "torch.are_deterministic_algorithms_enabled()": torch.use_deterministic_algorithms,
        "gc.isenabled()": lambda value: gc.enable() if value else gc.disable(),
    }
    for name in LOGGERS:
        simple[f"logger {name}"] = lambda value, name=name: _configure(logging.getLogger(name), value)
    for path, restore in simple.items():
        if path in changed:
            restore(old[path])
    return changed


def _put_back(owner: Any, name: str, original: Any) -> None:
    if isinstance(owner, type) and name in vars(owner) and vars(owner)[name] is not original:
        delattr(owner, name)  # a patch in the class's own dict: dropped, the inherited one shows again
    if getattr(owner, name, _MISSING) is not original:
        setattr(owner, name, original)


def _set_fx_tracing(value: bool) -> None:
    fx_trace._is_fx_tracing_tls.flag = value


def _pop_modes(length: int, stack: Callable[[], list[Any]], pop: Callable[[], Any]) -> None:
    while len(stack()) > length:
        pop()


def _configure(logger: logging.Logger, value: tuple[Any, ...]) -> None:
    level, disabled, propagate, filters, handlers = value
    logger.setLevel(level)
    logger.disabled, logger.propagate = disabled, propagate
    logger.filters = [item.obj for item in filters]
    logger.handlers = [handler.obj for handler, _, _ in handlers]
    for handler, handler_level, handler_filters in handlers:
        handler.obj.setLevel(handler_level)
        handler.obj.filters = [item.obj for item in handler_filters]


def snapshot(model: Any = None) -> Snapshot:
    """:func:`snapshot_globals`, with :func:`snapshot_model` of ``model`` when given."""
    found = snapshot_globals()
    return found if model is None else snapshot_model(model) | found


# -- the diff -----------------------------------------------------------------------------


def differences(before: Snapshot, after: Snapshot) -> Iterator[str]:
    """One line per path added, removed or changed, in the order of ``before`` then ``after``."""
    for path, old in before.entries.items():
        if path not in after.entries:
            yield f"removed  {path}: was {_show(old)}"
            continue
        new = after.entries[path]
        if isinstance(old, TensorState) and isinstance(new, TensorState):
            changes = old.differences(new)
            if changes:
                yield f"changed  {path}: " + "; ".join(changes)
        elif not _equal(old, new):
            yield f"changed  {path}: {_show(old)} -> {_show(new)}"
    for path, new in after.entries.items():
        if path not in before.entries:
            yield f"added    {path}: {_show(new)}"


def _equal(old: Any, new: Any) -> bool:
    try:
        return bool(old == new)
    except (RuntimeError, TypeError):  # tensors somewhere inside: compare the objects
        return old is new


def _show(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_changes(before: Snapshot, after: Snapshot, what: str = "state", limit: int = 40) -> str:
    """Every difference between the two snapshots, one per line under a heading ("" when none)."""
    found = list(differences(before, after))
    if not found:
        return ""
    more = f"\n  … and {len(found) - limit} more" if len(found) > limit else ""
    return f"{what} changed ({len(found)} differences):\n  " + "\n  ".join(found[:limit]) + more


def assert_unchanged(before: Snapshot, after: Snapshot, what: str = "state", limit: int = 40) -> None:
    """Raise an ``AssertionError`` listing every difference between the two snapshots."""
    text = describe_changes(before, after, what, limit)
    if text:
        raise AssertionError(text)
