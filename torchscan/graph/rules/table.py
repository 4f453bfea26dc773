"""The shape-rule table: what a rule answers, the read-only lookup, and how an answer becomes a fake."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._mode_utils import no_dispatch

from torchscan.graph.fake import fake_tensor
from torchscan.ops.registry import OpLookup, OpTable
from torchscan.records.frozen import frozen_record

__all__ = ["Answer", "Fresh", "Pending", "Rule", "RuleTable", "ShapeRules", "answer", "is_tensor", "materialize"]


@frozen_record
class Fresh:
    """A new contiguous tensor."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device


class Pending:
    """A :class:`Fresh` answer kept as a value of the shape pass without making its fake tensor: a new
    contiguous tensor of ``shape``, ``dtype`` and ``device`` (no grad), made only where something needs
    a tensor (an op dispatched on fake tensors, a view run by its meta kernel).

    The next rules read it as they read such a fake (``shape``, ``dtype``, ``device``, ``dim()``,
    ``numel()``, ``is_contiguous()``…); :meth:`meta` makes its storage once (``made(self, meta)``
    is told, so the caller can number the storage as it numbered this value) and :meth:`fake` its
    fake tensor once, on that storage: every user of the value sees the same tensor, as before.
    """

    __slots__ = ("_fake", "_made", "_meta", "device", "dtype", "fake_mode", "shape")

    layout = torch.strided
    requires_grad = False
    is_leaf = True

    def __init__(
        self,
        fresh: Fresh,
        fake_mode: FakeTensorMode,
        made: Callable[[Pending, torch.Tensor], None] | None = None,
    ) -> None:
        self.shape, self.dtype, self.device = fresh.shape, fresh.dtype, fresh.device
        self.fake_mode = fake_mode
        self._made = made
        self._meta: torch.Tensor | None = None
        self._fake: FakeTensor | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return math.prod(self.shape)

    def is_contiguous(self) -> bool:
        return True

    def nbytes(self) -> int:
        """Bytes of its storage: ``numel · itemsize``."""
        return math.prod(self.shape) * self.dtype.itemsize

    def meta(self) -> torch.Tensor:
        """Its storage as a plain meta tensor (made once)."""
        if self._meta is None:
            with no_dispatch():
                self._meta = torch.empty(self.shape, dtype=self.dtype, device="meta")
            if self._made is not None:
                self._made(self, self._meta)
        return self._meta

    def fake(self) -> FakeTensor:
        """Its fake tensor (made once, on :meth:`meta`'s storage)."""
        if self._fake is None:
            self._fake = fake_tensor(self.fake_mode, self.meta(), self.device)
        return self._fake

    @property
    def made(self) -> torch.Tensor | None:
        """What was made of it so far (its fake, else its meta storage; a view of it shares that
        storage), or None: nothing yet, so nothing can alias it."""
        return self._fake if self._fake is not None else self._meta

    def __repr__(self) -> str:
        return f"Pending(shape={self.shape}, dtype={self.dtype}, device={self.device})"


def is_tensor(value: Any) -> bool:
    """A tensor, or a :class:`Pending` one."""
    return isinstance(value, (torch.Tensor, Pending))


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
    return fake_tensor(fake_mode, meta, fresh.device)


def answer(rule: Rule, target: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """The rule's answer; ``None`` (dispatch instead) if the rule itself trips over the arguments."""
    try:
        return rule(target, args, kwargs)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError, ZeroDivisionError):
        return None
