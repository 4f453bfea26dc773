"""The rule table: found along the MRO unless the class has its own forward; no target twice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchscan.passes.receptive import DEFAULT_RULES, Marker, RuleTable


def test_rule_table() -> None:
    class MyConv(nn.Conv2d):
        pass

    class OwnForward(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    assert DEFAULT_RULES.lookup(MyConv) is DEFAULT_RULES.lookup(nn.Conv2d) is not None
    assert DEFAULT_RULES.lookup(OwnForward) is None
    table = RuleTable("test")
    table.register(nn.ReLU)(lambda call, operands: Marker.GLOBAL)
    with pytest.raises(ValueError, match="twice"):
        table.register(nn.ReLU)(lambda call, operands: Marker.GLOBAL)
