"""Calls on the copy run through each module's own call slot: no hook runs, not even torch's global ones."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
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


DDP = """
import sys, tempfile
import torch.distributed as dist
from torch import nn
from torchscan import crawl_module

dist.init_process_group("gloo", init_method=f"file://{tempfile.mktemp()}", rank=0, world_size=1)
try:
    inner = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(288, 4)).eval()
    wrapped, plain = crawl_module(nn.parallel.DistributedDataParallel(inner), (3, 8, 8)), crawl_module(inner, (3, 8, 8))
    assert (wrapped.totals.params, wrapped.totals.macs) == (plain.totals.params, plain.totals.macs), wrapped.totals
    assert [d.code for d in wrapped.diagnostics] == ["wrapper-unwrapped"], wrapped.diagnostics
finally:
    dist.destroy_process_group()
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_distributed_data_parallel_is_seen_through() -> None:
    # in a process of its own: a process group is process-wide state
    done = subprocess.run([sys.executable, "-c", DDP], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
