"""The stack trace fx records for a node: the frames it keeps (:func:`user_frames`) and their text, as
``traceback`` formats it, each distinct frame formatted once (:class:`StackTexts`)."""

from __future__ import annotations

import functools
import glob
import inspect
import os
import sys
import traceback
from collections.abc import Sequence

import torch

__all__ = ["Frame", "StackTexts", "uninteresting_files", "user_frames"]

Frame = tuple[str, int, str]
"""(file, line, function) of one frame."""

_FORMAT = traceback.StackSummary()


class StackTexts:
    """``"".join(StackSummary.from_list([FrameSummary(*f) for f in frames]).format()).strip()`` — the text fx records as
    a node's stack trace — with each distinct frame's two lines (its place, its source line read
    from ``linecache``) made once per analysis: nodes' stacks share most of their frames (the
    model's outer calls), and formatting every frame of every stack was a quarter of tracing a
    small timm model. A stack repeating a frame back to back (recursion) is formatted by
    ``traceback`` itself, which folds long repeats into one line."""

    def __init__(self) -> None:
        self._frames: dict[Frame, str] = {}

    def text(self, frames: Sequence[Frame]) -> str:
        if any(frames[index] == frames[index - 1] for index in range(1, len(frames))):
            summary = traceback.StackSummary.from_list([traceback.FrameSummary(*frame) for frame in frames])
            return "".join(summary.format()).strip()
        parts = []
        for frame in frames:
            part = self._frames.get(frame)
            if part is None:
                part = self._frames[frame] = _FORMAT.format_frame_summary(traceback.FrameSummary(*frame))
            parts.append(part)
        return "".join(parts).strip()


_TORCH_INTERNALS = (
    "torch.fx.experimental.symbolic_shapes",
    "torch.export._trace",
    "torch.fx.experimental.recording",
    "torch.fx.experimental.sym_node",
    "torch.fx.interpreter",
    "torch.fx._symbolic_trace",
    "torch",
    "torch._compile",
    "torch._dynamo.eval_frame",
    "torch._inductor.sizevars",
    "torch._library.custom_ops",
    "torch._library.fake_impl",
    "torch._subclasses.meta_utils",
    "torch._subclasses.fake_tensor",
    "torch._logging._internal",
    "torch._logging.structured",
)
"""The modules whose files ``torch.fx.experimental.symbolic_shapes.uninteresting_files()`` names (torch 2.14),
besides torch's higher-order ops and dynamo's own list."""


def user_frames(stack: Sequence[Frame]) -> list[Frame]:
    """What fx's ``Tracer._filter_traceback_frames`` keeps of a stack (outermost first), on plain
    tuples (no ``FrameSummary`` per frame): the frames from the first one named ``forward`` on (none
    if no frame is), less those in :func:`uninteresting_files`."""
    first = next((position for position, frame in enumerate(stack) if frame[2] == "forward"), None)
    if first is None:
        return []
    uninteresting = uninteresting_files()
    return [frame for frame in stack[first:] if frame[0] not in uninteresting]


@functools.cache
def uninteresting_files() -> frozenset[str]:
    """The files fx leaves out of a stack trace, equal to ``symbolic_shapes.uninteresting_files()``
    but found without importing the modules it names: two of them (``torch.export._trace``, with
    AOTAutograd and inductor's code cache, and ``torch._inductor.sizevars``) are not loaded by an
    analysis, and importing them took ~100 ms of a process's first analysis. A module not loaded is
    located by its name under torch's directory (its frames can only be on a stack once it is
    loaded, from that file); dynamo's part is dynamo's own function (loaded with the fake mode)."""
    import torch._dynamo.guards  # here, not at import: dynamo is loaded by the fake mode's first use
    import torch._higher_order_ops

    files = {_file_of(name) for name in _TORCH_INTERNALS}
    operators = os.path.dirname(inspect.getfile(torch._higher_order_ops))
    files.update(glob.glob(os.path.join(operators, "*.py")))
    return frozenset(files | torch._dynamo.guards.uninteresting_files() | {"<string>"})


def _file_of(name: str) -> str:
    """The file of module ``name`` (a module of torch), without importing it."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return inspect.getfile(loaded)
    base = os.path.join(os.path.dirname(inspect.getfile(torch)), *name.split(".")[1:])
    return base + ".py" if os.path.isfile(base + ".py") else os.path.join(base, "__init__.py")
