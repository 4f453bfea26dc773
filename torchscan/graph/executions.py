"""Which run of its current line each user frame of a node's stack is in, as a trace makes the node.

A stack trace names a frame's function and line, never which call of the function, nor which run of a
line a loop repeats. For most of what the memory pass reads from the lines the text is enough; not to
tell where one run of a line ends and the next begins: ``for _ in range(n): x = self.block(x)`` runs one
line, from one frame, calling ``block`` once per run, and the text of every node made inside is the same
for every run. Eager Python holds the value ``block`` returned in ``x`` until the next run rebinds it.

Per user frame (a file outside torch and torchscan, as the stack traces' readers keep them), this counts
the runs of the frame's current line: a new run starts when the frame's instruction goes back (a loop's
next iteration), when the same instruction calls a new frame (the same call made again; the frame just
below it: a call into torch that runs several blocks, ``nn.Sequential``'s, is one call), or when, on the
same line, it moves on to an instruction that cannot follow the last one without a jump back (the other
branch of ``x = checkpoint(block, x) if i in chosen else block(x)`` in the loop's next iteration: read from
the code's forward jumps, :class:`_Flow`). The frames are held while the trace runs, so that no new frame can
take the address of one seen; :meth:`Executions.close` lets them go. Nothing here reads or changes what the
frames hold.
"""

from __future__ import annotations

import bisect
import dis
import os
import types
from pathlib import Path
from typing import Any

import torch

__all__ = ["EXECUTIONS", "LIBRARY_DIRS", "Executions", "is_user_file"]

EXECUTIONS = "torchscan_executions"
"""Node meta key: per user frame of the node's stack, outermost first, the run of its line the node was
made in (:class:`Executions`; the innermost frames when the stack trace keeps fewer)."""

LIBRARY_DIRS = (str(Path(torch.__file__).parent) + os.sep, str(Path(__file__).resolve().parent.parent) + os.sep)
"""torch's and torchscan's folders: frames of their files are no user frames."""


def is_user_file(filename: str) -> bool:
    """Whether a frame of ``filename`` runs user code (outside :data:`LIBRARY_DIRS`)."""
    return not filename.startswith(LIBRARY_DIRS)


class Executions:
    """The runs of the lines of the user frames a trace meets (one per trace: :meth:`close` at its end).

    The tracer's own walk of a node's stack, up to the nearest running module call, hands over the user frames
    it met (:meth:`runs`); the runs of the frames above that call were read when it was entered (:meth:`enter`).
    """

    def __init__(self) -> None:
        self._states: dict[int, list[Any]] = {}
        """By ``id`` of a frame: [frame, its last instruction, the frame it last called, its run, its line]."""
        self._entered: list[tuple[int, ...]] = []
        """The runs of the user frames above each running module call, innermost call last."""
        self._flows: dict[types.CodeType, _Flow] = {}
        """The forward jumps of each code object a line of which moved on to a later call (made when first needed)."""

    def runs(self, users: list[tuple[Any, Any, int]], call: Any = None) -> tuple[int, ...]:
        """The runs of the user frames above the innermost running module call, then of ``users`` — the user
        frames met walking up from a node (or a module call) to that call, innermost first, each with the
        frame just below it (None for the frame the walk began at: ``call`` is below it) and its line — each
        updated by this event: a new run where its instruction went back, where the same instruction calls a
        new frame (the same call made again), or where on the same line it moved on to an instruction that
        cannot follow the last one without a jump back."""
        above = self.current()
        if not users:
            return above
        if len(users) == 1:  # most nodes: made by the one user frame below the running call
            frame, child, line = users[0]
            return (*above, self._run(frame, call if child is None else child, line))
        runs = [self._run(frame, call if child is None else child, line) for frame, child, line in users]
        runs.reverse()
        return above + tuple(runs)

    def enter(self, users: list[tuple[Any, Any, int]], call: Any) -> None:
        """A module call entered, run by the frame ``call``; ``users`` as for :meth:`runs`, walked from its
        caller: the nodes made inside see the runs of the user frames above it as they are now."""
        self._entered.append(self.runs(users, call))

    def leave(self) -> None:
        """The innermost running module call returned."""
        self._entered.pop()

    def current(self) -> tuple[int, ...]:
        """The runs of the user frames above the innermost running module call (() outside any)."""
        return self._entered[-1] if self._entered else ()

    def _run(self, frame: Any, callee: Any, line: int) -> int:
        """The run of ``frame``'s current ``line``, now that it is at its current instruction calling ``callee``."""
        lasti = frame.f_lasti
        state = self._states.get(id(frame))
        if state is None or state[0] is not frame:
            self._states[id(frame)] = [frame, lasti, callee, 1, line]
            return 1
        last = state[1]
        if (
            lasti < last
            or (lasti == last and callee is not state[2])
            or (lasti > last and line == state[4] and not self._flow(frame.f_code).follows(last, lasti))
        ):
            state[3] += 1
        state[1], state[2], state[4] = lasti, callee, line
        return state[3]

    def _flow(self, code: types.CodeType) -> _Flow:
        flow = self._flows.get(code)
        if flow is None:
            flow = self._flows[code] = _Flow(code)
        return flow

    def close(self) -> None:
        """Let every frame go (the trace ended)."""
        self._states.clear()
        self._entered.clear()
        self._flows.clear()


