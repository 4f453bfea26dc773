"""What autograd keeps for backward, per op family, in bytes worked out by hand (float32, batch 1;
a storage saved by several nodes counts once)."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import fx, nn
from torch.nn import functional as F

from tests.passes.memory.test_internal import _really_saved
from tests.profiles import examples
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
        # elu_ keeps its result, no copy: x, and the first Linear's output overwritten in place, which
        # the second Linear keeps too (one storage); leaky_relu_ alike (recorded at the ATen level)
        (nn.Sequential(nn.Linear(4, 4), nn.ELU(inplace=True), nn.Linear(4, 4)), 16 + 16),
        (nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(inplace=True), nn.Linear(4, 4)), 16 + 16),
        # out of place it keeps its input: x, the first Linear's output, the activation's output
        (nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(), nn.Linear(4, 4)), 16 + 16 + 16),
    ],
    ids=[
        "linear",
        "dropout-eval",
        "dropout-train",
        "product",
        "scaled",
        "frozen-after",
        "frozen-before",
        "elu-in-place",
        "leaky-relu-in-place",
        "leaky-relu",
    ],
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


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.b(torch.relu(h)) + h


class _Gate(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.a(x)) * self.b(x)


class _Bilinear(nn.Module):
    """A bilinear layer of a tensor and its sigmoid (both inputs kept when either requires grad)."""

    def __init__(self, width: int, frozen: bool) -> None:
        super().__init__()
        self.layer = nn.Bilinear(width, width, width).requires_grad_(not frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x, x.sigmoid())


class _SelfProduct(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.tanh()


class _Scale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 + 1.0


class _InPlace(nn.Module):
    """Augmented assignments eager runs in place, whose result is read afterwards: a quotient by a sum of
    the tensor itself (ConViT's attention normalisation) and a product with a trained scale (LayerScale
    in place): autograd keeps a copy of the tensor made before it is overwritten."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.rand(width) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.exp() + 1
        y /= y.sum(dim=-1).unsqueeze(-1)
        y *= self.gamma
        return y @ y.transpose(-1, -2) @ y


class _Written(nn.Module):
    """Index writes into a new tensor and into an activation, by a slice and by an index tensor (which
    ``index_put_`` keeps), read afterwards."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("index", torch.tensor([0, width - 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.zeros_like(x)
        y[..., 1:] = x[..., :-1] * x[..., 1:]
        z = x.exp()
        z[..., self.index] = y[..., :2].tanh()
        return y * z


class _Mixing(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ x.transpose(-1, -2)).softmax(-1) @ x


class _Widen(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.back = nn.Linear(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.back(torch.cat([x, x.exp()], -1))


@fx.wrap
def _swish(x: torch.Tensor) -> torch.Tensor:
    """An ``fx.wrap``-ed function the registry has no formula for: traced through, its ops one by one."""
    return x * torch.sigmoid(x)


class _Composite(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _swish(x)


class _Strided(nn.Module):
    """A Linear over the sequence axis, of a transposed (strided) operand: recorded, its reshape may copy."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.mix = nn.Linear(length, length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # contiguous again: a frozen Linear on a strided operand is counted with the copy its reshape makes,
        # which autograd does not keep (left, benchmarks/mutation.md)
        return self.mix(x.transpose(-1, -2)).transpose(-1, -2).contiguous()


class _Masked(nn.Module):
    """Products and quotients with tensors that do not require grad (a buffer, a frozen parameter, a
    tensor the forward makes from a buffer): autograd keeps only what the other operand's gradient reads."""

    def __init__(self, width: int, op: str) -> None:
        super().__init__()
        self.register_buffer("mask", torch.rand(width) + 0.5)
        self.frozen = nn.Parameter(torch.rand(width) + 0.5, requires_grad=False)
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "mul":
            return x * self.mask
        if self.op == "frozen":
            return torch.mul(self.frozen, x)
        if self.op == "div":
            return x / self.mask
        if self.op == "rdiv":
            return self.mask / (x.exp() + 1)
        if self.op == "reciprocal":
            return 2 / (x.exp() + 1)
        if self.op == "made":
            return x * self.mask.exp()
        return x.__mul__(x.detach())  # a factor cut from the graph: only it is kept


