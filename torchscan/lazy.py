"""A package's public names imported from their modules on first use (PEP 562).

``import torchscan`` then imports neither torch nor the analysis: the command's entry point
(:mod:`torchscan.console`) and the zoo's worker processes decide how their process imports them
(:func:`torchscan.collector.frozen_after`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exports"]


def exports(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public names are defined in the modules ``homes``
    maps them to: a name is read from its module, imported then if it was not."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home), name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return __getattr__, __dir__
