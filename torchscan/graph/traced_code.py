"""Traced code's view of the functions fx would patch process-wide, through private copies of globals.

fx's ``Tracer.trace`` replaces ``fx.wrap``-ed functions and ``math``'s in module globals (and in
``math`` itself) for every thread while it traces, so a call given a proxy becomes one node. Here the
tracer runs functions over *copies* of their globals in which those names are wrapped
(:class:`TracedCode`): the same nodes, and no other code ever sees a change.
"""

from __future__ import annotations

import builtins
import functools
import math
import sys
import types
from collections.abc import Callable, Collection
from typing import Any

import torch
from torch import fx
from torch.fx import _symbolic_trace
from torch.utils._pytree import tree_leaves, tree_map

from torchscan.ops import AUTOWRAP_FUNCTIONS

__all__ = ["TracedCode", "first_proxy"]


class TracedCode:
    """Functions as the tracer runs them: the same code over a copy of their module's globals in which
    the functions fx would patch process-wide (``fx.wrap``-ed ones the op registry knows, ``math``'s,
    :data:`AUTOWRAP_FUNCTIONS`) are wrapped to record one ``call_function`` node when given a proxy
    (and ``torch``'s factories of separate sizes take a proxy among them: :class:`_TorchShim`),
    and the functions it imports from other modules are seen the same way (fx patches ``math`` for
    every module: a helper elsewhere that calls ``math.ceil`` on a size must record it too), and so are the
    functions a closure holds (a decorator's wrapper calls the forward it wraps through its closure). Functions
    whose globals and closures reach none of them are used as they are."""

    def __init__(self, leaf: Callable[[Any], bool] | None = None) -> None:
        self._leaf = leaf
        """Whether an ``fx.wrap``-ed function stays one node (None: every one does); one that does not is
        traced through, as any other function (its ops counted one by one)."""
        self._wrap_ids = {id(function) for function in AUTOWRAP_FUNCTIONS}
        self._wrap_modules: dict[int, types.ModuleType | None] = {
            id(module): None
            for module in (sys.modules.get(function.__module__) for function in AUTOWRAP_FUNCTIONS)
            if module is not None
        }
        """The modules holding :data:`AUTOWRAP_FUNCTIONS`, by id, each with its view (:meth:`_module_view`, made at
        first use): ``fa.flex_attention(...)`` on a module imported as ``fa`` records one call too."""
        self._wrap_ids.update(id(value) for name, value in vars(math).items() if callable(value) and name[0] != "_")
        self._globals: dict[tuple[int, int], dict[str, Any] | None] = {}
        self._functions: dict[tuple[int, int, bool], types.FunctionType] = {}
        self._originals: dict[int, types.FunctionType] = {}
        """The function each copy was made from, by the copy's id (nodes name the original)."""
        self._torch: types.ModuleType | None = None
        """``torch`` as traced code sees it (:func:`_torch_shim`), made at the first function that needs it."""
        self._builtins: dict[str, Any] = {}
        """The builtins of traced code that sees :attr:`_torch` (:func:`_importing`)."""
        self._methods: dict[type, list[tuple[str, types.FunctionType]]] = {}
        """:meth:`methods` by class."""
        self._sized: dict[tuple[types.CodeType, bool], bool] = {}
        """Whether a function sees ``torch`` as :class:`_TorchShim`, by its code object and whether it is the
        model's code (:func:`_calls_sized`) or a helper of another module (whether it names :data:`_CHECKS`)."""

    def methods(self, cls: type, stop: Collection[type]) -> list[tuple[str, types.FunctionType]]:
        """The plain methods of ``cls`` (its MRO up to the first class in ``stop``; ``forward`` and dunders aside)
        that traced code must see through this table, with the functions to bind: a module's ``self.helper()``
        reaching an ``fx.wrap``-ed function or ``math``. Made once per class for every trace this table serves
        (a trace made again after a failed one, or with every block traced)."""
        found = self._methods.get(cls)
        if found is None:
            found, seen = [], set()
            for owner in cls.__mro__:
                if owner in stop:
                    break
                for name, value in vars(owner).items():
                    if name in seen:
                        continue
                    seen.add(name)
                    if isinstance(value, types.FunctionType) and name != "forward" and not name.startswith("__"):
                        made = self.function(value)
                        if made is not value:
                            found.append((name, made))
            self._methods[cls] = found
        return found

    def original(self, function: Any) -> Any:
        """The function a copy made here was made from (any other object as is)."""
        return self._originals.get(id(function), function)

    def function(self, function: Any, reach: int = 1) -> Any:
        """``function`` as traced code runs it; ``reach``: how many modules away its globals' functions
        are followed (1: the helpers a module imports from another, as timm's ``pad_same``; the cost of
        following every module a library reaches would be paid by every analysis)."""
        if not isinstance(function, types.FunctionType):
            return function
        # helpers of other modules (``reach`` 0) see torch as it is unless they name its checks (a library's
        # assertion helper, ``transformers``' ``torch_compilable_check``): most never run in a forward
        code = function.__code__
        sized = self._sized.get((code, reach > 0))
        if sized is None:
            sized = self._sized[(code, reach > 0)] = _calls_sized(function) if reach else _names(code, _CHECK_NAMES)
        key = (id(function), reach, sized)
        made = self._functions.get(key)
        if made is None:
            self._functions[key] = function  # while its module is looked at (cycles): as is
            scope = self._scope(function.__globals__, reach, sized)
            closure = self._closure(function.__closure__, reach) if function.__closure__ else None
            if scope is None and closure is None:
                made = function
            else:
                made = self._rebound(function, function.__globals__ if scope is None else scope, closure)
            self._functions[key] = made
        return made

    def _closure(self, closure: tuple[types.CellType, ...], reach: int) -> tuple[types.CellType, ...] | None:
        """``closure`` with each cell holding a function replaced by a new cell holding that function as traced
        code runs it (a decorator's wrapper calls the forward it wraps through its closure: Hugging Face's
        ``can_return_tuple``), or None where no cell's function changes. Other cells are kept as they are
        (shared with the original: a ``nonlocal`` counter stays one counter)."""
        cells: list[types.CellType] | None = None
        for index, cell in enumerate(closure):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell (a name bound later)
                continue
            if type(value) is not types.FunctionType:
                continue
            # a function recorded as one call, held by a closure (imported inside the enclosing function)
            seen = _proxy_aware(value) if id(value) in self._wrap_ids else self.function(value, reach)
            if seen is not value:
                if cells is None:
                    cells = list(closure)
                cells[index] = types.CellType(seen)
        return None if cells is None else tuple(cells)

    def _scope(self, scope: dict[str, Any], reach: int, sized: bool = False) -> dict[str, Any] | None:
        """``scope`` (a module's globals) as traced code sees it, or None where nothing in it is replaced
        (``sized``: the function run over it, or a function of its module it calls, names one of the factories
        of :class:`_TorchShim`, which then stands for ``torch``; only then, as a copy of a module's globals and
        of its functions costs ~0.1–0.5 ms and library modules name ``torch.zeros`` for their own uses)."""
        key = (id(scope), reach, sized)
        if key in self._globals:
            return self._globals[key]
        self._globals[key] = None  # while it is looked at (a cycle back to it sees it as is)
        owner = id(scope)
        wrapped = {name for where, name in _symbolic_trace._wrapped_fns_to_patch if where == owner}  # fx.wrap's
        wrap_ids, leaf = self._wrap_ids, self._leaf
        replaced: dict[str, Any] = {}
        own: list[tuple[str, types.FunctionType]] = []  # the module's own functions
        torch_name = None  # the name the module imports torch as
        for name, value in list(scope.items()):  # a module's globals: hundreds of names, most of them skipped
            if type(value) is types.FunctionType:  # (FunctionType cannot be subclassed)
                if sized and value in _CONDITIONALS:  # ``from torch import cond``
                    replaced[name] = _traced_cond(value)
                elif id(value) in wrap_ids or (name in wrapped and (leaf is None or leaf(value))):
                    replaced[name] = _proxy_aware(value)
                elif value.__globals__ is scope:
                    own.append((name, value))
                elif reach and (seen := self.function(value, reach - 1)) is not value:
                    replaced[name] = seen
            elif value is math:
                replaced[name] = _math_shim()
            elif value is torch:
                torch_name = name
            elif type(value) is types.ModuleType and id(value) in self._wrap_modules:
                replaced[name] = self._module_view(value)
            elif id(value) in wrap_ids and callable(value):
                replaced[name] = _proxy_aware(value)
            elif sized and type(value) is types.BuiltinFunctionType:  # ``from torch import zeros, tensor``
                if id(value) in _SIZED_IDS:
                    replaced[name] = _sizes_packed(value)
                elif id(value) in _FROM_DATA_IDS:
                    replaced[name] = _numbers_read(value)
        if sized:  # torch as a global, and as the function imports it (``import torch`` in its body)
            if self._torch is None:
                self._torch = _torch_shim()
                self._builtins = _importing(self._torch)
            replaced["__builtins__"] = self._builtins
            if torch_name is not None:
                replaced[torch_name] = self._torch
        made: dict[str, Any] | None = None
        if replaced:
            made = dict(scope)
            made.update(replaced)
            for name, value in own:  # the module's own helpers see the same globals
                if name not in replaced:
                    closure = self._closure(value.__closure__, reach) if value.__closure__ else None
                    made[name] = self._functions[(id(value), reach, sized)] = self._rebound(value, made, closure)
        self._globals[key] = made
        return made

    def _module_view(self, module: types.ModuleType) -> types.ModuleType:
        """A module object standing for ``module`` in traced code's globals: its names, the functions of
        :data:`AUTOWRAP_FUNCTIONS` among them recorded as one call when given a proxy (made once per table)."""
        view = self._wrap_modules.get(id(module))
        if view is None:
            view = types.ModuleType(module.__name__, module.__doc__)
            vars(view).update(vars(module))
            for name, value in vars(module).items():
                if id(value) in self._wrap_ids and callable(value):
                    setattr(view, name, _proxy_aware(value))
            self._wrap_modules[id(module)] = view
        return view

    def _rebound(
        self,
        function: types.FunctionType,
        scope: dict[str, Any],
        closure: tuple[types.CellType, ...] | None = None,
    ) -> types.FunctionType:
        made = _with_globals(function, scope, closure)
        self._originals[id(made)] = function
        return made