class _Mix(nn.Module):
    """A product with a fixed matrix (a buffer) and a quotient of two activations."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("matrix", torch.rand(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.matrix) / (x.exp() + 1)


class _Gather(nn.Module):
    """Advanced indexing keeps its indices: a tensor the forward makes (a reversed arange), a list
    (made into a tensor inside the call), a buffer (model memory); basic indexing keeps nothing."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("order", torch.arange(width - 1, -1, -1))
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        made = torch.arange(self.width - 1, -1, -1, device=x.device) + 0
        return x[..., made] + x[..., list(range(self.width))] + x[..., self.order] + x[:, :, : self.width]


class _TokenHead(nn.Module):
    """A linear layer on the first token (ViT's head on its class token: a 2-D view of row stride ``L·W``),
    added back to every token."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.head = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.head(x[:, 0]).unsqueeze(1)


class _Relative(nn.Module):
    """An einsum whose batched layout needs a copy of an operand (timm MViTv2's relative positions,
    ``"byhwc,hkc->byhwk"``): its batch dim ``h`` lies between the dims ``b`` and ``w`` merged into one, so
    the reshape inside copies (where both exceed 1) and autograd keeps the copy, beside the operand
    itself, which the product after it keeps."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.rand(length, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack([x, x.exp()], -1)
        return (torch.einsum("bhwc,hkc->bhwk", stacked, self.table) * stacked).sum(-1)


class _Broadcast(nn.Module):
    """A matmul over broadcast batch dims (``(B, 1, L, W) @ (2, W, W)``): torch expands both operands to
    ``(B, 2, …)`` and reshapes them into copies, which autograd keeps, beside ``x``, which the product
    after it keeps."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.rand(2, width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(1) @ self.table).sum(1) * x


class _GlobalPool(nn.Module):
    """An adaptive average pool to size 1 (torch runs a ``mean``: nothing kept), broadcast back by a sum."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.adaptive_avg_pool1d(x, 1)


class _Padded(nn.Module):
    """``F.pad`` in a mode, cropped back (a view): reflect and replicate keep the input, the others nothing."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (1, 1), mode=self.mode)[..., 1:-1]


class _Area(nn.Module):
    """Interpolation in ``area`` mode to the same size: an adaptive average pool, which keeps its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=x.shape[-1], mode="area")


