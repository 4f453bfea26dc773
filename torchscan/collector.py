"""Python's cyclic garbage collector around an analysis, and in the command's own process.

An analysis allocates many small objects, and each time they trip the collector's thresholds a
collection may walk the whole heap: with torch imported some 400,000 objects, more with torchvision
(whose import loads ``torch._dynamo``) or timm. :func:`paused` keeps the collector off while an
analysis runs and puts it back as found. :func:`frozen_after` is for the ``torchscan`` command's
process only (:mod:`torchscan.console`), where what is imported and built before the analysis lives
until the process ends: it is made with the collector off, then frozen (``gc.freeze``), so that no
later collection walks it again.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["frozen_after", "paused"]


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Pause the collector, restoring its state after.

    Nothing an analysis makes needs a cycle collected before it returns; the next collection after it
    takes what it left (one full collection took 0.27 s of a 0.52 s DenseNet-121 analysis). The
    collector is process-wide: other threads' cyclic garbage waits for the analysis to end too (nothing
    else changes for them; torch itself may run a daemon thread, so "no other thread" is not a usable
    test). Concurrent analyses leave it as the first found it: only one that found it enabled enables
    it again.
    """
    enabled = gc.isenabled()
    if enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def frozen_after() -> Iterator[None]:
    """The block run with the collector off, then every object alive moved to the collector's permanent
    generation (``gc.freeze``: never walked again, never collected) and the collector put back as found.

    For a process that owns its heap (the command's): imports and a model that live until it exits.
    Cyclic garbage made inside the block is never freed, so a block that builds and drops many objects
    (a loop over models) does not belong here. ``gc.unfreeze()`` undoes the freeze.
    """
    with paused():
        yield
        gc.freeze()
