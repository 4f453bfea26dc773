"""Workspace of the static peak: transient bytes inside one op, worked out by hand and checked
against a real CPU run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchscan import crawl_module
from torchscan.measure.cpu import measure_inference, random_inputs


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3, 2, 2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding="same", dilation=(1, 2))


@pytest.mark.parametrize(
    ("model", "shape", "expected"),
    [
        # input 2·2·8, padded copy 2·2·(8 + 1) (d·(k − 1) = 1 is odd), output 2·1·8: 68 floats
        (nn.Conv1d(2, 1, 2, padding="same"), (2, 8), 4 * (32 + 36 + 16)),
        # H: 3·(2 − 1) = 3 odd, W: 1·(3 − 1) = 2 even -> copy 2·2·6·7; input 2·2·5·7; output 2·3·5·7
        (nn.Conv2d(2, 3, (2, 3), padding="same", dilation=(3, 1)), (2, 5, 7), 4 * (168 + 140 + 210)),
        # the same copy through F.conv2d: H: 1·(2 − 1) odd, W: 2·(3 − 1) even
        (_Functional(), (2, 5, 7), 4 * (168 + 140 + 210)),
        # every total padding even: torch pads symmetrically, no copy
        (nn.Conv2d(2, 3, 3, padding="same", dilation=2), (2, 5, 7), 4 * (140 + 210)),
    ],
)
def test_same_padding_with_an_odd_total_pads_a_copy_of_the_input(
    model: nn.Module, shape: tuple[int, ...], expected: int
) -> None:
    static = crawl_module(model, shape, batch_size=2).memory.activation_peak_bytes
    measured = measure_inference(model, random_inputs([(2, *shape)])).total_bytes
    assert static == measured == expected


@pytest.mark.parametrize(
    ("model", "shape", "expected"),
    [
        # input 2·5·5 (200 bytes), output 2·3·3 with ceil_mode (72) and its 18 int64 indices (144)
        (nn.MaxPool2d(2, ceil_mode=True), (2, 5, 5), 200 + 72 + 144),
        # at the pool: x 1·6·6 (144, held by the caller), the conv's 2·5·5 (200), the pool's 2·3·3 (72), indices 144
        (nn.Sequential(nn.Conv2d(1, 2, 2), nn.MaxPool2d(2, ceil_mode=True)), (1, 6, 6), 144 + 200 + 72 + 144),
        # without ceil_mode: input 2·4·4 (128), output 2·2·2 (32), 8 indices (64)
        (nn.MaxPool2d(2), (2, 4, 4), 128 + 32 + 64),
    ],
    ids=["ceil", "after-conv", "floor"],
)
def test_a_max_pool_computes_int64_indices_inside(model: nn.Module, shape: tuple[int, ...], expected: int) -> None:
    """The indices of a max pool are a transient of its call (8 bytes per output element)."""
    static = crawl_module(model, shape).memory.activation_peak_bytes
    measured = measure_inference(model, random_inputs([(1, *shape)])).total_bytes
    assert static == measured == expected
