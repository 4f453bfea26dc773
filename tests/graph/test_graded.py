"""``x.requires_grad`` read by traced code, answered as a training forward sets it (graph/graded.py)."""

from __future__ import annotations

import torch
from torch import nn

from torchscan import crawl_module


class Branching(nn.Module):
    """Takes a wide branch where what it reads requires grad (as DenseNet's memory_efficient layers do)."""

    def __init__(self, read: str) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.frozen = nn.Linear(8, 8).requires_grad_(False)
        self.wide = nn.Linear(8, 32)
        self.read = read

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probe = {
            "trained": lambda: self.linear(x) * 2,
            "input": lambda: x,
            "frozen": lambda: self.frozen(x),
            "detached": lambda: self.linear(x).detach(),
            "no_grad": lambda: _under_no_grad(self.linear, x),
            "integer": lambda: self.linear(x).argmax(-1),
            "requires_grad_": lambda: x.clone().requires_grad_(),
        }[self.read]()
        if probe.requires_grad:
            return self.wide(x).sum(-1)
        return x.sum(-1)


def _under_no_grad(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return layer(x)


def _took_wide_branch(read: str) -> bool:
    report = crawl_module(Branching(read), (8,), batch_size=2)
    return "wide" in report.records  # the call's node (a row is listed for every module, called or not)


def test_results_of_trained_layers_require_grad() -> None:
    assert _took_wide_branch("trained")
    assert _took_wide_branch("requires_grad_")


def test_inputs_frozen_layers_detached_no_grad_and_integers_do_not() -> None:
    for read in ("input", "frozen", "detached", "no_grad", "integer"):
        assert not _took_wide_branch(read), read


def test_the_flag_matches_a_real_forward() -> None:
    for read in ("trained", "input", "frozen", "detached", "no_grad", "integer", "requires_grad_"):
        model, seen = Branching(read), []
        handle = model.wide.register_forward_hook(lambda *_, seen=seen: seen.append(True))
        try:
            model(torch.randn(2, 8))
        finally:
            handle.remove()
        assert _took_wide_branch(read) is bool(seen), read