class _Masks(nn.Module):
    """A mask the way attention masks are made (factories, comparisons, logical and bitwise ops, integer and
    bool casts: nothing autograd differentiates, so nothing kept), a comparison of the activation, and casts of
    it there and back (kept by nothing: their backward casts the gradient); the products keep the masks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        positions = torch.arange(width, device=x.device)
        limit = x.new_full((1,), width - 2).long()
        keep = ((positions <= limit) & (positions != 1)) | positions.eq(0) | ~positions.ge(0)
        keep = torch.logical_or(keep, torch.zeros_like(positions).bool()).int().bool()
        return x.double().half().float() * keep * (x > 0).to(x.dtype)


_BLOCKS = {
    "linear": lambda w, n: nn.Linear(w, w),
    "frozen": lambda w, n: nn.Linear(w, w).requires_grad_(False),
    "relu": lambda w, n: nn.ReLU(),
    "relu_": lambda w, n: nn.ReLU(inplace=True),
    "relu6_": lambda w, n: nn.ReLU6(inplace=True),
    "hardswish_": lambda w, n: nn.Hardswish(inplace=True),
    "gelu": lambda w, n: nn.GELU(),
    "silu": lambda w, n: nn.SiLU(),
    "tanh": lambda w, n: nn.Tanh(),
    "sigmoid": lambda w, n: nn.Sigmoid(),
    "softmax": lambda w, n: nn.Softmax(-1),
    "log_softmax": lambda w, n: nn.LogSoftmax(-1),
    "elu": lambda w, n: nn.ELU(),
    "elu_": lambda w, n: nn.ELU(inplace=True),
    "leaky_relu": lambda w, n: nn.LeakyReLU(0.1),
    "leaky_relu_": lambda w, n: nn.LeakyReLU(0.1, inplace=True),
    "softplus": lambda w, n: nn.Softplus(),
    "mish": lambda w, n: nn.Mish(),
    "selu": lambda w, n: nn.SELU(),
    "selu_": lambda w, n: nn.SELU(inplace=True),
    "celu": lambda w, n: nn.CELU(0.5),
    "threshold": lambda w, n: nn.Threshold(0.1, 2.0),
    "threshold_": lambda w, n: nn.Threshold(0.1, 2.0, inplace=True),
    "hardshrink": lambda w, n: nn.Hardshrink(),
    "softshrink": lambda w, n: nn.Softshrink(),
    "rrelu": lambda w, n: nn.RReLU(),
    "lp_pool": lambda w, n: nn.LPPool1d(2, 1),
    "bilinear": lambda w, n: _Bilinear(w, frozen=False),
    "frozen_bilinear": lambda w, n: _Bilinear(w, frozen=True),
    "max_pool": lambda w, n: nn.MaxPool1d(3, 1, 1),
    "avg_pool": lambda w, n: nn.AvgPool1d(3, 1, 1, count_include_pad=False),
    "adaptive_pool": lambda w, n: nn.AdaptiveAvgPool1d(w),
    "global_pool": lambda w, n: _GlobalPool(),
    "reflect_pad": lambda w, n: _Padded("reflect"),
    "circular_pad": lambda w, n: _Padded("circular"),
    "area": lambda w, n: _Area(),
    "dropout": lambda w, n: nn.Dropout(0.5),
    "residual": lambda w, n: _Residual(w),
    "gate": lambda w, n: _Gate(w),
    "self_product": lambda w, n: _SelfProduct(),
    "scale": lambda w, n: _Scale(),
    "mixing": lambda w, n: _Mixing(),
    "widen": lambda w, n: _Widen(w),
    "composite": lambda w, n: _Composite(),
    "strided": lambda w, n: _Strided(n),
    "masked": lambda w, n: _Masked(w, "mul"),
    "frozen_factor": lambda w, n: _Masked(w, "frozen"),
    "divided": lambda w, n: _Masked(w, "div"),
    "divisor": lambda w, n: _Masked(w, "rdiv"),
    "reciprocal": lambda w, n: _Masked(w, "reciprocal"),
    "made_factor": lambda w, n: _Masked(w, "made"),
    "detached_factor": lambda w, n: _Masked(w, "detached"),
    "mix": lambda w, n: _Mix(w),
    "in_place": lambda w, n: _InPlace(w),
    "written": lambda w, n: _Written(w),
    "gather": lambda w, n: _Gather(w),
    "relative": lambda w, n: _Relative(n),
    "broadcast": lambda w, n: _Broadcast(w),
    "token_head": lambda w, n: _TokenHead(w),
    "masks": lambda w, n: _Masks(),
}
"""Blocks (built from W and L) mapping (B, L, W) to (B, L, W), each family's rule on its own or in combination. Left out
where the convention departs from what autograd keeps, by choice: norms (their per-row statistics are
not counted)."""


@settings(max_examples=examples(20))
@given(
    blocks=st.lists(st.sampled_from(sorted(_BLOCKS)), min_size=1, max_size=5),
    batch=st.integers(1, 3),
    length=st.integers(1, 5),
    width=st.integers(2, 6),
    training=st.booleans(),
    capture=st.sampled_from(["torch.fx", "eager-record", "real-forward"]),
)
# an in-place SELU keeps its result (it runs ``elu_``), an in-place Threshold a copy of its input
@example(blocks=["broadcast", "selu_", "adaptive_pool"], batch=1, length=1, width=2, training=False, capture="torch.fx")
@example(
    blocks=["broadcast", "threshold_", "adaptive_pool"], batch=1, length=1, width=2, training=False, capture="torch.fx"
)
# a real copy's parameter that autograd keeps (a product whose other factor requires grad) is no activation
# (a recorded module's too: the second bilinear layer keeps its weight for its input's gradient)
@example(blocks=["bilinear", "bilinear"], batch=1, length=1, width=2, training=False, capture="real-forward")
@example(blocks=["strided", "strided"], batch=1, length=2, width=2, training=False, capture="real-forward")
# average pools keep their input; an adaptive one to size 1 runs a mean and keeps nothing
@example(
    blocks=["linear", "avg_pool", "adaptive_pool", "global_pool"],
    batch=2,
    length=3,
    width=4,
    training=True,
    capture="torch.fx",
)
@example(
    blocks=["linear", "global_pool", "avg_pool"], batch=1, length=2, width=3, training=False, capture="eager-record"
)
@example(
    blocks=["linear", "reflect_pad", "circular_pad", "area"],
    batch=2,
    length=3,
    width=4,
    training=True,
    capture="torch.fx",
)
# writes in place, read afterwards: augmented assignments and index writes, each way of capturing
@example(blocks=["linear", "in_place", "written"], batch=2, length=3, width=4, training=True, capture="torch.fx")
@example(blocks=["linear", "in_place", "written"], batch=2, length=3, width=4, training=True, capture="eager-record")
@example(blocks=["linear", "in_place", "written"], batch=2, length=3, width=4, training=True, capture="real-forward")
# an einsum whose reshape copies an operand: the copy is kept, each way of capturing
@example(blocks=["relative"], batch=2, length=3, width=4, training=True, capture="torch.fx")
@example(blocks=["relative"], batch=2, length=3, width=4, training=False, capture="eager-record")
@example(blocks=["relative", "mixing"], batch=3, length=2, width=3, training=True, capture="real-forward")
# a matmul over broadcast batch dims: the expanded copies are kept
@example(blocks=["broadcast"], batch=2, length=3, width=4, training=True, capture="torch.fx")
@example(blocks=["broadcast", "gelu"], batch=1, length=2, width=3, training=False, capture="eager-record")
# a frozen linear layer on a strided input: autograd keeps its weight itself, the model's (a copy was counted)
@example(blocks=["broadcast", "reflect_pad", "frozen"], batch=1, length=2, width=2, training=False, capture="torch.fx")
# a linear layer on a strided matrix (the first token of each sequence): read in place, no copy kept
@example(blocks=["linear", "token_head"], batch=3, length=4, width=5, training=True, capture="torch.fx")
@example(blocks=["token_head", "relu"], batch=2, length=3, width=4, training=True, capture="eager-record")
@example(blocks=["linear", "masks"], batch=2, length=3, width=4, training=True, capture="torch.fx")
@example(blocks=["masks", "gelu"], batch=1, length=2, width=3, training=False, capture="eager-record")
def test_saved_bytes_equal_what_autograd_keeps_in_a_real_forward(
    blocks: list[str], batch: int, length: int, width: int, training: bool, capture: str
) -> None:
    """A chain of blocks (trainable, frozen or no parameters; in place or not; eval or training):
    the static saved bytes equal the distinct storages autograd keeps when the model runs for real
    (an independent count: every family's rule, the requires-grad flags that decide who saves, and a
    storage saved by several nodes counted once), whichever way the forward is captured: traced by
    fx, recorded on fake tensors (a branch on a size) or recorded in a real forward (a branch on a value),
    each of which sees its own spellings of one op (``operator.mul``, ``Tensor.__mul__``…)."""
    torch.manual_seed(0)
    chain = nn.Sequential(*(_BLOCKS[name](width, length) for name in blocks))
    model = (chain if capture == "torch.fx" else _Branching(chain, capture)).train(training)
    x = torch.randn(batch, length, width)
    report = crawl_module(model, args=(x,), batch_size=None)
    assert report.context.capture == capture
    assert report.memory is not None
    assert report.memory.saved_activation_bytes == _really_saved(model, x)


class _Branching(nn.Module):
    """A chain behind a branch fx cannot trace: on a table keyed by a size (a proxy is no key: recorded
    on fake tensors) or on a value (recorded in a real forward)."""

    wide: ClassVar[dict[int, bool]] = {width: width > 0 for width in range(64)}

    def __init__(self, chain: nn.Module, capture: str) -> None:
        super().__init__()
        self.chain, self.on_value = chain, capture == "real-forward"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.abs().sum() >= 0) if self.on_value else self.wide[x.shape[-1]]:
            return self.chain(x)
        return x


class _Resampled(nn.Module):
    """A linear layer, ``nn.Upsample`` in a mode, then ``F.pad`` in a mode (or none)."""

    def __init__(self, mode: str, pad: str | None) -> None:
        super().__init__()
        self.linear, self.up, self.pad = nn.Linear(8, 8), nn.Upsample(size=(6, 6), mode=mode), pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(self.linear(x))
        return F.pad(h, (1, 1, 1, 1), mode=self.pad) if self.pad else h


@pytest.mark.parametrize(
    ("mode", "pad"),
    [
        ("area", None),
        ("nearest", None),
        ("bilinear", None),
        ("area", "reflect"),
        ("nearest", "replicate"),
        ("nearest", "circular"),
        ("nearest", "constant"),
    ],
)
def test_resampling_and_padding_modules_keep_what_autograd_keeps(mode: str, pad: str | None) -> None:
    """``nn.Upsample`` by its module's mode (area: an adaptive average pool, which keeps its input) and ``F.pad`` by
    its argument (reflect and replicate keep the input); the others keep nothing."""
    model = _Resampled(mode, pad).train()
    x = torch.randn(2, 3, 8, 8)
    report = crawl_module(model, args=(x,), batch_size=None)
    assert report.memory is not None
    assert report.memory.saved_activation_bytes == _really_saved(model, x)
