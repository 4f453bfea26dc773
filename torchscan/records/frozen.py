"""The one way torchscan declares a record: a frozen dataclass with slots, built quickly.

A frozen dataclass's generated ``__init__`` stores each field through ``object.__setattr__`` (its own
``__setattr__`` refuses): about 100 ns a field, 2.4 µs for a 23-field :class:`~torchscan.records.Row`
against 0.3 µs for the same class unfrozen. An analysis builds tens of thousands of fields' worth
of records (MobileNetV3-Large: ~4,000 records, ~27,000 fields), so :func:`frozen_record` gives each
class an ``__init__`` that stores through the slots' own descriptors instead (1.2 µs for that
``Row``); the instances are the same frozen dataclass instances (assignment still raises,
``dataclasses.replace``, equality, hashing, pickling and ``__post_init__`` unchanged).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from torchscan.records.deferred import DEFERRED, resolving

_T = TypeVar("_T")
_F = TypeVar("_F")

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10: type checkers read the 3.11 branch

    def dataclass_transform(**_: Any) -> Callable[[_F], _F]:
        return lambda function: function


__all__ = ["frozen_record"]


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def frozen_record(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True, slots=True)`` with an ``__init__`` that stores fields through the
    slots' descriptors (see the module docstring); a class whose fields are not all plain ``__init__``
    parameters (``init=False``, keyword-only, ``InitVar``) keeps the dataclass's own, and a class that
    defines ``__init__`` keeps that. A field declared with :func:`~torchscan.records.deferred.deferred_field`
    may hold a :class:`~torchscan.records.deferred.Deferred`: reading it gives the value (computed then)."""
    own_init = "__init__" in vars(cls)  # the class's own, which the dataclass keeps too
    made: Any = dataclasses.dataclass(frozen=True, slots=True)(cls)
    init = None if own_init else _fast_init(made)
    if init is not None:
        made.__init__ = init
    for field in dataclasses.fields(made):  # after the __init__, which stores through the slots themselves
        if field.metadata.get(DEFERRED):
            slot = next(vars(klass)[field.name] for klass in made.__mro__ if field.name in vars(klass))
            if not isinstance(slot, property):  # a base class's field is wrapped there already
                setattr(made, field.name, resolving(slot, field.metadata[DEFERRED]))
    return made


def _fast_init(cls: type) -> Callable[..., None] | None:
    """The ``__init__`` of :func:`frozen_record`, None where the dataclass's own must stay."""
    fields = dataclasses.fields(cls)
    if len(fields) != len(vars(cls)["__dataclass_fields__"]) or any(not f.init or f.kw_only for f in fields):
        return None  # an InitVar or ClassVar pseudo-field, a field set elsewhere or by keyword only
    names: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    params, body = [], []
    for index, field in enumerate(fields):
        slot = next(vars(klass)[field.name] for klass in cls.__mro__ if field.name in vars(klass))
        names[f"_set{index}"] = slot.__set__
        value = field.name
        if field.default is not dataclasses.MISSING:
            names[f"_default{index}"] = field.default
            params.append(f"{field.name}=_default{index}")
        elif field.default_factory is not dataclasses.MISSING:
            names[f"_factory{index}"] = field.default_factory
            params.append(f"{field.name}=_MISSING")
            value = f"_factory{index}() if {field.name} is _MISSING else {field.name}"
        else:
            params.append(field.name)
        body.append(f"    _set{index}(self, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"]) + "\n"
    scope: dict[str, Any] = {}
    exec(compile(source, f"<frozen_record {cls.__qualname__}>", "exec"), names, scope)  # source made of the field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {**{field.name: field.type for field in fields}, "return": None}
    return init


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses writes: the read-only mappings records hold (a call's normalised arguments, a graph's
    node tables). Read at a dict's speed; pickled, copied and deep-copied as itself (``types.MappingProxyType``,
    used before, cannot be pickled: a report could not be sent to another process or deep-copied)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{type(self).__name__} is read-only")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (dict(self),)

    def __copy__(self) -> FrozenDict:
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"
