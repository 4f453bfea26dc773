"""Which user lines receive a traced-through module call's result (``out, weights = self.attn(x)``).

Eager Python holds a call's result in the names of the line that receives it until they are bound again or
the frame returns, whether a later line reads them or not: Hugging Face's eager attention returns its
probabilities and a decoder layer keeps them in ``_`` until it returns. An fx graph records neither the
names nor which nodes a call returned. The tracer notes, for each node of a traced-through module call's
result, the user lines that receive it: the caller's line, and the lines above it that return the caller's
value as it is (a plain function that returns the call, as Hugging Face's ``GradientCheckpointingLayer.__call__``
does). Each comes with the number of module calls the receiving frame runs in: the memory pass bounds the
frame by the end of that call (:func:`~torchscan.passes.memory.eager.local_ends`).
"""

from __future__ import annotations

import bisect
import dis
import functools
import os
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import fx, nn
from torch.utils._pytree import tree_leaves

from torchscan.graph.executions import is_user_file

__all__ = ["RETURNED", "Receiver", "ReturnSites"]

RETURNED = "torchscan_returned"
"""fx node meta key: the :data:`Receiver` of each call whose result held the node, innermost first."""

Receiver = tuple[str, int, int, int]
"""``(file:line, depth, item, items)``: a user line that received a module call's result, as a stack trace names its
frame; how many module calls its frame runs in; and where the result is a tuple or list of ``items``, the one the
node is in (``-1``, ``0`` where it is not: the whole result)."""

_OWN_DIR = str(Path(__file__).resolve().parent.parent) + os.sep
_MACHINERY = frozenset({nn.Module._wrapped_call_impl.__code__, nn.Module._call_impl.__code__})
"""torch's module call path between a caller and the tracer's interception."""


class ReturnSites:
    """The receivers of one trace's module call results (one per trace: :meth:`close` writes them on the nodes)."""

    def __init__(self) -> None:
        self._marks: dict[fx.Node, list[Receiver]] = {}
        self._codes: dict[types.CodeType, _Then] = {}

    def receivers(self, caller: Any, depth: int) -> tuple[tuple[str, int], ...]:
        """The user lines that receive the result of a module call made from the frame ``caller`` (the first
        frame above the tracer's own: torch's call path is skipped), in ``depth`` module calls, as ``(file:line,
        depth)``: its caller's line where the call's value is what that line binds (stored in a name or unpacked
        into names: not an argument of another call, ``y = self.c(self.inner(x))``, nor indexed, ``self.f(x)[0]``),
        and on up while a line returns it as it is; none where the caller is not user code (``nn.Sequential``'s
        loop passes a result on, it binds none)."""
        frame = caller
        while frame is not None and (frame.f_code in _MACHINERY or frame.f_code.co_filename.startswith(_OWN_DIR)):
            frame = frame.f_back
        found: list[tuple[str, int]] = []
        while frame is not None and is_user_file(frame.f_code.co_filename):
            kind = self._then(frame.f_code, frame.f_lasti)
            if kind is None:
                break
            found.append((f"{frame.f_code.co_filename}:{frame.f_lineno}", depth))
            if kind != "return":
                break
            frame = frame.f_back  # a plain function returning the call: its caller receives the value
        return tuple(found)

    def _then(self, code: types.CodeType, offset: int) -> str | None:
        """What the code does with the value of the call at instruction ``offset``: ``"store"`` (a name's, or
        unpacked into names), ``"return"``, else None."""
        table = self._codes.get(code)
        if table is None:
            table = self._codes[code] = _then_of(code)
        return table.after(offset)

    def mark(
        self,
        result: Any,
        receivers: Iterable[tuple[str, int]],
        node_of: Callable[[Any], fx.Node | None] = lambda leaf: leaf.node if isinstance(leaf, fx.Proxy) else None,
    ) -> None:
        """Note ``receivers`` (:meth:`receivers`) on the node of each value of a call's ``result`` (``node_of``: a
        leaf's node, None for a leaf that is none: a traced proxy's; a recorded forward maps its tensors)."""
        receivers = tuple(receivers)
        if not receivers:
            return
        if type(result) in (tuple, list):  # ``out, weights = …`` binds item by item
            items: Iterable[tuple[int, Any]] = enumerate(result)
            count = len(result)
        else:
            items, count = ((-1, result),), 0
        for item, value in items:
            for leaf in (value,) if node_of(value) is not None else tree_leaves(value):
                node = node_of(leaf)
                if node is not None:
                    marks = self._marks.setdefault(node, [])
                    marks.extend(mark for site, depth in receivers if (mark := (site, depth, item, count)) not in marks)

    def copy(self, old: fx.Node, new: fx.Node) -> None:
        """A replayed block's node ``new`` gets the receivers noted on the node ``old`` it repeats (those of the
        calls inside the block: a receiver of the recorded block's own call names a line the new one's stack
        does not hold)."""
        marks = self._marks.get(old)
        if marks:
            self._marks[new] = list(marks)

    def close(self) -> None:
        """Write the receivers on their nodes' ``meta`` (at the trace's end: block reuse checks the meta of the
        nodes it records as the trace runs)."""
        for node, marks in self._marks.items():
            node.meta[RETURNED] = tuple(marks)
        self._marks.clear()


_STORES = frozenset(
    code
    for name, code in dis.opmap.items()
    if name in ("STORE_FAST", "STORE_NAME", "STORE_DEREF", "STORE_GLOBAL", "UNPACK_SEQUENCE", "UNPACK_EX")
    or name.startswith("STORE_FAST_")  # 3.13's fused stores
)
_RETURNS = frozenset(code for name, code in dis.opmap.items() if name == "RETURN_VALUE")
_SKIPPED = frozenset(code for name, code in dis.opmap.items() if name in ("CACHE", "EXTENDED_ARG", "NOP"))
_JUMP_FORWARD = dis.opmap.get("JUMP_FORWARD")


@functools.lru_cache(maxsize=1024)
def _then_of(code: types.CodeType) -> _Then:
    """The :class:`_Then` of a code object, read once per process (what follows an instruction is the code's
    alone: ``dis`` costs ~0.5 ms a forward, 2% of a ResNet-50 analysis made anew per trace)."""
    return _Then(code)


class _Then:
    """The instructions of one code object, read once: what follows the instruction at an offset."""

    __slots__ = ("_after", "_offsets", "_ops", "_targets")

    def __init__(self, code: types.CodeType) -> None:
        instructions = [item for item in dis.get_instructions(code) if item.opcode not in _SKIPPED]
        self._offsets = [item.offset for item in instructions]
        self._ops = [item.opcode for item in instructions]
        self._targets = {
            position: item.argval for position, item in enumerate(instructions) if item.opcode == _JUMP_FORWARD
        }
        self._after: dict[int, str | None] = {}

    def after(self, offset: int) -> str | None:
        found = self._after.get(offset, "")
        if found != "":
            return found
        position = bisect.bisect_right(self._offsets, offset)  # the instruction at ``offset`` (or its caches) + 1
        if position in self._targets:  # ``a(x) if c else b(x)``: the first branch jumps to the store
            position = bisect.bisect_left(self._offsets, self._targets[position])
        op = self._ops[position] if position < len(self._ops) else None
        found = self._after[offset] = "store" if op in _STORES else "return" if op in _RETURNS else None
        return found
