"""A rule of the house, checked on the classes themselves: every dataclass of torchscan is frozen
(records are values: built once, never assigned to), except the mutable accumulators named here."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import torchscan

MUTABLE = {
    "torchscan.graph.trace.Memo": "per-capture lookups filled by the first run over the capture",
    "torchscan.graph.shapes.PlanCache": "the shape pass's part of Memo, filled by the first run over the capture",
    "torchscan.passes.rows._Acc": "a row under construction, never leaves build_rows",
}
"""Dataclasses that are mutable on purpose, with why."""


def _dataclasses() -> dict[str, type]:
    found = {}
    for info in pkgutil.walk_packages(torchscan.__path__, "torchscan."):
        if info.name.endswith("__main__"):  # runs the command line
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and dataclasses.is_dataclass(cls):
                found[f"{info.name}.{cls.__qualname__}"] = cls
    return found


def test_every_dataclass_is_frozen() -> None:
    found = _dataclasses()
    assert len(found) > 60  # every module was imported
    assert {name for name, cls in found.items() if not cls.__dataclass_params__.frozen} == set(MUTABLE)  # type: ignore[attr-defined]


NO_SLOTS = {
    "torchscan.symbolic.report.SymbolicReport": "caches its sympy symbols in a functools.cached_property",
}
"""Frozen dataclasses declared without ``frozen_record`` (no slots), with why."""


def test_every_frozen_dataclass_is_a_frozen_record() -> None:
    """One way to declare a record (``torchscan.records.frozen``): its fast ``__init__`` included."""
    found = _dataclasses()
    plain = {
        name
        for name, cls in found.items()
        if cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        and not cls.__init__.__code__.co_filename.startswith("<frozen_record")
    }
    assert plain == set(NO_SLOTS)
