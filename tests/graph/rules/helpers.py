"""Shared by the shape-rule tests: compare a rule with FakeTensor dispatch."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st

from torchscan.graph.rules import RULES, Fresh, answer


def check(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> str:
    """Compare the rule of ``target`` with dispatching it; returns 'answered', 'declined' or 'rejected'."""
    kwargs = kwargs or {}
    rule = RULES.rule_for(target)
    assert rule is not None
    got = answer(rule, target, args, kwargs)
    try:
        expected = target(*args, **kwargs)
    except Exception:
        assert got is None, f"torch rejects this call, the rule answered {got}"
        return "rejected"
    if got is None:
        return "declined"
    if isinstance(got, Fresh):
        assert isinstance(expected, torch.Tensor)
        assert (got.shape, got.dtype, got.device) == (tuple(expected.shape), expected.dtype, expected.device)
        assert expected.is_contiguous()
        inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        assert all(expected.untyped_storage()._cdata != a.untyped_storage()._cdata for a in inputs)
    elif isinstance(got, (tuple, list)) or not any(got is a for a in (*args, *kwargs.values())):
        assert_same_views(got, expected, [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)])
    else:
        assert got is expected
    return "answered"


def assert_same_views(got: Any, expected: Any, inputs: list[torch.Tensor]) -> None:
    """Same type, and per tensor: shape, strides, offset, dtype, device and storage (shared or not)."""
    got_all = list(got) if isinstance(got, (tuple, list)) else [got]
    expected_all = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    assert type(got) is type(expected) and len(got_all) == len(expected_all)
    for mine, theirs in zip(got_all, expected_all, strict=True):
        assert type(mine) is type(theirs)
        assert (mine.shape, mine.stride(), mine.storage_offset()) == (
            theirs.shape,
            theirs.stride(),
            theirs.storage_offset(),
        )
        assert (mine.dtype, mine.device, mine.is_contiguous()) == (theirs.dtype, theirs.device, theirs.is_contiguous())
        storages = [a.untyped_storage()._cdata for a in inputs]
        assert (mine.untyped_storage()._cdata in storages) == (theirs.untyped_storage()._cdata in storages)


sizes = st.integers(1, 9)
