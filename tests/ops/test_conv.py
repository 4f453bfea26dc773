"""Convolutions against the counting reference (``tests/reference/conv.py``): 1-D/2-D/3-D, groups,
stride, dilation, padding (``"same"`` too), transposed, module and functional spellings.

Conventions (``torchscan/ops/__init__.py``) and how they map onto the reference's literal counts:
FLOPs and MACs are the literal ones (a window tap in the zero padding is multiplied and added like
any other: the kernel reads a padded input); DMAs read the input once per product ("each output
reads its whole window", padding taps included), the weight and bias once per element, and write
the output once.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, crawled_cost, function_cost, module_cost, randn
from tests.reference import conv as reference
from tests.reference.counting import Counted
from torchscan.records import Cost

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")  # torch's note on even kernels

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
FUNCTIONAL = (F.conv1d, F.conv2d, F.conv3d)


def expected(counted: Counted) -> Cost:
    """Our convention applied to the reference's counts (module docstring)."""
    tally = counted.tally
    return Cost(flops=tally.flops, macs=tally.macs, dmas=tally.dmas(per_read=["input"], once=["weight", "bias"]))


@st.composite
def convolutions(draw: st.DrawFn, transposed: bool) -> tuple[nn.Module, torch.Tensor]:
    """A tiny convolution (1-D/2-D/3-D, non-square, groups, stride, dilation, padding or ``"same"``)
    in float64 with random weights, and an input it accepts."""
    dims = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    in_channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    biggest = 2 if dims == 3 else 3
    kernel = tuple(draw(st.integers(1, biggest)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    seed = draw(st.integers(0, 2**31))
    bias = draw(st.booleans())
    if transposed:
        padding = tuple(draw(st.integers(0, d * (k - 1))) for d, k in zip(dilation, kernel, strict=True))
        extra = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True))
        size = tuple(draw(st.integers(1, 3)) for _ in range(dims))
        out = [
            (n - 1) * s - 2 * p + d * (k - 1) + e + 1
            for n, s, p, d, k, e in zip(size, stride, padding, dilation, kernel, extra, strict=True)
        ]
        assume(min(out) > 0)
        module: nn.Module = CONV_TRANSPOSE[dims - 1](
            in_channels, out_channels, kernel, stride, padding, extra, groups, bias, dilation, dtype=torch.float64
        )
    else:
        padding_: tuple[int, ...] | str = draw(
            st.sampled_from(["same", "valid", "numbers"]) if stride == (1,) * dims else st.just("numbers")
        )
        if padding_ == "numbers":
            padding_ = tuple(draw(st.integers(0, k // 2 + 1)) for k in kernel)
        span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
        size = tuple(draw(st.integers(max(s - 2, 1), s + 2)) for s in span)
        if isinstance(padding_, tuple):
            assume(all(n + 2 * p >= s for n, p, s in zip(size, padding_, span, strict=True)))
        elif padding_ == "valid":
            assume(all(n >= s for n, s in zip(size, span, strict=True)))
        module = CONV[dims - 1](
            in_channels, out_channels, kernel, stride, padding_, dilation, groups, bias, dtype=torch.float64
        )
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(randn(seed + 1, *parameter.shape))
    batch = draw(st.integers(1, 2))
    return module.eval(), randn(seed, batch, in_channels, *size)


def _reference(module: nn.Module, x: torch.Tensor) -> Counted:
    if isinstance(module, CONV_TRANSPOSE):
        return reference.conv_transpose(
            x,
            module.weight,
            module.bias,
            module.stride,
            module.padding,
            module.output_padding,
            module.groups,
            module.dilation,
        )
    return reference.conv(x, module.weight, module.bias, module.stride, module.padding, module.dilation, module.groups)


@given(st.booleans().flatmap(convolutions))
def test_convolutions_count_as_the_reference(case: tuple[nn.Module, torch.Tensor]) -> None:
    module, x = case
    counted = _reference(module, x)
    with torch.no_grad():
        assert_same(counted.output, module(x))
        assert module_cost(module, x) == expected(counted)


@given(convolutions(transposed=False))
def test_functional_convolutions_count_as_the_reference(case: tuple[nn.Module, torch.Tensor]) -> None:
    module, x = case
    assert isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
    counted = _reference(module, x)
    function = FUNCTIONAL[x.ndim - 3]
    with torch.no_grad():
        got = function_cost(
            function, x, module.weight, module.bias, module.stride, module.padding, module.dilation, module.groups
        )
    assert got == expected(counted)


@given(st.booleans().flatmap(convolutions))
def test_convolutions_end_to_end(case: tuple[nn.Module, torch.Tensor]) -> None:
    module, x = case
    assert crawled_cost(module, x) == expected(_reference(module, x))


def test_a_hand_worked_convolution() -> None:
    """Conv1d 1→1, k = 3, padding 1, bias, on 4 elements: 4 outputs, each a window of 3 taps (the
    first and last outputs have one tap in the padding): 4·3 = 12 MACs; per output 3 multiplies,
    2 adds and the bias add: 4·6 = 24 FLOPs; DMAs: 12 input taps + 3 weights + 1 bias + 4 writes = 20."""
    module = nn.Conv1d(1, 1, 3, padding=1, dtype=torch.float64)
    x = randn(0, 1, 1, 4)
    counted = _reference(module, x)
    assert (counted.tally.reads["input"], counted.tally.padding["input"]) == (10, 2)
    assert expected(counted) == Cost(flops=24, macs=12, dmas=20)
    with torch.no_grad():
        assert module_cost(module, x) == Cost(flops=24, macs=12, dmas=20)


@pytest.mark.parametrize(("bias", "want"), [(False, Cost(flops=24, macs=12, dmas=24)), (True, Cost(32, 12, 26))])
def test_a_hand_worked_transposed_convolution(bias: bool, want: Cost) -> None:
    """ConvTranspose1d 1→2, k = 2, stride 2, padding 1 on 3 elements: every input element is
    multiplied into 2 channels × 2 taps: 12 MACs, each product added into a zeroed accumulator:
    24 FLOPs; the full output (length 6) is cropped to 4 (8 outputs); DMAs: 12 input reads +
    4 weights + 8 writes = 24. With a bias: 8 more adds (one per output, not per input) and
    2 more parameters: 32 FLOPs, 26 DMAs."""
    module = nn.ConvTranspose1d(1, 2, 2, stride=2, padding=1, bias=bias, dtype=torch.float64)
    x = randn(0, 1, 1, 3)
    with torch.no_grad():
        assert module_cost(module, x) == expected(_reference(module, x)) == want