@functools.cache
def _math_shim() -> types.SimpleNamespace:
    """``math`` as traced code sees it: each public function :func:`_proxy_aware` (one node when given a
    proxy, the function itself otherwise). Made once: it holds nothing of a trace or of a user's."""
    entries = vars(math).items()
    return types.SimpleNamespace(
        **{name: _proxy_aware(value) if callable(value) and name[0] != "_" else value for name, value in entries}
    )


_SIZED: tuple[Callable[..., Any], ...] = (torch.ones, torch.zeros, torch.empty, torch.rand, torch.randn)
"""torch's factories that take their size as separate ints too (``torch.zeros(b, c)``)."""

_FROM_DATA: tuple[Callable[..., Any], ...] = (torch.tensor, torch.as_tensor)
"""torch's factories of a tensor from Python data (``torch.tensor(num_channels)``)."""

_CHECKS: tuple[Callable[..., Any], ...] = (
    torch._check,
    torch._check_with,
    torch._check_tensor_all,
    torch._check_tensor_all_with,
)
"""torch's assertions (``torch._check(cond)``), which refuse a condition that is not a bool or a tensor."""

_CONDITIONALS: tuple[Callable[..., Any], ...] = tuple(
    function for function in (getattr(torch, "cond", None),) if function is not None
)
"""torch's data-dependent branch (``torch.cond(pred, true_fn, false_fn, operands)``), which compiles itself with
dynamo in eager code and refuses a proxy as its predicate."""

