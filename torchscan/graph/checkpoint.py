"""Activation checkpointing regions of a forward (``torch.utils.checkpoint.checkpoint``, and with it
``checkpoint_sequential`` and Hugging Face's ``gradient_checkpointing_enable()``).

A checkpointed call keeps no tensor its ops save for the backward: it keeps its inputs, and its backward runs
its forward again to remake what they saved. An fx trace runs ``checkpoint`` as plain Python and records
nothing of it. Each node made inside one (a frame of torch's checkpoint on the stack, the outermost where
checkpoints nest) carries a :class:`Region` in its ``meta`` under :data:`CHECKPOINT`; the records graph lists
them under :data:`CHECKPOINT_NODES` for the memory pass (:mod:`~torchscan.passes.memory.recompute`).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterable, Mapping

import torch.utils.checkpoint
from torch import fx

from torchscan.records.frozen import frozen_record

__all__ = ["CHECKPOINT", "CHECKPOINT_CODES", "CHECKPOINT_NODES", "CheckpointMarks", "Region", "describe"]

CHECKPOINT = "torchscan_checkpoint"
"""fx node meta key: the :class:`Region` of the innermost checkpointed call the node's op ran in."""

CHECKPOINT_NODES = "checkpoint_nodes"
"""Records graph attribute: node name -> :class:`Region`, for the nodes made inside a checkpointed call (absent:
none)."""


@frozen_record
class Region:
    """One checkpointed call of a forward."""

    number: int
    """Its order among the capture's checkpointed calls (0 for the first)."""
    reentrant: bool
    """``use_reentrant=True`` (torch's default when not given): the backward re-runs the whole call and holds its
    outputs through the call's own backward; else it re-runs it up to the last op that saved a tensor
    (``early_stop``)."""
    early_stop: bool = True
    """Non-reentrant only: whether the recomputation stops once every saved tensor is remade."""
    parent: Region | None = None
    """The checkpointed call it runs in (None: it is outermost)."""
    selective: bool = False
    """Given a ``context_fn`` (selective checkpointing: a policy that saves some ops' results): not modelled, taken
    as remaking everything."""

    def chain(self) -> tuple[Region, ...]:
        """This call and those it runs in, outermost first."""
        found = [self]
        while found[-1].parent is not None:
            found.append(found[-1].parent)
        return tuple(reversed(found))


def _codes(functions: Iterable[object]) -> frozenset[types.CodeType]:
    found = set()
    for function in functions:
        code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
        if code is not None:
            found.add(code)
    return frozenset(found)


CHECKPOINT_CODES: frozenset[types.CodeType] = _codes(
    getattr(torch.utils.checkpoint, name, None) for name in ("_checkpoint_impl", "checkpoint")
)
"""The code of torch's checkpoint entry points: a frame of one of them on the stack is a checkpointed call
(``checkpoint`` alone where torch has no ``_checkpoint_impl``; where both run, the outer frame of the two is the
region's, its ``use_reentrant`` read from the inner)."""


_NAMES = frozenset(code.co_name for code in CHECKPOINT_CODES)

_NO_CONTEXT = getattr(torch.utils.checkpoint, "noop_context_fn", None)
"""torch's default ``context_fn`` (no selective checkpointing)."""


def describe(regions: Iterable[Region]) -> str:
    """``3 checkpointed call(s) (non-reentrant)``: how many distinct calls, and their kinds."""
    found = set(regions)
    kinds = sorted({"reentrant" if region.reentrant else "non-reentrant" for region in found})
    return f"{len(found)} checkpointed call(s) ({', '.join(kinds)})"


class CheckpointMarks:
    """The checkpointed calls of one capture, by their frames (kept while the capture runs: a frame's identity
    is the call's)."""

    def __init__(self) -> None:
        self._regions: dict[types.FrameType, Region] = {}

    def near(self, frame: types.FrameType | None, calls: Mapping[types.FrameType, Region | None]) -> Region | None:
        """:meth:`region` of ``frame``, where ``calls`` holds the frames of the running module calls with theirs:
        the stack is walked up to the nearest of them only, unless a frame below it is torch's checkpoint."""
        start = frame
        while frame is not None:
            if frame in calls:
                return calls[frame]
            code = frame.f_code
            if code.co_name in _NAMES and code in CHECKPOINT_CODES:  # a name first: a code object hashes slowly
                return self.region(start)
            frame = frame.f_back
        return None

    def region(self, frame: types.FrameType | None) -> Region | None:
        """The region of the innermost checkpointed call running at ``frame`` (None: none), made at its first
        node with those it runs in (a walk of the whole stack: asked only where a frame below the nearest module
        call is torch's checkpoint)."""
        calls: list[tuple[types.FrameType, types.FrameType]] = []  # (the call's frame, its settings'), inner first
        while frame is not None:
            if frame.f_code in CHECKPOINT_CODES:
                if calls and calls[-1][0].f_back is frame:  # the same call: checkpoint calling _checkpoint_impl
                    calls[-1] = (frame, calls[-1][1])
                else:
                    calls.append((frame, frame))
            frame = frame.f_back
        region = None
        for outer, settings in reversed(calls):
            found = self._regions.get(outer)
            if found is None:
                local = settings.f_locals
                reentrant = local.get("use_reentrant")
                found = self._regions[outer] = Region(
                    number=len(self._regions),
                    reentrant=True if reentrant is None else bool(reentrant),
                    early_stop=bool(local.get("early_stop", True)),
                    parent=region,
                    selective=local.get("context_fn", _NO_CONTEXT) is not _NO_CONTEXT,
                )
            region = found
        return region

    def mark(self, node: fx.Node, region: Region | None) -> None:
        """Note ``region`` on a node just made (nothing where it is None)."""
        if region is not None:
            node.meta[CHECKPOINT] = region

    def close(self) -> None:
        """Let go of the frames (at the capture's end: they hold the traced code's locals)."""
        self._regions.clear()
