"""Oracle: our MACs equal PyTorch's FlopCounterMode FLOPs / 2 for conv, linear and matmul."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchscan import crawl_module


def torch_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops()


@st.composite
def conv_configs(draw: st.DrawFn, dims: int) -> tuple[nn.Module, tuple[int, ...]]:
    groups = draw(st.integers(1, 3))
    in_channels = groups * draw(st.integers(1, 3))
    out_channels = groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(dims))
    transposed = draw(st.booleans())
    bias = draw(st.booleans())
    size = tuple(draw(st.integers(6, 11)) for _ in range(dims))
    if transposed:  # a transposed conv needs padding <= dilation·(k − 1)
        padding = tuple(min(p, d * (k - 1)) for p, d, k in zip(padding, dilation, kernel, strict=True))
    family = (
        (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
        if transposed
        else (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    )
    module = family[dims - 1](
        in_channels, out_channels, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias
    )
    return module.eval(), (in_channels, *size)


@given(st.integers(1, 3).flatmap(conv_configs), st.integers(1, 3))
def test_convolutions(config: tuple[nn.Module, tuple[int, ...]], batch: int) -> None:
    module, shape = config
    expected = torch_flops(module, torch.randn(batch, *shape))
    assert crawl_module(module, shape, batch_size=batch).totals.macs * 2 == expected


@given(st.integers(1, 20), st.integers(1, 20), st.booleans(), st.lists(st.integers(1, 4), max_size=2))
def test_linear(in_features: int, out_features: int, bias: bool, lead: list[int]) -> None:
    module = nn.Linear(in_features, out_features, bias=bias)
    shape = (*lead, in_features)
    expected = torch_flops(module, torch.randn(2, *shape))
    assert crawl_module(module, shape, batch_size=2).totals.macs * 2 == expected


class MatMul(nn.Module):
    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.op == "bmm":
            return torch.bmm(a, b)
        if self.op == "operator":
            return a @ b
        return a.matmul(b)


@given(
    st.sampled_from(["bmm", "operator", "method"]),
    st.integers(1, 4),
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(1, 9),
)
def test_matmul(op: str, batch: int, m: int, k: int, n: int) -> None:
    module = MatMul(op)
    expected = torch_flops(module, torch.randn(batch, m, k), torch.randn(batch, k, n))
    report = crawl_module(module, [(batch, m, k), (batch, k, n)], batch_size=None)
    assert report.totals.macs * 2 == expected