_SIZED_IDS = frozenset(id(function) for function in _SIZED)
_FROM_DATA_IDS = frozenset(id(function) for function in _FROM_DATA)
_CHECK_NAMES = frozenset(function.__name__ for function in _CHECKS)
_SIZED_NAMES = frozenset(function.__name__ for function in (*_SIZED, *_FROM_DATA, *_CONDITIONALS)) | _CHECK_NAMES


def _calls_sized(function: types.FunctionType) -> bool:
    """Whether ``function``, or a function of its own module it names (a helper it calls), names one of
    :data:`_SIZED` or :data:`_FROM_DATA` (as ``torch``'s attribute, or a global bound to one)."""
    code = function.__code__
    if _reads_sized(code):
        return True
    scope = function.__globals__
    for name in code.co_names:
        value = scope.get(name)
        kind = type(value)
        if kind is types.BuiltinFunctionType and (id(value) in _SIZED_IDS or id(value) in _FROM_DATA_IDS):
            return True  # ``from torch import zeros as blank``
        if kind is types.FunctionType and value.__globals__ is scope and _reads_sized(value.__code__):
            return True
    return False


def _names(code: types.CodeType, names: frozenset[str]) -> bool:
    """Whether a code object, or code nested in it, names one of ``names`` (a global or an attribute)."""
    if not names.isdisjoint(code.co_names):
        return True
    return any(type(const) is types.CodeType and _names(const, names) for const in code.co_consts)


