"""The module globals a model's own code runs over, put back as found after a capture runs that code.

A forward may bind a global (``global CALLS; CALLS += 1``, a module-level cache replaced): the capture runs
the forward (traced, recorded or for real), so without care the analysis would leave that binding in the
user's process, and a block replayed from another's trace (:mod:`torchscan.graph.reuse`) would bake in the
value the first block read. :class:`KeptNamespaces` notes the globals of every function the model's classes
define (outside torch itself) before the capture, tells whether the capture bound, rebound or deleted any,
and puts them back. A change inside an object a global holds (an append to a module-level list, an
``lru_cache`` filled) is not seen.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

from torch import nn

__all__ = ["KeptNamespaces"]


class KeptNamespaces:
    """The globals of the functions the classes of ``modules`` define (below ``nn.Module``, torch's own
    classes left out), as they are now: :meth:`written` names what was bound since, :meth:`restore` puts
    them back. Like torch's ``fork_rng``, this restores process-wide state: another thread binding one
    of these globals while the analysis runs sees its binding undone."""

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        scopes: dict[int, dict[str, Any]] = {}
        for cls in {type(module) for module in modules}:
            for owner in cls.__mro__:
                if owner is nn.Module or owner.__module__.startswith("torch."):
                    continue
                for value in vars(owner).values():
                    function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                    if isinstance(function, types.FunctionType):
                        scopes.setdefault(id(function.__globals__), function.__globals__)
        self._found = [(scope, dict(scope)) for scope in scopes.values()]

    def written(self) -> list[str]:
        """``module.name`` of each global bound, rebound or deleted since (sorted)."""
        names = []
        for scope, found in self._found:
            if len(scope) == len(found) and all(scope.get(name, found) is value for name, value in found.items()):
                continue
            module = found.get("__name__", "?")
            changed = {name for name, value in found.items() if scope.get(name, found) is not value}
            names += [f"{module}.{name}" for name in sorted(changed | (scope.keys() - found.keys()))]
        return sorted(names)

    def restore(self) -> None:
        """Every global as found: rebound ones bound again to their value, new ones deleted, deleted ones back."""
        for scope, found in self._found:
            for name in scope.keys() - found.keys():
                del scope[name]
            for name, value in found.items():
                if scope.get(name, found) is not value:
                    scope[name] = value
