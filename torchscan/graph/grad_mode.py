"""Grad mode regions of a forward (``with torch.no_grad():``, ``torch.inference_mode()``,
``torch.set_grad_enabled(False)``): the ops run there build no autograd graph, so a training step saves nothing
for them and gives no gradient through them.

Like autocast (:mod:`~torchscan.graph.autocast`), grad mode is thread-local state that an fx trace runs as plain
Python and records nowhere. The capture runs the forward with grad enabled whatever the caller's mode; a node made
while the forward's own code has it disabled carries :data:`NO_GRAD` in its ``meta``, the shape pass runs it so,
and the memory pass reads it off the records graph (:data:`NO_GRAD_NODES`): a frozen backbone, a momentum
encoder's update or a teacher run under ``no_grad`` then saves nothing, gets no gradient and no optimizer state,
and costs no backward FLOPs.
"""

from __future__ import annotations

import sys
import types

import torch
from torch import fx

__all__ = ["NO_GRAD", "NO_GRAD_NODES", "GradMarks", "function_forwards"]

NO_GRAD = "torchscan_no_grad"
"""fx node meta key: True where the forward's code had grad mode disabled when the node's op ran."""

NO_GRAD_NODES = "no_grad_nodes"
"""Records graph attribute: the names of the nodes made with grad mode disabled (a frozenset; absent: none)."""


class GradMarks:
    """Notes, for one capture, the nodes made with grad mode disabled by the forward's own code.

    A ``torch.autograd.Function``'s forward runs with grad disabled too (torch's reentrant activation checkpoint,
    a straight-through estimator), but its outputs require grad where its inputs do, and its parameters get
    gradients through its backward: the ops made inside one (a frame of a ``forward`` of a ``Function`` subclass
    on the stack) are not marked. Before this, a model checkpointed with ``use_reentrant=True`` had no gradient
    for the checkpointed blocks' parameters: its SGD step 45% under a real one."""

    def __init__(self) -> None:
        self._forwards: frozenset[types.CodeType] | None = None

    def mark(self, node: fx.Node) -> None:
        """Note on a node just made for an op whether the forward's code disabled grad mode (one C call where
        it is on)."""
        if torch.is_grad_enabled() or self._inside_function(sys._getframe(1)):
            return
        node.meta[NO_GRAD] = True

    def _inside_function(self, frame: types.FrameType | None) -> bool:
        if self._forwards is None:  # made at the first node with grad disabled (most captures meet none)
            self._forwards = function_forwards()
        while frame is not None:
            if frame.f_code in self._forwards:
                return True
            frame = frame.f_back
        return False


def function_forwards() -> frozenset[types.CodeType]:
    """The code of the ``forward`` of every ``torch.autograd.Function`` subclass defined so far (~0.6 ms)."""
    found = set()
    classes = [torch.autograd.Function]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        forward = cls.__dict__.get("forward")
        if isinstance(forward, (staticmethod, classmethod)):
            forward = forward.__func__
        code = getattr(forward, "__code__", None)
        if code is not None:
            found.add(code)
    return frozenset(found)