def _reads_sized(code: types.CodeType) -> bool:
    """Whether a code object, or code nested in it, names one of :data:`_SIZED`, :data:`_FROM_DATA` or
    :data:`_CHECKS`."""
    return _names(code, _SIZED_NAMES)


class _TorchShim(types.ModuleType):
    """``torch`` as traced code sees it: torch's own namespace (a copy made per trace, anything else read
    from ``torch`` itself) with the factories of :data:`_FROM_DATA` given the numbers their data's proxies
    stand for (read as sizes are: ``torch.tensor(num_channels)``, where a proxy is no array), and those of
    :data:`_SIZED` given their sizes as one tuple when a proxy is among them (``torch.zeros(b, c)`` with
    ``b`` a traced size). torch's argument parser takes a proxy first among separate sizes for the ``size``
    sequence, and a proxy in ``torch.tensor``'s data for an array, and raises a ``TypeError`` before any
    ``__torch_function__`` can see it (so fx cannot trace ``torch.ones(n, n)``); given the tuple, the call
    reaches the proxy and records one node, ``torch.ones((n, n))``, which runs as the original does.

    Its assertions (:data:`_CHECKS`) take a condition computed from tensor data as holding: ``torch._check(n_tokens
    * d == features.numel())`` asserts what the data must be (image tokens matching image features), which a trace
    cannot decide and which no shape or count depends on — the analysis assumes a valid input, as it assumes the
    input's values are whatever they must be. A condition computed from sizes alone is decided (as an ``if`` on
    sizes is), so a check the input fails fails the trace. torch's own refuse a proxy (``cond must be a bool``)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)  # a name torch made after the copy (a submodule it loads lazily)


def _torch_shim() -> types.ModuleType:
    """A :class:`_TorchShim` of ``torch`` as it is now (one per trace: a name torch rebinds later is seen by
    the next)."""
    shim = _TorchShim(torch.__name__, torch.__doc__)
    vars(shim).update(vars(torch))
    vars(shim).update({function.__name__: _sizes_packed(function) for function in _SIZED})
    vars(shim).update({function.__name__: _numbers_read(function) for function in _FROM_DATA})
    vars(shim).update({function.__name__: _traced_holds(function) for function in _CHECKS})
    vars(shim).update({function.__name__: _traced_cond(function) for function in _CONDITIONALS})
    return shim


_CONDITIONS: dict[Callable[..., Any], int] = {torch._check: 0, torch._check_with: 1}
"""The position of the bool condition of the assertions of :data:`_CHECKS` that take one (the others take a
tensor of conditions: its data)."""


def _traced_holds(function: Callable[..., Any]) -> Callable[..., Any]:
    """An assertion of :data:`_CHECKS` that takes a condition of traced values as holding (nothing recorded),
    unless the condition is a bool computed from sizes alone (``torch._check(x.shape[1] == 3)``): the trace
    reads it as an ``if`` reads one (a guard, :meth:`~torchscan.graph.trace._Tracer.sized_bool`) and the
    assertion runs on it, failing where the forward fails."""
    position = _CONDITIONS.get(function)

    @functools.wraps(function)
    def check(*args: Any, **kwargs: Any) -> None:
        if first_proxy((args, kwargs)) is None:
            function(*args, **kwargs)
            return
        if position is None or position >= len(args) or not isinstance(args[position], fx.Proxy):
            return
        read = getattr(args[position].tracer, "sized_bool", None)
        condition = read(args[position]) if read is not None else None
        if condition is not None:
            function(*args[:position], condition, *args[position + 1 :], **kwargs)

    return check


def _traced_cond(function: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.cond`` as traced code runs it. A predicate the trace can decide picks its branch, which is traced
    as an ``if`` would be: a Python bool or number (torch's eager ``cond`` does the same), a condition computed from
    sizes (a guard, :meth:`~torchscan.graph.trace._Tracer.sized_bool`), a tensor holding values (a constant the
    forward made, read as the forward reads it). A predicate computed from tensor data (a buffer's, whose fake the
    trace holds, included) cannot be decided from shapes:
    both branches are traced, one after the other, and the call's result is the true branch's
    (:meth:`~torchscan.graph.trace._Tracer.both_branches`). torch's own ``cond`` would compile itself with dynamo
    (process-wide state the analysis must not touch) and refuses a proxy."""

    @functools.wraps(function)
    def cond(pred: Any, true_fn: Any, false_fn: Any, operands: Any = ()) -> Any:
        proxy = first_proxy((pred, operands))
        decided = _decided(pred)
        if decided is not None:
            return (true_fn if decided else false_fn)(*operands)
        if proxy is None or not callable(true_fn) or not callable(false_fn):  # nothing traced: torch's own
            return function(pred, true_fn, false_fn, operands)
        both = getattr(proxy.tracer, "both_branches", None)
        if both is None:
            return function(pred, true_fn, false_fn, operands)
        return both(true_fn, false_fn, operands)

    return cond


