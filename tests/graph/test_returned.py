"""The user lines that receive a module call's result (:mod:`torchscan.graph.returned`)."""

# ruff: noqa: F841, RUF059 (the unused names are what the test reads)

from __future__ import annotations

import dis
from typing import Any

from torchscan.graph.returned import _Then


def _lines(self: Any, x: Any) -> Any:
    y = self.c(self.inner(x))
    a, b = self.attn(x)
    z = self.f(x)[0]
    w = self.a(x) if x else self.b(x)
    self.kept = self.k(x)
    print(self.p(x))
    return self.g(x)


def test_what_a_line_does_with_a_call_s_value() -> None:
    then = _Then(_lines.__code__)
    first = _lines.__code__.co_firstlineno
    found: dict[int, list[str | None]] = {}
    for instruction in dis.get_instructions(_lines.__code__):
        if instruction.opname.startswith("CALL") and instruction.opname != "CALL_INTRINSIC_1":
            line = instruction.positions.lineno if instruction.positions else None
            found.setdefault((line or 0) - first, []).append(then.after(instruction.offset))
    assert found[1] == [None, "store"]  # the inner call is an argument; the outer one's value is bound
    assert found[2] == ["store"]  # unpacked into names
    assert found[3] == [None]  # indexed: the tuple is dropped
    assert found[4] == ["store", "store"]  # either branch of a conditional expression
    assert found[5] == [None]  # an attribute's: the module's state holds it (graph.held)
    assert found[6] == [None, None]
    assert found[7] == ["return"]
