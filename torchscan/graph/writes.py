"""Index writes (``x[index] = value``): Python's statement gives None, the op's result is the object written.

The tracer's proxy stands for the write's node from the write on (``_Proxy.__setitem__``), so every
pass that runs a graph's nodes (the shape pass, a recorded forward, the memory pass's recordings)
gives such a node the object it wrote, in place, as ``x.copy_(…)`` returns ``x``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["INDEX_WRITES", "written"]

INDEX_WRITES = frozenset({operator.setitem, torch.Tensor.__setitem__})
"""The spellings of ``x[index] = value`` a graph or a recorded forward holds."""


def written(target: Any, args: Sequence[Any], result: Any) -> Any:
    """The result of calling ``target`` on ``args``: for an index write (None from Python) the object it
    wrote, ``args[0]``; for any other call ``result`` itself."""
    if result is not None or not args:
        return result
    try:
        return args[0] if target in INDEX_WRITES else result
    except TypeError:  # an unhashable callable: no index write
        return result
