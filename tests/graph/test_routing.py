"""Calls on the copy run through each module's own call slot: no hook runs, not even torch's global ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchscan import crawl_module


class ValueBranch(nn.Module):
    """fx cannot trace it (a branch on values); recording on fake tensors cannot either."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y if y.sum() > 0 else -y


@pytest.mark.parametrize("model", [nn.Sequential(nn.Linear(3, 3), nn.ReLU()), ValueBranch()], ids=["fx", "real"])
def test_global_module_hooks_never_see_analysis_calls(model: nn.Module) -> None:
    calls: list[str] = []
    handles = [
        nn.modules.module.register_module_forward_pre_hook(lambda module, args: calls.append("pre")),
        nn.modules.module.register_module_forward_hook(lambda module, args, output: calls.append("post")),
    ]
    try:
        report = crawl_module(model, (3,))
    finally:
        for handle in handles:
            handle.remove()
    assert calls == []
    (ignored,) = [d for d in report.diagnostics if d.code == "hooks-ignored"]
    assert "global forward pre-hook" in ignored.message and "global forward hook" in ignored.message
