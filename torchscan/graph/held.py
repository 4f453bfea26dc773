"""What keeps tensors of the forward alive after it returns, besides the data of its output: objects of
the output (a cache object's keys and values) and the model's own state (a table a module computes at
its first call and keeps: timm's ConViT ``self.rel_indices = ...``, LeViT's ``attention_bias_cache``).
The memory passes hold them to the end, as the caller's output."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import torch
from torch import fx, nn

__all__ = ["DATA_TYPES", "held_by_objects", "held_by_state"]

DATA_TYPES = (fx.Proxy, torch.Tensor, int, float, bool, complex, str, type(None), torch.dtype, torch.device, slice)
"""Values an output's data may hold as they are (a tensor, or what stands for one while tracing)."""

_HELD_DEPTH = 8
"""How deep a walk looks inside an object (attributes, items)."""

_HELD_OBJECTS = 10_000
"""How many objects a walk visits at most from one output object or one attribute of a module (such an
object may reference much: a module may hold a tokenizer or a dataset)."""

_MODULE_OWN = frozenset(vars(nn.Module()))
"""The attributes ``nn.Module.__init__`` sets (its tensor, module and hook dicts, ``training``): not state
a forward computes."""

_PLAIN = frozenset({int, float, bool, complex, str, bytes, type(None), torch.dtype, torch.device, torch.Size})
"""Exact types of module attributes that hold no tensor (configuration): skipped without a walk."""

_SEQUENCES = frozenset({tuple, list})
"""Exact types of module attributes skipped without a walk when every item is of a :data:`_PLAIN` type (a kernel
size, a stride, a padding list)."""


class _Walk:
    """Finds the tensors (or proxies) inside objects: through attributes, sequences and mappings, at most
    :data:`_HELD_DEPTH` levels down and :data:`_HELD_OBJECTS` objects per :meth:`start`; modules and
    classes are not entered (a module's own state is walked as its own), objects met before are not
    walked again."""

    def __init__(self) -> None:
        self.found: dict[int, Any] = {}
        self._seen: set[int] = set()
        self._left = _HELD_OBJECTS

    def start(self, value: Any) -> None:
        """Walk one object anew (with its own budget)."""
        self._left = _HELD_OBJECTS
        self.inside(value, 0)

    def inside(self, value: Any, depth: int) -> None:
        if isinstance(value, (fx.Proxy, torch.Tensor)):
            self.found.setdefault(id(value), value)
            return
        if depth > _HELD_DEPTH or self._left <= 0 or id(value) in self._seen:
            return
        if isinstance(value, (nn.Module, type, *DATA_TYPES)):
            return
        self._seen.add(id(value))
        self._left -= 1
        if isinstance(value, Mapping):
            items: Any = list(value.values())
        elif isinstance(value, (tuple, list, set, frozenset)):
            items = list(value)
        else:
            items = list(getattr(value, "__dict__", {}).values())
        for item in items:
            self.inside(item, depth + 1)


def held_by_objects(output: Any) -> tuple[Any, ...]:
    """The tensors (or proxies) that objects of the forward's output which are not data hold (a cache
    object's keys and values): the output's data replaces such objects by None, yet the caller keeps
    them, and the tensors they reference, alive."""
    walk = _Walk()

    def outer(value: Any) -> None:  # the data part, as the output's data is made
        if isinstance(value, DATA_TYPES):
            return
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                outer(getattr(value, field.name))
        elif isinstance(value, Mapping):
            for item in value.values():
                outer(item)
        elif isinstance(value, (tuple, list)):
            for item in value:
                outer(item)
        else:
            walk.start(value)

    outer(output)
    return tuple(walk.found.values())


def held_by_state(
    modules: Iterable[nn.Module], ignore: Mapping[nn.Module, Collection[str]] | None = None, buffers: bool = False
) -> tuple[Any, ...]:
    """The tensors (or proxies) the modules' own attributes hold once the forward has run (not their
    parameters, buffers or sub-modules): a value the forward stored there (``self.cache = x``, an item of a
    dict the module holds) stays alive after it returns, as long as the model does. The attributes of
    ``torch.nn``'s own layer classes are not looked at: their forwards keep nothing they compute (the buffers
    a batch norm updates are updated in place). ``ignore``: attributes of a module not to look at (a tracer's
    constants); ``buffers``: the buffers too (a forward may replace one: ``self.table = ...``). The caller
    filters out what the model held before the forward."""
    walk = _Walk()
    torch_own: dict[type, bool] = {}
    for module in modules:
        state = vars(module)
        if buffers:
            for tensor in dict.values(state["_buffers"]):
                if tensor is not None:
                    walk.found.setdefault(id(tensor), tensor)
        cls = type(module)
        own = torch_own.get(cls)
        if own is None:
            own = torch_own[cls] = cls.__module__.startswith("torch.nn.")
        if own:  # torch.nn's own layers (most modules of a model) keep nothing their forward computes
            continue
        skipped = ignore.get(module, ()) if ignore else ()
        for key, value in state.items():
            kind = type(value)
            if (
                kind in _PLAIN
                or key in _MODULE_OWN
                or key in skipped
                or (kind in _SEQUENCES and _PLAIN.issuperset(map(type, value)))
            ):
                continue
            if isinstance(value, (fx.Proxy, torch.Tensor)):
                walk.found.setdefault(id(value), value)
            else:
                walk.start(value)
    return tuple(walk.found.values())
