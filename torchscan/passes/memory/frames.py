"""Which user frames a node was traced in: its stack trace without torch's and torchscan's frames."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from torch import nn

from torchscan.graph.executions import is_user_file
from torchscan.passes.memory.eager_names import one_statement
from torchscan.records import NodeRecord

__all__ = [
    "CONTAINER_MODULES",
    "LIBRARY_MODULES",
    "Frame",
    "container_modules",
    "frames_by_node",
    "library_modules",
    "parse_frames",
    "user_frames",
]

LIBRARY_MODULES = "library_modules"
"""Graph attribute: paths of modules whose forward is torch's own (``Sequential``, ``ModuleList``…);
they never hold Python locals, so frames are attributed to the nearest user module above them."""

CONTAINER_MODULES = "container_modules"
"""Graph attribute: paths of modules that are never called (no ``forward``: ``ModuleList``,
``ModuleDict``); the calls of their children are separate calls."""

Frame = tuple[str, str, str]
"""``(file:line, file:function, code)`` of one frame: its call site, its function, the statement its source
line runs (:func:`~torchscan.passes.memory.eager_names.one_statement`)."""


_FRAME = re.compile(r'\s*File "([^"]+)", line (\d+), in (\S+)')


def user_frames(record: NodeRecord) -> tuple[Frame, ...]:
    """The user frames in a node's stack trace, outermost first."""
    return parse_frames(record.stack_trace)


def frames_by_node(ordered: Sequence[NodeRecord]) -> list[tuple[Frame, ...]]:
    """:func:`user_frames` of each node; each distinct stack trace is parsed once (nodes traced
    from one source line in a loop share theirs)."""
    parsed: dict[str | None, tuple[Frame, ...]] = {}
    result = []
    for record in ordered:
        frames = parsed.get(record.stack_trace)
        if frames is None:
            frames = parsed[record.stack_trace] = parse_frames(record.stack_trace)
        result.append(frames)
    return result


def parse_frames(stack_trace: str | None) -> tuple[Frame, ...]:
    """The user frames of a stack trace as fx records it, outermost first."""
    lines = (stack_trace or "").splitlines()
    frames = []
    for position, line in enumerate(lines):
        match = _FRAME.match(line) if 'File "' in line else None
        if match and is_user_file(match.group(1)):
            code = one_statement(lines[position + 1].strip()) if position + 1 < len(lines) else ""
            frames.append((f"{match.group(1)}:{match.group(2)}", f"{match.group(1)}:{match.group(3)}", code))
    return tuple(frames)


def library_modules(model: nn.Module, modules: Iterable[tuple[str, nn.Module]] | None = None) -> frozenset[str]:
    """Paths of the modules whose ``forward`` is defined by torch itself (value of
    :data:`LIBRARY_MODULES`); ``modules``: ``model.named_modules()`` when the caller has it."""
    return frozenset(
        path
        for path, module in (model.named_modules() if modules is None else modules)
        if path and getattr(getattr(type(module), "forward", None), "__module__", "").startswith("torch.")
    )


def container_modules(model: nn.Module, modules: Iterable[tuple[str, nn.Module]] | None = None) -> frozenset[str]:
    """Paths of the modules without a ``forward`` of their own (value of :data:`CONTAINER_MODULES`);
    ``modules``: ``model.named_modules()`` when the caller has it."""
    return frozenset(
        path
        for path, module in (model.named_modules() if modules is None else modules)
        if path and getattr(type(module), "forward", None) is nn.Module.forward  # a scripted module has none
    )
