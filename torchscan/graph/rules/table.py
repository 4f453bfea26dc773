"""The shape-rule table: what a rule answers, the read-only lookup, and how an answer becomes a fake."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._mode_utils import no_dispatch

from torchscan.ops.registry import OpLookup, OpTable

__all__ = ["Answer", "Fresh", "Rule", "RuleTable", "ShapeRules", "answer", "materialize"]


@dataclass(frozen=True, slots=True)
class Fresh:
    """A new contiguous tensor."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device


Answer = Fresh | torch.Tensor | None


Rule = Callable[[Any, tuple[Any, ...], Mapping[str, Any]], Answer]
"""``rule(target, args, kwargs)``: ``target`` is the module (``call_module``) or the function."""


RuleTable = OpTable[Rule]
"""The shape rules of one op family (``graph/rules/<family>.py``)."""


class ShapeRules(OpLookup[Rule]):
    """Read-only lookup of rules: module classes by exact type (a subclass may change forward),
    functions and operators by identity; an optional library's table is loaded lazily (see
    :class:`~torchscan.ops.registry.LazyTable`), so importing torchscan never imports the library."""

    def rule_for(self, target: Any) -> Rule | None:
        """The rule of a module object (by its exact class) or of a function."""
        return self.lookup(type(target) if isinstance(target, nn.Module) else target)


def materialize(fresh: Fresh, fake_mode: FakeTensorMode) -> FakeTensor:
    """The fake tensor a :class:`Fresh` answer describes (a new storage of its size)."""
    with no_dispatch():
        meta = torch.empty(fresh.shape, dtype=fresh.dtype, device="meta")
    return FakeTensor(fake_mode, meta, fresh.device)


def answer(rule: Rule, target: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """The rule's answer; ``None`` (dispatch instead) if the rule itself trips over the arguments."""
    try:
        return rule(target, args, kwargs)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError, ZeroDivisionError):
        return None
