"""A report as leaves (path -> value, or :func:`flat`: the values and their structure, without paths) and a
report rebuilt from a template with other leaf values.

The walk covers the frozen records of a report (rows, totals, context, diagnostics, memory):
dataclass fields, tuples and lists, dicts; an ``int`` (not a ``bool``) is a number the symbolic
analysis fits, anything else must be the same at every size. The report's graph of node records
is not walked (``Report.records``).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping
from typing import Any

from torchscan.records.frozen import frozen_record
from torchscan.report import Report

__all__ = ["WALKED", "Flat", "Path", "flat", "is_number", "leaves", "rebuild"]


@frozen_record
class NoFormula:
    """Stands where a symbolic report has no exact formula for a value (see its ``conditions``)."""

    def __str__(self) -> str:
        return "<no formula: piecewise>"

    __repr__ = __str__


NO_FORMULA = NoFormula()


Path = tuple[Any, ...]
"""Field names, sequence positions and dict keys from the report down to a leaf."""

WALKED = ("rows", "totals", "context", "diagnostics", "memory")
"""The report's fields the symbolic analysis derives (its ``records`` graph is not)."""


def is_number(value: Any) -> bool:
    """An integer the analysis fits (booleans are flags, not numbers)."""
    return isinstance(value, int) and not isinstance(value, bool)


_FIELDS, _SEQUENCE, _MAPPING, _LEAF = "fields", "sequence", "mapping", "leaf"


_Kind = tuple[str, tuple[str, ...], Callable[[Any], tuple[Any, ...]] | None]
"""How an instance of a class is walked: its kind, and for a dataclass its field names and a getter of
their values (one C call for all: ``operator.attrgetter``)."""


def _kind(cls: type) -> _Kind:
    """How :func:`leaves` walks an instance of ``cls``: a dataclass by its fields, a tuple or list by
    position, a mapping by key, anything else as a leaf."""
    if dataclasses.is_dataclass(cls):
        names = tuple(field.name for field in dataclasses.fields(cls))
        getter = (
            operator.attrgetter(*names) if len(names) > 1 else lambda value: tuple(getattr(value, n) for n in names)
        )
        return _FIELDS, names, getter
    if issubclass(cls, (tuple, list)):
        return _SEQUENCE, (), None
    if issubclass(cls, Mapping):
        return _MAPPING, (), None
    return _LEAF, (), None


@frozen_record
class Flat:
    """A report's leaves without their paths (:func:`flat`): ``values`` in :func:`leaves`' order and
    the ``structure`` they lie in (each node of the walk, depth first: a dataclass by its class, a
    sequence by its class and length, a mapping by its class and keys, a leaf by a mark). Two reports
    of equal ``structure`` have the same paths, position for position."""

    values: list[Any]
    structure: list[Any]


_LEAF_MARK = object()


def _walk(report: Report, paths: list[Path] | None) -> Flat:
    """The walk of :func:`leaves` and :func:`flat` (``paths``: filled with each value's path, None: no
    path made). How each class is walked is looked up once per call (a symbolic report walks ~40
    reports of thousands of records each)."""
    values: list[Any] = []
    structure: list[Any] = []
    kinds: dict[type, _Kind] = {}

    def kind_of(cls: type) -> _Kind:
        known = kinds.get(cls)
        if known is None:
            known = kinds[cls] = _kind(cls)
        return known

    def walk(value: Any, path: Path, known: _Kind) -> None:
        """A container: its own entries, then each child (a leaf here, a container by recursion)."""
        cls = type(value)
        kind, names, getter = known
        keys: Any
        if kind is _FIELDS:
            structure.append(cls)
            keys, children = names, getter(value)  # type: ignore[misc]
        elif kind is _SEQUENCE:
            structure.append((cls, len(value)))
            values.append(len(value))
            if paths is not None:
                paths.append((*path, "#len"))
            keys, children = range(len(value)), value
        else:
            keys = tuple(value)
            structure.append((cls, keys))
            values.append(keys)
            if paths is not None:
                paths.append((*path, "#keys"))
            children = value.values()
        for key, child in zip(keys, children, strict=True):
            known = kinds.get(type(child))
            if known is None:
                known = kinds[type(child)] = _kind(type(child))
            if known[0] is _LEAF:  # most values: no call
                structure.append(_LEAF_MARK)
                values.append(child)
                if paths is not None:
                    paths.append((*path, key))
            else:
                walk(child, (*path, key) if paths is not None else path, known)

    for name in WALKED:
        field = getattr(report, name)
        known = kind_of(type(field))
        if known[0] is _LEAF:  # a report without memory: ``None``
            structure.append(_LEAF_MARK)
            values.append(field)
            if paths is not None:
                paths.append((name,))
        else:
            walk(field, (name,), known)
    return Flat(values, structure)


def leaves(report: Report) -> dict[Path, Any]:
    """Every leaf of the report's walked fields, with the lengths and keys of its containers
    (``#len``, ``#keys``: a report whose structure changes with the sizes shows it there), depth
    first in field, position and key order."""
    paths: list[Path] = []
    found = _walk(report, paths)
    return dict(zip(paths, found.values, strict=True))


def flat(report: Report, paths: list[Path] | None = None) -> Flat:
    """The values of :func:`leaves` in its order, with their structure, without making a path per
    value unless ``paths`` is given (filled with them): reports of one structure are compared
    position for position."""
    return _walk(report, paths)


def _rebuilt(value: Any, path: Path, leaf: Callable[[Path, Any], Any]) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            field.name: _rebuilt(getattr(value, field.name), (*path, field.name), leaf)
            for field in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, (tuple, list)):
        return type(value)(_rebuilt(item, (*path, position), leaf) for position, item in enumerate(value))
    if isinstance(value, Mapping):
        return {key: _rebuilt(item, (*path, key), leaf) for key, item in value.items()}
    return leaf(path, value)


def rebuild(template: Report, leaf: Callable[[Path, Any], Any], **fields: Any) -> Report:
    """``template`` with each leaf of its walked fields replaced by ``leaf(path, value)``, and
    ``fields`` set as given (e.g. ``records``)."""
    changes = {name: _rebuilt(getattr(template, name), (name,), leaf) for name in WALKED}
    return dataclasses.replace(template, **changes, **fields)
