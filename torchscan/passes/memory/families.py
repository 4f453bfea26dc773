"""What autograd keeps for a node's op: the family declared with its formula, looked up by target.

Families (:class:`~torchscan.ops.registry.Saves`) are declared next to the op's formula and
spellings in ``torchscan/ops/<family>.py`` (``@TABLE.register(..., saves=Saves.OUTPUT)`` or
``TABLE.declare(...)``); a node's family is found by its call's target object — a module class
along the MRO, a function, an operator or a ``torch.Tensor`` method — never by its display name.
"""

from __future__ import annotations

from collections.abc import Mapping

from torchscan.ops import DEFAULT_REGISTRY, SavedExtra, Saves
from torchscan.records import NodeRecord

__all__ = ["Saves", "family", "family_in", "saved_extra"]


def family(record: NodeRecord) -> Saves | None:
    """The family of a node's op, None when it has none (it then saves every activation input)."""
    return DEFAULT_REGISTRY.saves(record.call.target) if record.call is not None else None


def family_in(record: NodeRecord, families: Mapping[str, Saves | None] | None) -> Saves | None:
    """:func:`family` of a node, read from ``families`` (node -> family, made once per capture:
    :class:`~torchscan.passes.memory.context.MemoryPlan`) when given."""
    return family(record) if families is None else families.get(record.name)


def saved_extra(record: NodeRecord) -> SavedExtra | None:
    """What a node's op declares its kernel makes and autograd keeps besides its family's tensors (a
    normalisation's statistics), None when nothing is declared."""
    return DEFAULT_REGISTRY.saves_extra(record.call.target) if record.call is not None else None
