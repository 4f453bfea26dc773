"""torchscan's entry points run as written, never compiled by ``torch.compile``.

Called from a function that ``torch.compile`` compiles, an analysis would be handed to dynamo frame by frame:
dynamo traces Python it meets until a graph break, and it cannot trace the analysis's own records (a frozen
record's ``__init__`` failed inside dynamo with an ``AssertionError``). :func:`never_compiled` runs a function
with dynamo off for it and everything it calls (``torch._disable_dynamo``, recursive), as torch runs its own
dispatch modes: the analysis then runs eagerly, exactly as outside ``torch.compile``, and the caller's
compiled function breaks its graph there. Dynamo's callback is per thread: another thread's compilation is
neither seen nor touched. In a process that has not imported ``torch._dynamo`` nothing can be compiling: the
function is called as it is, and dynamo is imported (by the fake mode, ~0.75 s) inside the analysis, with the
collector paused (:func:`torchscan.collector.paused`), not before it (0.2 s more with the collector on).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["never_compiled"]

_F = TypeVar("_F", bound=Callable[..., object])


def never_compiled(function: _F) -> _F:
    """``function``, run with dynamo off for its call and every frame below it (its signature and docstring
    kept: ``functools.wraps``)."""
    disabled = torch._disable_dynamo(function, recursive=True)

    @functools.wraps(function)
    def entry(*args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" not in sys.modules:  # no dynamo, no compiled frame: nothing to turn off
            return function(*args, **kwargs)
        return disabled(*args, **kwargs)

    return entry  # type: ignore[return-value]
