"""Calls of the user's own ``torch.autograd.Function`` subclasses (:mod:`torchscan.graph.functions`)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from torchscan import crawl_module
from torchscan.graph.functions import FUNCTION_NODES, FunctionCall


class Scaled(torch.autograd.Function):
    """Saves its input only, as memory-efficient activations do; recomputes in its backward."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x) * x

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad * torch.exp(x) * (1 + x)


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = Scaled.apply(self.a(x))
        x = torch.relu(self.b(x))
        x = checkpoint(self.c, x, use_reentrant=True)  # torch's own Function: a checkpoint, not a call here
        return Scaled.apply(x)


def test_nodes_of_a_function_s_forward_carry_its_call() -> None:
    graph = crawl_module(Twice(), (8,)).records.graph
    calls = dict(graph[FUNCTION_NODES])
    assert set(calls) == {"exp", "mul", "exp_1", "mul_1"}  # not the linears, the relu or the checkpointed call
    assert calls["exp"] == calls["mul"] == FunctionCall(0, "Scaled")
    assert calls["exp_1"] == calls["mul_1"] == FunctionCall(1, "Scaled")


def test_a_graph_without_functions_has_no_calls() -> None:
    assert FUNCTION_NODES not in crawl_module(nn.Sequential(nn.Linear(8, 8), nn.ReLU()), (8,)).records.graph