def _decided(pred: Any) -> bool | None:
    """The branch ``torch.cond`` takes where the trace knows it (:func:`_traced_cond`), else None."""
    if isinstance(pred, (bool, int, float)):
        return bool(pred)
    if isinstance(pred, fx.Proxy):
        read = getattr(pred.tracer, "sized_bool", None)
        return read(pred) if read is not None else None
    if isinstance(pred, torch.Tensor) and pred.numel() == 1 and _holds_data(pred):
        return bool(pred.item())
    return None


def _holds_data(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` holds values (no fake tensor, no ``meta`` tensor)."""
    return tensor.device.type != "meta" and not isinstance(tensor, torch._subclasses.fake_tensor.FakeTensor)


def _importing(shim: types.ModuleType) -> dict[str, Any]:
    """Python's builtins whose ``__import__`` gives ``shim`` for ``import torch`` (a helper importing torch in its
    body, as an optional dependency is imported), and anything else as Python's own does."""
    original = builtins.__import__

    def imported(
        name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> types.ModuleType:
        if name == "torch" and level == 0:
            return shim
        return original(name, globals, locals, fromlist, level)

    made = dict(vars(builtins))
    made["__import__"] = imported
    made["callable"] = _callable
    return made


def _callable(value: Any) -> bool:
    """Python's ``callable``, False for a proxy: it stands for a value of the trace (a tensor, a size), which
    eager code would not find callable (fx's ``Proxy`` defines ``__call__`` for every value)."""
    return not isinstance(value, fx.Proxy) and callable(value)


def _sizes_packed(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` given its separate sizes as one tuple where a proxy is among them."""

    @functools.wraps(function)
    def packed(*args: Any, **kwargs: Any) -> Any:
        if len(args) > 1 and any(isinstance(arg, fx.Proxy) for arg in args):
            return function(args, **kwargs)
        return function(*args, **kwargs)

    return packed


def _numbers_read(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (``torch.tensor``, ``torch.as_tensor``) given the numbers its data's proxies stand for, read
    by the tracer as a forward reads a size (a guard: the graph holds for inputs where they read the same)."""

    @functools.wraps(function)
    def made(data: Any, *args: Any, **kwargs: Any) -> Any:
        if first_proxy(data) is not None:
            data = tree_map(lambda value: value.tracer.number(value) if isinstance(value, fx.Proxy) else value, data)
        return function(data, *args, **kwargs)

    return made


def _with_globals(
    function: types.FunctionType, scope: dict[str, Any], closure: tuple[types.CellType, ...] | None = None
) -> types.FunctionType:
    """``function``'s code and defaults over the globals ``scope``, with its own closure or ``closure``."""
    cells = function.__closure__ if closure is None else closure
    made = types.FunctionType(function.__code__, scope, function.__name__, function.__defaults__, cells)
    made.__kwdefaults__ = function.__kwdefaults__
    made.__qualname__, made.__module__, made.__doc__ = function.__qualname__, function.__module__, function.__doc__
    made.__dict__.update(function.__dict__)
    return made


def _proxy_aware(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, recorded as one ``call_function`` node when an argument is a proxy (fx's wrap)."""

    @functools.wraps(function)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        proxy = first_proxy((args, kwargs))
        if proxy is None:
            return function(*args, **kwargs)
        made = proxy.tracer.create_proxy("call_function", function, args, kwargs)
        made.node.meta["is_wrapped"] = True
        return made

    return wrapped


def first_proxy(value: Any) -> fx.Proxy | None:
    """The first proxy among the leaves of a structure (arguments, a module's output)."""
    return next((leaf for leaf in tree_leaves(value) if isinstance(leaf, fx.Proxy)), None)