_UNCONDITIONAL = frozenset({"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP_ABSOLUTE"})
"""Jumps that never fall through to the next instruction."""

_TERMINAL = frozenset({"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"})
"""Instructions after which the frame runs no next instruction."""

_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)


_BREAKS = frozenset({*_JUMPS, *(dis.opmap[name] for name in (*_UNCONDITIONAL, *_TERMINAL) if name in dis.opmap)})
"""Opcodes after which the next instruction in the code may not be the next to run."""


class _Flow:
    """The forward control flow of one code object: which instruction may run after which without a jump back
    (a loop's next iteration). Exception handlers are taken as reachable from every instruction they cover."""

    def __init__(self, code: types.CodeType) -> None:
        self._code = code
        self._raw = code.co_code  # a new copy at every read: read once
        self._follows: dict[tuple[int, int], bool] = {}
        self._offsets: list[int] = []
        self._steps: list[tuple[bool, int | None]] = []
        self._handlers: list[tuple[int, int, int]] = []

    def follows(self, start: int, end: int) -> bool:
        """Whether the instruction at byte offset ``end`` can run after the one at ``start`` (``start < end``)
        without a jump back: at once where no instruction between them jumps or ends the frame (nested calls on
        one line, ``f(g(x))``), else from the code's instructions. A frame's ``f_lasti`` may point into an
        instruction's inline caches (a call's): the instruction is the one it is in."""
        found = self._follows.get((start, end))
        if found is None:
            straight = _BREAKS.isdisjoint(self._raw[start:end:2])  # 2-byte code units: opcode, argument
            found = self._follows[(start, end)] = straight or self._reaches(start, end)
        return found

    def _reaches(self, start: int, end: int) -> bool:
        if not self._offsets:
            instructions = list(dis.get_instructions(self._code))
            self._offsets = [instruction.offset for instruction in instructions]
            self._steps = [
                (
                    instruction.opname not in _UNCONDITIONAL and instruction.opname not in _TERMINAL,
                    instruction.argval
                    if instruction.opcode in _JUMPS and isinstance(instruction.argval, int)
                    else None,
                )
                for instruction in instructions
            ]
            entries = getattr(dis.Bytecode(self._code), "exception_entries", ())
            self._handlers = [(entry.start, entry.end, entry.target) for entry in entries]
        offsets, steps = self._offsets, self._steps
        first = max(bisect.bisect_right(offsets, start) - 1, 0)
        last = offsets[max(bisect.bisect_right(offsets, end) - 1, 0)]
        reached = {offsets[first]}
        for index in range(first, len(offsets)):
            offset = offsets[index]
            if offset >= last:
                break
            if offset not in reached:
                continue
            falls, target = steps[index]
            if falls and index + 1 < len(offsets):
                reached.add(offsets[index + 1])
            if target is not None and target > offset:
                reached.add(target)
            reached.update(handler for begin, stop, handler in self._handlers if begin <= offset < stop)
        return last in reached
