"""What autograd keeps for backward, per op family, in bytes worked out by hand (float32, batch 1;
a storage saved by several nodes counts once)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchscan import crawl_module


def _saved(model: nn.Module, shape: tuple[int, ...] = (4,)) -> int:
    return crawl_module(model, shape).memory.saved_activation_bytes


class _Product(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) * self.b(x)


class _Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) * 2.0


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # a trainable Linear keeps its input for dL/dW: x, 4 floats
        (nn.Linear(4, 4), 16),
        # dropout in eval keeps nothing; in training the mask its CPU kernel draws: 4 floats (CUDA's
        # fused kernel keeps a bool mask; the call is recorded on the analysis device)
        (nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).eval(), 16),
        (nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).train(), 16 + 16),
        # a product of two tensors keeps both factors (a(x), b(x)); both Linears keep x, once
        (_Product(), 16 + 16 + 16),
        # a product with a number keeps nothing (dL/dy = 2·g): only the Linear's input x
        (_Scaled(), 16),
        # a frozen Linear whose input requires grad keeps nothing (dL/dx = Wᵀ·g needs no input)
        (nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4).requires_grad_(False)), 16),
        # nothing requires grad before the trainable Linear: the GELU keeps nothing, the Linear its
        # input (the GELU's output, 8 floats)
        (nn.Sequential(nn.Linear(4, 8).requires_grad_(False), nn.GELU(), nn.Linear(8, 4)), 32),
    ],
    ids=["linear", "dropout-eval", "dropout-train", "product", "scaled", "frozen-after", "frozen-before"],
)
def test_saved_bytes(model: nn.Module, expected: int) -> None:
    assert _saved(model) == expected


def test_a_max_pool_keeps_its_input_and_int64_indices() -> None:
    """Conv2d(1, 2, 3) → MaxPool2d(2) on 1×6×6, float32: the conv keeps its input (36·4 = 144 bytes),
    the pool its input (the conv's 2·4·4 output, 128) and the argmax of each of its 2·2·2 outputs as
    int64 (8·8 = 64): 336."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2))
    assert _saved(model, (1, 6, 6)) == 144 + 128 + 64


class _Fills(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return h + torch.zeros_like(h) + torch.rand_like(h) + h.new_ones(h.shape) + torch.full_like(h, 2.0)


def test_fills_of_a_tensor_that_requires_grad_keep_nothing() -> None:
    """``zeros_like``, ``rand_like``, ``new_ones`` and ``full_like`` read a tensor that requires grad
    (so they are recorded for training) but make results that do not: autograd keeps nothing for
    them, nor for the adds. Only the Linear's input x is kept: 4 floats = 16 bytes."""
    assert _saved(_Fills()) == 16
