"""The text of a recorded stack trace, as ``traceback`` formats it, each distinct frame formatted once."""

from __future__ import annotations

import traceback
from collections.abc import Sequence

__all__ = ["Frame", "StackTexts"]

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
