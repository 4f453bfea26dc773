"""Calls on the copy run through each module's own call slot: no hook runs, not even torch's global ones."""

from __future__ import annotations

import pytest
from torch import nn

from tests.graph.test_capture import ValueBranch
from torchscan import crawl_module


@pytest.mark.parametrize("model", [nn.Sequential(nn.Linear(4, 4), nn.ReLU()), ValueBranch()], ids=["fx", "real"])
def test_global_module_hooks_never_see_analysis_calls(model: nn.Module) -> None:
    calls: list[str] = []
    handles = [
        nn.modules.module.register_module_forward_pre_hook(lambda module, args: calls.append("pre")),
        nn.modules.module.register_module_forward_hook(lambda module, args, output: calls.append("post")),
    ]
    try:
        report = crawl_module(model, (4,))
    finally:
        for handle in handles:
            handle.remove()
    assert calls == []
    (ignored,) = [d for d in report.diagnostics if d.code == "hooks-ignored"]
    assert "global forward pre-hook" in ignored.message and "global forward hook" in ignored.message
