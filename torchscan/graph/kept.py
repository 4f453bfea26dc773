"""What the model's own code may change in the process while a capture runs it, put back as found.

A forward may bind a global (``global CALLS; CALLS += 1``, a module-level cache replaced), an attribute of its class
(``type(self).calls += 1``) or a closure cell of a method (a decorator's ``nonlocal calls``), draw from Python's or
NumPy's global random generator (a layer skipped when ``random.random() < p``) or set one of torch's process-wide
settings (the default dtype, the thread count, deterministic algorithms, the matmul precision). The capture runs the
forward (traced, recorded or for real), so without care the analysis would leave these changes in the user's
process, and a block replayed from another's trace (:mod:`torchscan.graph.reuse`) would bake in the value the first
block read. :class:`KeptState` notes, before the capture, the globals of every function the model's classes define
(outside torch itself) and those functions' closure cells, the state of the global generators their forwards'
globals reach, and those settings; it tells which globals the capture bound, and puts everything back.

A forward may also fill a cache the model's code holds: an ``functools.lru_cache`` of positional codes
(Hugging Face's DETR, DINOv3, BEiT), a dict, list, set or deque held by a global, a class attribute or a
closure cell of one. Run on fake tensors or traced, it would leave there a fake tensor or a trace's proxy: a
later real forward of the user's model would get the fake from the cache (its output a fake tensor), and the
proxy would hold the analysis's graph alive. So those containers are noted item by item, and one that holds
afterwards something the analysis made (a fake tensor, a proxy, a module of its copy, or a tuple, list or dict
holding one, two levels down) is put back in place, as found; one that only gained real values (a size the
forward logged, a table built from constants) is left as the forward left it, as a real forward would, so that
another thread's changes to it are not undone. Before a further capture (a trace again without block reuse, a
recording after a failed trace) every container is put back, so that each capture starts from the state the
user's forward would. An ``lru_cache`` (bound to a global or a class attribute,
or held in a closure cell of one: a decorator's wrapper) that missed while the analysis ran may hold a value
the analysis made, and is emptied (its entries cannot be read one by one: the ones it held before go too,
with its statistics). A change deeper down (an item inside a container a container holds, an attribute of
an object a global holds) is not seen. torch's own generator is left alone, for the other threads' sake:
fake tensors draw nothing from it, and a random tensor the forward builds from constants alone
(``torch.rand(3)``, made for real by the trace) is drawn as the forward draws it.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import operator
import random
import sys
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensor

from torchscan.graph.clone import LRU_CACHE

__all__ = ["KeptState", "kept_as_found"]

_CONTAINERS = (dict, list, set, collections.deque)
"""Containers a cache is kept in (their subclasses too: ``OrderedDict``, ``defaultdict``), noted item by item."""


class KeptState:
    """The globals of the functions the classes of ``modules`` define (below ``nn.Module``, torch's own classes left
    out), those classes' own attributes, the containers and ``lru_cache`` objects the globals and the classes
    hold, the state of Python's ``random`` and NumPy's global generator where the globals of their ``forward``
    methods reach them (a decorated forward's own code: a library's decorators and helpers elsewhere that import
    ``random`` for other uses do not count), and torch's settings (:func:`_settings`), as they are now, and the
    closure cells of those classes' functions: :meth:`written` names the globals, class attributes and cells
    bound and the containers changed since, :meth:`restore` puts everything back. Like torch's ``fork_rng``,
    this restores process-wide state: another thread binding one of these globals or class attributes, drawing
    from a generator the model's code reaches or changing a setting while the analysis runs sees its change
    undone (a generator's draws repeat), and an ``lru_cache`` it fills meanwhile is emptied; its changes to a
    container are undone only where the analysis left one of its own values there too."""

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        modules = list(modules)
        scopes: dict[int, dict[str, Any]] = {}
        forwards: dict[int, dict[str, Any]] = {}  # the globals of the forwards: where a draw would be made
        owners: set[type] = set()  # classes read already (a library's base class is in every model class's MRO)
        cells: dict[int, tuple[str, types.CellType]] = {}  # the closure cells of their functions (decorators')
        for cls in {type(module) for module in modules}:
            for owner in cls.__mro__:
                where = str(getattr(owner, "__module__", ""))
                if owner in owners or owner is nn.Module or where.startswith("torch.") or where == "builtins":
                    continue
                owners.add(owner)
                for name, value in vars(owner).items():
                    function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                    if type(function) is not types.FunctionType:
                        continue
                    scopes.setdefault(id(function.__globals__), function.__globals__)
                    for variable, cell in zip(function.__code__.co_freevars, function.__closure__ or (), strict=True):
                        cells.setdefault(id(cell), (f"{owner.__qualname__}.{name} (closure: {variable})", cell))
                    inner = _unwrapped(function) if "__wrapped__" in function.__dict__ else function
                    if inner is not function:
                        scopes.setdefault(id(inner.__globals__), inner.__globals__)
                    if name == "forward":
                        forwards.setdefault(id(inner.__globals__), inner.__globals__)
        self._found = [(scope, tuple(scope), tuple(scope.values())) for scope in scopes.values()]
        self._classes = [(owner, tuple(vars(owner)), tuple(vars(owner).values())) for owner in owners]
        self._cells = [(name, cell, _content(cell)) for name, cell in cells.values()]
        named = [(str(scope.get("__name__", "?")), scope) for scope in scopes.values()]
        named += [(owner.__qualname__, vars(owner)) for owner in owners]
        self._caches, self._containers = _caches_and_containers(named)
        self._modules = {id(module) for module in modules} if self._containers else set()
        self._pinned = modules if self._containers else []  # their ids stay theirs while this state lives
        python, numpy = _generators(forwards.values())
        self._python = random.getstate() if python else None
        self._numpy = numpy.get_state() if numpy is not None else None
        self._numpy_generator = numpy
        self._settings = _settings()

    def written(self) -> list[str]:
        """``module.name`` of each global and ``Class.name`` of each class attribute bound, rebound or deleted
        since, and the name of each container held by a global or a class attribute whose items changed since
        (sorted)."""
        names = [name for name, container, items in self._containers if not _holds(container, items)]
        for owner, keys, values in self._classes:
            names += [f"{owner.__qualname__}.{name}" for name in _rebound(vars(owner), keys, values)]
        for scope, keys, values in self._found:
            names += [f"{scope.get('__name__', '?')}.{name}" for name in _rebound(scope, keys, values)]
        names += [name for name, cell, value in self._cells if _content(cell) is not value]
        return sorted(names)

    def restore(self, *, every_container: bool = False) -> None:
        """Every global and class attribute as found (rebound ones bound again to their value, new ones deleted,
        deleted ones back), the containers they, the classes and their closures hold as found (in place) where
        they hold something the analysis made (``every_container``: wherever they changed, as before a further
        capture, which must start from the state the user's forward would), the ``lru_cache`` objects that
        missed since emptied, and the generators and torch's settings where they changed."""
        caches = []
        for cache, misses in self._caches:
            if cache.cache_info().misses != misses:  # it made and kept a value while the analysis ran
                cache.cache_clear()
                misses = 0
            caches.append((cache, misses))
        self._caches = caches
        for _, container, items in self._containers:
            if not _holds(container, items) and (every_container or _holds_made(container, items, self._modules)):
                with contextlib.suppress(Exception):  # a container subclass that refuses: left (never an error here)
                    _put_back(container, items)
        for owner, keys, values in self._classes:
            changed = _rebound(vars(owner), keys, values)
            if changed:
                found = dict(zip(keys, values, strict=True))
                with contextlib.suppress(AttributeError, TypeError):  # a metaclass that refuses: left as it is
                    for name in changed:
                        if name in found:
                            setattr(owner, name, found[name])
                        else:
                            delattr(owner, name)
        for scope, keys, values in self._found:
            changed = _rebound(scope, keys, values)
            if changed:
                found = dict(zip(keys, values, strict=True))
                for name in changed:
                    if name in found:
                        scope[name] = found[name]
                    else:
                        del scope[name]
        for _, cell, value in self._cells:
            if _content(cell) is not value:  # a ``nonlocal`` the model's code rebound (a decorator's call counter)
                if value is _EMPTY:
                    del cell.cell_contents
                else:
                    cell.cell_contents = value
        if self._python is not None and random.getstate() != self._python:
            random.setstate(self._python)
        if self._numpy is not None and self._numpy_generator is not None:
            now = self._numpy_generator.get_state()
            if now[0] != self._numpy[0] or (now[1] != self._numpy[1]).any() or now[2:] != self._numpy[2:]:
                self._numpy_generator.set_state(self._numpy)
        if _settings() != self._settings:
            _apply(self._settings)


@contextlib.contextmanager
def kept_as_found(modules: Iterable[nn.Module]) -> Iterator[KeptState]:
    """A :class:`KeptState` of ``modules`` for the block, restored when it ends (how it ends aside): an
    analysis runs the model's code in its capture, and again in later passes (a leaf call recorded by the
    memory pass, a module a sweep's shape pass dispatches)."""
    kept = KeptState(modules)
    try:
        yield kept
    finally:
        kept.restore()


def _caches_and_containers(
    namespaces: Iterable[tuple[str, Mapping[str, Any]]],
) -> tuple[list[tuple[Any, int]], list[tuple[str, Any, tuple[Any, ...]]]]:
    """The ``lru_cache`` objects the ``(name, namespace)`` pairs hold (a module's globals, a class's attributes;
    names with two leading underscores left out) and those held in the closure cells of their functions (a
    decorator's wrapper holding one), each with its count of misses, and the containers among them and in
    those cells (:data:`_CONTAINERS`), each named, with its items (:func:`_items`): each object once."""
    caches: dict[int, tuple[Any, int]] = {}
    containers: dict[int, tuple[str, Any, tuple[Any, ...]]] = {}
    for where, namespace in namespaces:
        for name, value in namespace.items():
            kind = type(value)
            if kind is staticmethod or kind is classmethod:
                value = value.__func__
                kind = type(value)
            if kind is types.FunctionType:
                for cell in value.__closure__ or ():
                    with contextlib.suppress(ValueError):  # an empty cell
                        inner = cell.cell_contents
                        if type(inner) is LRU_CACHE and id(inner) not in caches:
                            caches[id(inner)] = (inner, inner.cache_info().misses)
                        elif isinstance(inner, _CONTAINERS) and id(inner) not in containers:
                            containers[id(inner)] = (f"{where}.{name} (closure)", inner, _items(inner))
            elif kind is LRU_CACHE:
                if id(value) not in caches:
                    caches[id(value)] = (value, value.cache_info().misses)
            elif isinstance(value, _CONTAINERS) and id(value) not in containers and not name.startswith("__"):
                containers[id(value)] = (f"{where}.{name}", value, _items(value))
    return list(caches.values()), list(containers.values())


def _items(container: Any) -> tuple[Any, ...]:
    """A container's items as they are: a dict's ``(keys, values)``, another's in iteration order."""
    if isinstance(container, dict):
        return (tuple(container), tuple(dict.values(container)))
    return tuple(container)


def _holds(container: Any, items: tuple[Any, ...]) -> bool:
    """Whether ``container`` holds exactly ``items`` (:func:`_items`), the same objects in the same order
    (compared by identity: no item's ``==`` runs)."""
    if isinstance(container, dict):
        keys, values = items
        return (
            len(container) == len(keys)
            and all(map(operator.is_, dict.values(container), values))
            and all(map(operator.is_, container, keys))
        )
    return len(container) == len(items) and all(map(operator.is_, container, items))


def _holds_made(container: Any, items: tuple[Any, ...], modules: set[int]) -> bool:
    """Whether what ``container`` holds now that it did not hold as ``items`` (:func:`_items`) is, or holds
    (two levels down), something an analysis makes: a fake tensor, a trace's proxy, a module of its copy (one
    not in ``modules``, the model's own)."""
    if isinstance(container, dict):
        keys, values = items
        old = {id(item) for item in (*keys, *values)}
        new = [item for pair in dict.items(container) for item in pair if id(item) not in old]
    else:
        old = {id(item) for item in items}
        new = [item for item in container if id(item) not in old]
    return any(_made(item, modules, 2) for item in new)


def _made(value: Any, modules: set[int], depth: int) -> bool:
    """Whether ``value`` is, or holds ``depth`` levels down, a fake tensor, a trace's proxy or a module not in
    ``modules``."""
    if isinstance(value, (FakeTensor, fx.Proxy)):
        return True
    if isinstance(value, nn.Module):
        return id(value) not in modules
    if depth and isinstance(value, (tuple, list, set, frozenset, collections.deque)):
        return any(_made(item, modules, depth - 1) for item in value)
    if depth and isinstance(value, dict):
        return any(_made(item, modules, depth - 1) for pair in dict.items(value) for item in pair)
    return False


def _put_back(container: Any, items: tuple[Any, ...]) -> None:
    """``container`` holding ``items`` (:func:`_items`) again, in place."""
    if isinstance(container, dict):
        keys, values = items
        dict.clear(container)
        dict.update(container, zip(keys, values, strict=True))
        return
    container.clear()
    if isinstance(container, set):
        container.update(items)
    else:
        container.extend(items)


def _settings() -> tuple[Any, ...]:
    """torch's process-wide settings a forward may set: the default dtype, the number of intra-op threads,
    deterministic algorithms (and their warn-only flag), the float32 matmul precision."""
    return (
        torch.get_default_dtype(),
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_float32_matmul_precision(),
    )


def _apply(settings: tuple[Any, ...]) -> None:
    """Set what :func:`_settings` read, each only where it differs now."""
    dtype, threads, deterministic, warn_only, precision = settings
    if torch.get_default_dtype() != dtype:
        torch.set_default_dtype(dtype)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) != (
        deterministic,
        warn_only,
    ):
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    if torch.get_float32_matmul_precision() != precision:
        torch.set_float32_matmul_precision(precision)


def _unwrapped(function: types.FunctionType) -> types.FunctionType:
    """A decorated function's own code (``functools.wraps``' ``__wrapped__`` chain), else ``function``."""
    try:
        inner = inspect.unwrap(function)
    except ValueError:  # a cycle of ``__wrapped__``
        return function
    return inner if type(inner) is types.FunctionType else function


_EMPTY = object()
"""What :func:`_content` gives for an empty closure cell (a name its scope has not bound yet)."""


def _content(cell: types.CellType) -> Any:
    """What a closure cell holds (:data:`_EMPTY` for an empty one)."""
    try:
        return cell.cell_contents
    except ValueError:
        return _EMPTY


def _rebound(state: Mapping[str, Any], keys: tuple[str, ...], values: tuple[Any, ...]) -> set[str]:
    """The names of ``state`` (a module's globals, a class's attributes) bound, rebound or deleted since it held
    ``keys`` bound to ``values`` (nearly always none: told at C speed by :func:`_unchanged`)."""
    if _unchanged(state, keys, values):
        return set()
    found = dict(zip(keys, values, strict=True))
    changed = {name for name, value in found.items() if state.get(name, found) is not value}
    return changed | (state.keys() - found.keys())


def _unchanged(scope: Mapping[str, Any], keys: tuple[str, ...], values: tuple[Any, ...]) -> bool:
    """Whether ``scope`` holds exactly ``keys`` bound to ``values`` (the same objects), in order."""
    return len(scope) == len(keys) and all(map(operator.is_, scope.values(), values)) and tuple(scope) == keys


def _generators(scopes: Iterable[dict[str, Any]]) -> tuple[bool, Any]:
    """Whether the globals reach Python's ``random`` (the module, or a function bound to its global
    generator: ``from random import random``), and NumPy's global generator where they reach it (``numpy``,
    ``numpy.random`` or one of its functions; None: not reached, or NumPy not imported)."""
    numpy = sys.modules.get("numpy")
    numpy_random = getattr(numpy, "random", None) if numpy is not None else None
    numpy_state = getattr(getattr(numpy_random, "mtrand", None), "_rand", None)
    python_state = getattr(random, "_inst", None)
    python = reaches_numpy = False
    for scope in scopes:
        for value in scope.values():
            if value is random or (python_state is not None and getattr(value, "__self__", None) is python_state):
                python = True
            elif numpy is not None and (
                value is numpy
                or value is numpy_random
                or (numpy_state is not None and getattr(value, "__self__", None) is numpy_state)
            ):
                reaches_numpy = True
    return python, (numpy_random if reaches_numpy else None)
