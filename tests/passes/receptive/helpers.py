"""Shared by the receptive-field tests: a report with receptive fields, a model with an unknown op,
a rule's outcome on a call bound by name and by position."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from torchscan import crawl_module
from torchscan.graph.calls import ArgumentBinder
from torchscan.passes.receptive import DEFAULT_RULES
from torchscan.passes.receptive.geometry import Unsupported
from torchscan.passes.receptive.propagate import _identity
from torchscan.passes.receptive.table import Operand, Outcome
from torchscan.records import OpCall, TensorSpec
from torchscan.report import Report


def rf_report(model: nn.Module, shape: Sequence[int]) -> Report:
    return crawl_module(model.eval(), tuple(shape), receptive_field=True)


class Unknown(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cumsum(x, dim=2))


def _described(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return TensorSpec(tuple(value.shape), value.dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(_described(v) for v in value)
    return value


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def rule_outcomes(function: Any, *args: Any) -> tuple[Outcome | str, Outcome | str]:
    """The rule's outcome on ``function(*args)`` recorded with its arguments bound by name (what
    the graph records) and unbound (``{"args": …}``, what it records when a signature does not bind),
    every input of rank ≥ 3 an identity field over its spatial dims; a refusal as its message."""
    out = function(*args)
    tensors = _tensors(args)
    inputs = tuple(_described(t) for t in tensors)
    operands = tuple(
        Operand(_identity(t.shape[2:]), spec) for t, spec in zip(tensors, inputs, strict=True) if t.ndim >= 3
    )
    described = tuple(_described(a) for a in args)
    bound = ArgumentBinder().bind(function, described, {})
    assert "args" not in bound
    rule = DEFAULT_RULES.lookup(function)
    assert rule is not None
    outputs = tuple(_described(t) for t in _tensors(out))

    def outcome(attrs: dict[str, Any]) -> Outcome | str:
        try:
            return rule(OpCall("function", function, inputs, outputs, attrs), operands)
        except Unsupported as error:
            return str(error)

    return outcome(bound), outcome({"args": described})
