"""A report as leaves (path -> value) and a report rebuilt from a template with other leaf values.

The walk covers the frozen records of a report (rows, totals, context, diagnostics, memory):
dataclass fields, tuples and lists, dicts; an ``int`` (not a ``bool``) is a number the symbolic
analysis fits, anything else must be the same at every size. The report's graph of node records
is not walked (``Report.records``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torchscan.records.frozen import frozen_record
from torchscan.report import Report

__all__ = ["WALKED", "Path", "is_number", "leaves", "rebuild"]


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


def _walk(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk(getattr(value, field.name), (*path, field.name))
    elif isinstance(value, (tuple, list)):
        yield (*path, "#len"), len(value)
        for position, item in enumerate(value):
            yield from _walk(item, (*path, position))
    elif isinstance(value, Mapping):
        yield (*path, "#keys"), tuple(value)
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    else:
        yield path, value


def leaves(report: Report) -> dict[Path, Any]:
    """Every leaf of the report's walked fields, with the lengths and keys of its containers
    (``#len``, ``#keys``: a report whose structure changes with the sizes shows it there)."""
    found: dict[Path, Any] = {}
    for name in WALKED:
        found.update(_walk(getattr(report, name), (name,)))
    return found


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
