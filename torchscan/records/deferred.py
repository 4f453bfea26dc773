"""A value computed on its first read: what a report holds in place of a part that costs more than the
rest and that not every reader wants (the memory estimate: a fifth to a quarter of an analysis).

A :class:`Deferred` runs its function once, in the first thread that asks; another thread asking meanwhile
waits for that answer. The answer (or the exception raised) is kept, the function and what it held are
dropped. A record field declared with :data:`DEFERRED` in its metadata (:func:`deferred_field`) may hold one:
:func:`~torchscan.records.frozen.frozen_record` makes reading the field return the value, computed then if
it was not yet, and the slot holds the value from then on. Copying or pickling a record reads its fields,
so a copy holds the value, never the function.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["DEFERRED", "Deferred", "deferred_field", "resolving"]

_T = TypeVar("_T")

DEFERRED = "torchscan.deferred"
"""The key, in a record field's metadata, of a field that may hold a :class:`Deferred` (its docstring)."""


class Deferred(Generic[_T]):
    """``compute()``, run on the first :meth:`get` and kept; ``lock``: one lock for deferred values whose
    functions share state (a sweep's memo), else their own."""

    __slots__ = ("_compute", "_done", "_error", "_lock", "_value")

    def __init__(self, compute: Callable[[], _T], lock: threading.Lock | None = None) -> None:
        self._compute: Callable[[], _T] | None = compute
        self._lock = lock if lock is not None else threading.Lock()
        self._done = False
        self._value: _T | None = None
        self._error: BaseException | None = None

    def get(self) -> _T:
        """The value: computed now if no thread has yet (an exception it raised is raised again on every read; an
        interrupt while computing leaves it to the next read)."""
        if not self._done:
            with self._lock:
                if not self._done:
                    try:
                        self._value = self._compute()  # type: ignore[misc]
                    except Exception as error:
                        self._error = error
                    # an interrupt (KeyboardInterrupt, SystemExit) propagates: the next read computes again
                    self._compute, self._done = None, True
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (and copied) as its value."""
        return _known, (self.get(),)

    def __repr__(self) -> str:
        return f"Deferred({self._value!r})" if self._done and self._error is None else "Deferred(<not computed>)"


def _known(value: _T) -> Deferred[_T]:
    deferred: Deferred[_T] = Deferred(lambda: value)
    deferred.get()
    return deferred


def deferred_field(doc: str = "", **kwargs: Any) -> Any:
    """``dataclasses.field(**kwargs)`` for a field that may hold a :class:`Deferred`; ``doc``: its property's
    docstring (:func:`resolving`; the API reference reads the field's own docstring in the class body)."""
    return dataclasses.field(metadata={DEFERRED: doc or _DOC}, **kwargs)


_DOC = "The field's value, made on its first read where it was given deferred (:class:`Deferred`)."


def resolving(slot: Any, doc: str) -> property:
    """A property over a slot's descriptor, documented ``doc``: the value it holds, a :class:`Deferred` one's
    computed (and the slot set to it). Setting it (``object.__setattr__``: the record's ``__init__``,
    unpickling) sets the slot."""

    def get(record: Any) -> Any:
        value = slot.__get__(record, type(record))
        if type(value) is Deferred:
            value = value.get()
            slot.__set__(record, value)
        return value

    def put(record: Any, value: Any) -> None:
        slot.__set__(record, value)

    return property(get, put, doc=doc)
