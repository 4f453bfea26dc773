"""One registry for every op: module classes, functions, operators and tensor methods.

A family file collects its formulas in a :class:`FormulaTable` with a decorator that takes all
the spellings of an op at once; :class:`Registry` merges the tables into one read-only lookup
(refusing a target registered twice). User overrides make a new registry, never mutate one.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from torch import nn

from torchscan.records import Cost, OpCall

__all__ = ["DuplicateFormulaError", "Formula", "FormulaTable", "LazyTable", "Registry"]

Formula = Callable[[OpCall], Cost]


class DuplicateFormulaError(ValueError):
    """A target got two formulas."""


def _describe(target: Any) -> str:
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)


class FormulaTable:
    """Formulas of one op family, keyed by every spelling of each op."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[Any, Formula] = {}

    def register(self, *targets: Any, **fixed: Any) -> Callable[[Formula], Formula]:
        """Register the decorated formula under ``targets``; ``fixed`` keyword arguments are bound.

        ``fixed`` lets one formula serve several dimensionalities, e.g. ``dims=2`` for 2-D pools.
        """

        def decorate(formula: Formula) -> Formula:
            bound = functools.partial(formula, **fixed) if fixed else formula
            if fixed:
                functools.update_wrapper(bound, formula)  # type: ignore[arg-type]
            for target in dict.fromkeys(targets):  # an alias listed twice (F.x is torch.x) is one
                if target in self._entries:
                    raise DuplicateFormulaError(f"{self.family}: {_describe(target)} registered twice")
                self._entries[target] = bound
            return formula

        return decorate

    def items(self) -> Iterable[tuple[Any, Formula]]:
        return tuple(self._entries.items())


@dataclass(frozen=True, slots=True)
class LazyTable:
    """A family for an optional library (e.g. torchvision's fx-wrapped functions).

    ``load`` imports the library and returns its table; it runs at the first lookup miss after
    ``module`` has been imported by someone else — a model that calls the library's functions
    has imported it — so importing torchscan never imports the library.
    """

    module: str
    load: Callable[[], FormulaTable]


class Registry:
    """Read-only lookup from op targets to formulas."""

    def __init__(self, entries: Mapping[Any, Formula], lazy: tuple[LazyTable, ...] = ()) -> None:
        self._entries: Mapping[Any, Formula] = MappingProxyType(dict(entries))
        self._lazy = lazy
        self._pending = list(lazy)
        self._loaded: dict[Any, Formula] = {}

    @classmethod
    def from_tables(cls, *tables: FormulaTable, lazy: tuple[LazyTable, ...] = ()) -> Registry:
        merged: dict[Any, Formula] = {}
        for table in tables:
            for target, formula in table.items():
                if target in merged:
                    raise DuplicateFormulaError(f"{table.family}: {_describe(target)} already registered")
                merged[target] = formula
        return cls(merged, lazy)

    def with_overrides(self, overrides: Mapping[Any, Formula]) -> Registry:
        """A new registry where ``overrides`` replace or add formulas (this one is unchanged)."""
        return Registry({**self._entries, **overrides}, self._lazy)

    def _late(self, target: Any) -> Formula | None:
        """The formula of ``target`` from a lazy table whose library is imported by now."""
        for lazy in [lazy for lazy in self._pending if lazy.module in sys.modules]:
            self._pending.remove(lazy)
            for key, formula in lazy.load().items():
                self._loaded.setdefault(key, formula)
        return self._loaded.get(target)

    def __contains__(self, target: Any) -> bool:
        return self.lookup(target) is not None

    def __len__(self) -> int:
        return len(self._entries)

    def targets(self) -> tuple[Any, ...]:
        return tuple(self._entries)

    def lookup(self, target: Any) -> Formula | None:
        """The formula for a function, operator, tensor method or module class.

        Module classes are looked up along the MRO, so subclasses inherit their base's formula —
        unless they override ``forward`` (then they are traced through, not counted as their base).
        """
        if isinstance(target, type):
            return self._module_formula(target)
        try:
            formula = self._entries.get(target)
            return formula if formula is not None else self._late(target)
        except TypeError:  # unhashable target
            return None

    def _module_formula(self, cls: type) -> Formula | None:
        if not issubclass(cls, nn.Module):
            return None
        for base in cls.__mro__:
            formula = self._entries.get(base) or self._late(base)
            if formula is not None:
                return formula if getattr(cls, "forward", None) is getattr(base, "forward", None) else None
        return None
