"""Calls of the user's own ``torch.autograd.Function`` subclasses (``GeLUFunction.apply(x)``).

A custom Function's ``forward`` runs with grad disabled: its ops save nothing for the backward; the Function keeps
what its ``forward`` hands to ``ctx.save_for_backward``, and its own ``backward`` computes the input gradients. An
fx trace runs ``apply`` as plain Python and records the forward's ops as any others, so the training estimate
counted what each of them would save (Hugging Face's BLOOM computes GELU in such a Function: its SGD step came
out 42% above a real one). Each node made inside one (a frame of a user ``forward`` whose first argument is a
Function's context) carries a :class:`FunctionCall` in its ``meta`` under :data:`FUNCTION`; the records graph
lists them under :data:`FUNCTION_NODES` for the memory pass, which takes the call to keep its inputs
(:func:`~torchscan.passes.memory.saved.saved_for_backward`). torch's own Functions (its reentrant checkpoint) are
not user code: :mod:`~torchscan.graph.checkpoint` models those.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

from torch.autograd.function import FunctionCtx

from torchscan.graph.executions import is_user_file
from torchscan.records.frozen import frozen_record

__all__ = ["FUNCTION", "FUNCTION_NODES", "FunctionCall", "FunctionMarks", "is_function_forward"]

FUNCTION = "torchscan_function"
"""fx node meta key: the :class:`FunctionCall` of the outermost custom Function the node's op ran in."""

FUNCTION_NODES = "function_nodes"
"""Records graph attribute: node name -> :class:`FunctionCall`, for the nodes made inside a custom Function's
forward (absent: none)."""


@frozen_record
class FunctionCall:
    """One call of a custom ``torch.autograd.Function`` (no plain value: block reuse does not replay its nodes,
    whose calls are each their own)."""

    number: int
    """Its order among the capture's Function calls (0 for the first)."""
    name: str
    """The Function's class name."""


def is_function_forward(frame: types.FrameType) -> bool:
    """Whether ``frame`` runs the ``forward`` of a user's ``torch.autograd.Function`` (its first argument is the
    call's context); read once per code object by the tracer."""
    code = frame.f_code
    if code.co_name != "forward" or code.co_argcount < 1 or not is_user_file(code.co_filename):
        return False
    return isinstance(frame.f_locals.get(code.co_varnames[0]), FunctionCtx)


class FunctionMarks:
    """The custom Function calls of one capture, by the frames of their forwards (kept while the capture runs: a
    frame's identity is the call's; :meth:`close` drops them)."""

    def __init__(self) -> None:
        self._calls: dict[types.FrameType, FunctionCall] = {}

    def call(self, frames: Sequence[tuple[Any, Any, int]], forwards: Sequence[bool]) -> FunctionCall | None:
        """The call of the outermost Function forward among ``frames`` (user frames, innermost first, as the
        tracer's walk gives them: ``(frame, child, line)``; ``forwards[i]``: whether frame ``i`` runs one)."""
        outer = None
        for (frame, _, _), forward in zip(frames, forwards, strict=True):
            if forward:
                outer = frame
        if outer is None:
            return None
        found = self._calls.get(outer)
        if found is None:
            owner = getattr(type(outer.f_locals.get(outer.f_code.co_varnames[0])), "_forward_cls", None)
            found = self._calls[outer] = FunctionCall(len(self._calls), getattr(owner, "__name__", "Function"))
        return found

    def close(self) -> None:
        """Forget the frames (the capture ended)."""
        self._calls.clear()
