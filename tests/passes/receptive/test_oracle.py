"""Receptive field along graph paths against the gradient-footprint oracle.

The oracle is independent of our formulas: with every weight positive (biases 0), the sum over
its (dilated) window instead of a max pool, ReLU instead of ReLU6 and an all-ones input, the input
pixels with a non-zero gradient of one output unit are exactly its receptive field (clipped to the
image).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.overrides import TorchFunctionMode

from tests.profiles import examples
from torchscan import crawl_module
from torchscan.passes.receptive import receptive_fields
from torchscan.passes.receptive.geometry import Field
from torchscan.records import RECORD
from torchscan.report import Report

# ---------------------------------------------------------------- the oracle

_MAX_POOLS = {F.max_pool1d: 1, F.max_pool2d: 2, F.max_pool3d: 3}
_MAX_POOL_OF = {dims: pool for pool, dims in _MAX_POOLS.items()}
_DEPTHWISE = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_POOL_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")


def _per_dim(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * dims


def window_sum(x: torch.Tensor, dims: int, bound: dict[str, Any]) -> torch.Tensor:
    """A max pool's footprint: each output unit the sum of its (dilated) window — a depthwise
    convolution of ones over the input padded as the pool pads it (``ceil_mode``'s last window
    included), cut to the pool's own output size."""
    kernel = _per_dim(bound["kernel_size"], dims)
    stride = _per_dim(bound.get("stride") or kernel, dims)
    padding = _per_dim(bound.get("padding", 0), dims)
    dilation = _per_dim(bound.get("dilation", 1), dims)
    with torch.no_grad():
        sizes = _MAX_POOL_OF[dims](x, kernel, stride, padding, dilation, bound.get("ceil_mode", False)).shape[2:]
    pads: list[int] = []
    for n, o, k, s, p, d in reversed(list(zip(x.shape[2:], sizes, kernel, stride, padding, dilation, strict=True))):
        pads += [p, max(p, (o - 1) * s + d * (k - 1) + 1 - n - p)]
    weight = torch.ones((x.shape[1], 1, *kernel), dtype=x.dtype)
    y = _DEPTHWISE[dims](F.pad(x, pads), weight, stride=stride, dilation=dilation, groups=x.shape[1])
    return y[(Ellipsis, *[slice(0, o) for o in sizes])]


class _OracleMode(TorchFunctionMode):
    """Window sums instead of max pooling, ReLU instead of ReLU6/Hardtanh (which would saturate)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _MAX_POOLS:
            bound = dict(zip(_POOL_ARGS, args[1:], strict=False)) | kwargs
            assert not bound.get("return_indices", False)
            return window_sum(args[0], _MAX_POOLS[func], bound)
        if func in (F.hardtanh, F.relu6):
            return F.relu(args[0])
        return func(*args, **kwargs)


def _positive(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model).double().eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor):
                if weight.ndim >= 2:
                    weight.copy_(
                        (torch.rand(weight.shape, generator=generator, dtype=weight.dtype) + 1) / weight[0].numel()
                    )
                else:
                    weight.fill_(1.0)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
    return model


def footprint(
    model: nn.Module, shape: Sequence[int], layer: nn.Module | None = None
) -> tuple[list[tuple[int, int]], tuple[int, ...]]:
    """Per spatial dim, the first and last input index with a non-zero gradient of the central
    output unit (all channels) of ``layer`` (the model output when None); and that unit."""
    oracle = _positive(model)
    target = oracle.get_submodule(_path_of(model, layer)) if layer is not None else None
    captured: list[torch.Tensor] = []
    handle = target.register_forward_hook(lambda m, i, o: captured.append(o)) if target is not None else None
    x = torch.ones((1, *shape), dtype=torch.float64, requires_grad=True)
    with _OracleMode():
        output = oracle(x)
    if handle is not None:
        handle.remove()
    y = captured[0] if captured else output
    unit = tuple(n // 2 for n in y.shape[2:])
    y[(0, slice(None), *unit)].sum().backward()
    nonzero = (x.grad[0].abs().sum(0) > 0).nonzero()
    assert len(nonzero), "empty footprint"
    return [(int(nonzero[:, j].min()), int(nonzero[:, j].max())) for j in range(len(shape) - 1)], unit


def _path_of(model: nn.Module, layer: nn.Module) -> str:
    return next(name for name, module in model.named_modules() if module is layer)


def _clip(lo: int, hi: int, n: int) -> tuple[int, int]:
    return max(lo, 0), min(hi, n - 1)


# random nets ------------------------------------------------------------------

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONVT = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
C = 2


class Residual(nn.Module):
    def __init__(self, dims: int, kernel: tuple[int, ...], dilation: int) -> None:
        super().__init__()
        padding = tuple(dilation * (k - 1) // 2 for k in kernel)
        self.conv = _CONV[dims](C, C, kernel, padding=padding, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.conv(x))


class Concat(nn.Module):
    def __init__(self, dims: int, kernels: list[tuple[int, ...]], dilations: list[int], stride: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            _CONV[dims](C, C // 2 or 1, k, stride=stride, dilation=d, padding=tuple(d * (n - 1) // 2 for n in k))
            for k, d in zip(kernels, dilations, strict=True)
        )
        self.mix = _CONV[dims](len(kernels) * (C // 2 or 1), C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([branch(x) for branch in self.branches], dim=1))


class Misaligned(nn.Module):
    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dims = dims
        self.a = _CONV[dims](C, C, 3, padding=1)
        self.b = _CONV[dims](C, C, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x)[(Ellipsis, *[slice(None, -2)] * self.dims)] + self.b(x)


class Upsample(nn.Module):
    def __init__(self, factor: int, mode: str) -> None:
        super().__init__()
        self.factor, self.mode = factor, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "size":  # by output size, no scale factor
            return F.interpolate(x, size=[self.factor * n for n in x.shape[2:]])
        return F.interpolate(x, scale_factor=self.factor, mode=self.mode)


class Layout(nn.Module):
    """Views and indexing that leave the spatial dims where they were (a round trip), or crop them."""

    KINDS = ("flatten", "reshape", "transpose", "permute", "unsqueeze", "crop", "crop-end")

    def __init__(self, kind: str, dims: int) -> None:
        super().__init__()
        self.kind, self.dims = kind, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        if self.kind == "flatten":
            return x.flatten(2).unflatten(2, spatial)
        if self.kind == "reshape":
            return x.reshape(x.shape[0], x.shape[1], -1).view(*x.shape[:2], *spatial)
        if self.kind == "transpose":
            return x.transpose(1, -1).transpose(-1, 1)
        if self.kind == "permute":
            order = (0, *range(2, 2 + self.dims), 1)
            inverse = (0, 1 + self.dims, *range(1, 1 + self.dims))
            return x.permute(*order).contiguous().permute(*inverse)
        if self.kind == "unsqueeze":
            return x.unsqueeze(2).unsqueeze(-1).squeeze(-1).squeeze(2)
        if self.kind == "crop":  # drop the first unit of the last dim, keep every other dim whole
            return x[:, :, ..., 1:]
        return x[..., :-1, :] if self.dims > 1 else x[:, :, :-2]  # crop the end of a dim


def _tuple_of(dims: int, values: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[values] * dims)


@st.composite
def blocks(draw: st.DrawFn, dims: int, chain_only: bool) -> nn.Module:
    small = dims == 3
    kinds = ["conv", "pool", "tconv", "up", "layout"] + ([] if chain_only else ["residual", "concat", "misaligned"])
    kind = draw(st.sampled_from(kinds))
    kmax = 3 if small else 7
    if kind == "conv":
        kernel = draw(_tuple_of(dims, st.integers(1, kmax)))
        stride = draw(_tuple_of(dims, st.integers(1, 2)))
        dilation = draw(_tuple_of(dims, st.integers(1, 2 if small else 3)))
        if draw(st.booleans()):  # torch pads d·(k − 1) // 2 before, the rest after (even kernels too)
            return nn.Sequential(_CONV[dims](C, C, kernel, 1, "same", dilation), nn.ReLU())
        padding = tuple(draw(st.integers(0, d * (k - 1) // 2)) for k, d in zip(kernel, dilation, strict=True))
        return nn.Sequential(_CONV[dims](C, C, kernel, stride, padding, dilation), nn.ReLU())
    if kind == "pool":
        kernel = draw(_tuple_of(dims, st.integers(1, 3)))
        stride = draw(_tuple_of(dims, st.integers(1, 2)))
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        ceil_mode = draw(st.booleans())
        if draw(st.booleans()):
            dilation = draw(_tuple_of(dims, st.integers(1, 2 if small else 3)))
            return _MAXPOOL[dims](kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        return _AVGPOOL[dims](kernel, stride, padding, ceil_mode=ceil_mode)
    if kind == "tconv":
        stride = draw(_tuple_of(dims, st.integers(1, 2)))
        kernel = tuple(draw(st.integers(s, 4)) for s in stride)
        padding = tuple(draw(st.integers(0, k - 1)) for k in kernel)
        return _CONVT[dims](C, C, kernel, stride, padding)
    if kind == "up":
        mode = draw(st.sampled_from(["nearest", "linear"]))
        factor = draw(st.sampled_from([2, 3]))
        return Upsample(factor, "nearest" if mode == "nearest" else _LINEAR[dims])
    if kind == "layout":
        # reshape and crops only in the fixed cases: a crop after a reshape round trip is not followed
        # (rf-unsupported), and the branched nets crop (Misaligned)
        return Layout(draw(st.sampled_from(["flatten", "transpose", "permute", "unsqueeze"])), dims)
    if kind == "residual":
        return Residual(dims, draw(_tuple_of(dims, st.sampled_from([1, 3, 5]))), draw(st.integers(1, 2)))
    if kind == "concat":
        count = draw(st.integers(2, 3))
        kernels = [draw(_tuple_of(dims, st.sampled_from([1, 3] if small else [1, 3, 5, 7]))) for _ in range(count)]
        dilations = [draw(st.integers(1, 2)) for _ in range(count)]
        return Concat(dims, kernels, dilations, draw(st.integers(1, 2)))
    return Misaligned(dims)


@st.composite
def nets(draw: st.DrawFn, chain_only: bool) -> tuple[nn.Module, int]:
    dims = draw(st.sampled_from([1, 2, 2, 3]))
    depth = draw(st.integers(1, 2 if dims == 3 else 4))
    layers = [draw(blocks(dims, chain_only)) for _ in range(depth)]
    return nn.Sequential(_CONV[dims](1, C, 1), *layers).eval(), dims


def _predicted(report: Report) -> Field:
    fields = receptive_fields(report.records)
    (output,) = [name for name, data in report.records.nodes(data=True) if data[RECORD].op == "output"]
    (last,) = report.records.predecessors(output)
    field = fields.outcomes[last]
    assert isinstance(field, Field), (field, fields.diagnostics)
    return field


def _valid_size(model: nn.Module, dims: int) -> tuple[Report, int] | None:
    for n in (8, 16, 32, 64):
        try:
            shape = (1, *[n] * dims)
            with torch.no_grad():
                model(torch.ones(1, *shape))
            return crawl_module(model, shape, receptive_field=True), n
        except RuntimeError:
            continue
    return None


def check_oracle(model: nn.Module, dims: int) -> None:
    found = _valid_size(model, dims)
    if found is None:
        return
    report, _ = found
    field = _predicted(report)
    assert not [d for d in report.diagnostics if d.code.startswith("rf-")], report.diagnostics
    summaries = [span.summary() for span in field.spans]
    # size each dim so that the central unit's field lies inside the input (no clipping)
    sizes = [max(16, 2 * (abs(s.start) + s.size) + 4 * int(s.jump + 1)) for s in summaries]
    for _ in range(4):
        bounds, unit = footprint(model, (1, *sizes))
        expected = [span.extent_at(i) for span, i in zip(field.spans, unit, strict=True)]
        if all(lo >= 0 and hi < n for (lo, hi), n in zip(expected, sizes, strict=True)):
            break
        sizes = [2 * n for n in sizes]
    else:
        pytest.fail(f"the field {expected} never fits inside the input {sizes}")
    assert bounds == expected
    # each dim against its own unit, by position (not the unit of the first span equal to its own)
    for (lo, hi), span, summary, i in zip(bounds, field.spans, summaries, unit, strict=True):
        if span.left.period == span.right.period == 1:  # affine: the same size at every unit
            assert hi - lo + 1 == summary.size
            assert lo == summary.start + summary.jump * i


@settings(max_examples=examples(25))
@given(nets(chain_only=True))
def test_oracle_random_chains(net: tuple[nn.Module, int]) -> None:
    check_oracle(*net)


@settings(max_examples=examples(25))
@given(nets(chain_only=False))
def test_oracle_random_branched_nets(net: tuple[nn.Module, int]) -> None:
    check_oracle(*net)


def _stem(dims: int, *layers: nn.Module) -> tuple[nn.Module, int]:
    return nn.Sequential(_CONV[dims](1, C, 1), *layers).eval(), dims


class Call(nn.Module):
    """One functional call, ``function(x, *args, **kwargs)``, its arguments by position where given so;
    with ``weight`` (a shape), a parameter of that shape goes first (a convolution's kernel)."""

    def __init__(self, function: Any, *args: Any, weight: tuple[int, ...] | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.function, self.args, self.kwargs = function, args, kwargs
        self.weight = nn.Parameter(torch.ones(weight)) if weight is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = self.args if self.weight is None else (self.weight, *self.args)
        return self.function(x, *args, **self.kwargs)


_WINDOW_CASES = {
    "dilated max pool 1d": _stem(1, nn.MaxPool1d(3, 2, 1, dilation=3)),
    "dilated max pool 2d, ceil": _stem(2, nn.MaxPool2d((3, 2), (1, 2), (1, 0), (2, 3), ceil_mode=True)),
    "dilated max pool 3d": _stem(3, nn.MaxPool3d(2, 1, 0, dilation=(1, 2, 3))),
    "dilated max pools in a chain": _stem(2, nn.MaxPool2d(3, 1, dilation=2), nn.MaxPool2d(2, 2, dilation=(3, 1))),
    "same, dilated, odd kernel": _stem(2, _CONV[2](C, C, (3, 5), padding="same", dilation=(2, 3)), nn.ReLU()),
    "same, dilated, even kernel": _stem(1, _CONV[1](C, C, 4, padding="same", dilation=3), nn.ReLU()),
    "same after a stride": _stem(2, _CONV[2](C, C, 3, 2), _CONV[2](C, C, (2, 3), padding="same", dilation=2)),
    "same, 3d": _stem(3, _CONV[3](C, C, (3, 2, 1), padding="same", dilation=(2, 2, 1))),
    "lp pool 1d": _stem(1, nn.LPPool1d(2, 3, 2)),
    "lp pool 2d": _stem(2, nn.LPPool2d(2, (3, 2), (1, 2))),
    "pixel shuffle": _stem(2, _CONV[2](C, 4 * C, 3), nn.PixelShuffle(2), _CONV[2](C, C, 3)),
    "pixel unshuffle": _stem(2, nn.PixelUnshuffle(2), _CONV[2](4 * C, C, 3)),
    "nearest-exact": _stem(1, Upsample(3, "nearest-exact"), _CONV[1](C, C, 3)),
    "upsample to a size": _stem(2, Upsample(2, "size"), _CONV[2](C, C, 3)),
    # the functional spellings, arguments by position, defaults left out
    "F.conv2d": _stem(2, Call(F.conv2d, None, (2, 1), (1, 2), (2, 1), weight=(C, C, 3, 3))),
    "F.conv1d same": _stem(1, Call(F.conv1d, None, 1, "same", 2, weight=(C, C, 4))),
    "F.conv3d defaults": _stem(3, Call(F.conv3d, weight=(C, C, 3, 2, 1))),
    "F.conv_transpose2d": _stem(2, Call(F.conv_transpose2d, None, (2, 3), (1, 0), weight=(C, C, 4, 3))),
    "F.conv_transpose1d defaults": _stem(1, Call(F.conv_transpose1d, weight=(C, C, 3))),
    "F.max_pool2d": _stem(2, Call(F.max_pool2d, (3, 2), (1, 2), (1, 0), (2, 1))),
    "F.max_pool1d default stride": _stem(1, Call(F.max_pool1d, 3)),
    "F.max_pool3d": _stem(3, Call(F.max_pool3d, 2, 1, 1, 2)),
    "F.avg_pool1d": _stem(1, Call(F.avg_pool1d, 3, 2, 1)),
    "F.avg_pool2d default stride": _stem(2, Call(F.avg_pool2d, (2, 3))),
    "F.avg_pool3d": _stem(3, Call(F.avg_pool3d, (1, 2, 3), 1, (0, 1, 1))),
    "F.lp_pool1d default stride": _stem(1, Call(F.lp_pool1d, 2.0, 3)),
    "F.lp_pool2d": _stem(2, Call(F.lp_pool2d, 2.0, (3, 2), (1, 2))),
    "F.interpolate bilinear": _stem(2, Call(F.interpolate, None, 2, "bilinear"), _CONV[2](C, C, 3)),
    "F.interpolate nearest": _stem(1, Call(F.interpolate, None, 3), _CONV[1](C, C, 3)),
    "F.pixel_shuffle": _stem(2, _CONV[2](C, 4 * C, 3), Call(F.pixel_shuffle, 2), _CONV[2](C, C, 3)),
    "F.pixel_unshuffle": _stem(2, Call(F.pixel_unshuffle, 2), _CONV[2](4 * C, C, 3)),
    "F.pad and crop": _stem(2, Call(F.pad, (2, -1, 0, 3)), _CONV[2](C, C, 3)),
    "F.pad 3d": _stem(3, Call(F.pad, (1, 0, 0, 2, 3, 1)), _CONV[3](C, C, 3)),
    # the padding modules: a window k = s = 1 with padding = the left pad, per axis
    "ZeroPad2d": _stem(2, nn.ZeroPad2d((1, 2, 3, 0)), _CONV[2](C, C, 3)),
    "ConstantPad1d": _stem(1, nn.ConstantPad1d((2, 1), 0.0), _CONV[1](C, C, 3)),
    "ReflectionPad2d": _stem(2, nn.ReflectionPad2d((2, 0, 1, 1)), _CONV[2](C, C, 3)),
    "ReplicationPad3d": _stem(3, nn.ReplicationPad3d((1, 0, 0, 1, 2, 0)), _CONV[3](C, C, 3)),
    "CircularPad1d": _stem(1, nn.CircularPad1d((3, 1)), _CONV[1](C, C, 3)),
    **{f"layout {kind}": _stem(2, _CONV[2](C, C, 3), Layout(kind, 2), _CONV[2](C, C, 3)) for kind in Layout.KINDS},
    **{f"layout {kind} 3d": _stem(3, _CONV[3](C, C, 3), Layout(kind, 3)) for kind in Layout.KINDS},
    # views of a dim of size 1 (a kernel of 8 on the 8 inputs of the smallest size tried), then a window
    # that still moves it ("same" with an even kernel: 0 before, 1 after)
    **{
        f"layout {kind} of a size-1 dim": _stem(
            1, _CONV[1](C, C, 8), Layout(kind, 1), _CONV[1](C, C, 2, padding="same"), nn.ReLU()
        )
        for kind in ("flatten", "reshape", "transpose", "permute", "unsqueeze")
    },
    **{
        f"layout {kind} of size-1 {dims}": _stem(
            2, _CONV[2](C, C, kernel), Layout(kind, 2), _CONV[2](C, C, 3, padding=1)
        )
        for kind in ("flatten", "reshape", "unsqueeze")
        for dims, kernel in (("rows", (8, 3)), ("rows and columns", 8))
    },
}


@pytest.mark.parametrize("case", _WINDOW_CASES.values(), ids=_WINDOW_CASES.keys())
def test_oracle_fixed_windows_and_layouts(case: tuple[nn.Module, int]) -> None:
    """The windows the random nets draw only now and then, and the rarer window ops and views, every run."""
    assert _valid_size(*case) is not None
    check_oracle(*case)


# torchvision models -----------------------------------------------------------


def check_model(model: nn.Module, layer: str, long: int, short: int, size: int) -> None:
    """The central unit of ``layer`` on a tall and a wide input: along the long dim the field lies
    inside the input and the footprint equals it exactly (extent = receptive field size, position =
    start); along the short dim it is clipped, and the footprint lies within the clipped field (valid
    convolutions drop border units, so the edge may be missing)."""
    model = model.eval()
    for shape in ((3, long, short), (3, short, long)):
        row = crawl_module(model, shape, receptive_field=True).row(layer)
        assert row.receptive_field == (size, size)
        bounds, unit = footprint(model, shape, model.get_submodule(layer))
        expected = [
            _clip(-pad + i * stride, -pad + i * stride + rf - 1, n)
            for i, stride, pad, rf, n in zip(
                unit, row.effective_stride, row.effective_padding, row.receptive_field, shape[1:], strict=True
            )
        ]
        long_dim = 0 if shape[1] == long else 1
        assert bounds[long_dim] == expected[long_dim]
        assert bounds[long_dim][1] - bounds[long_dim][0] + 1 == size
        (lo, hi), (clipped_lo, clipped_hi) = bounds[1 - long_dim], expected[1 - long_dim]
        assert clipped_lo <= lo <= hi <= clipped_hi


def test_oracle_resnet18() -> None:
    check_model(torchvision.models.resnet18(), "layer4", 480, 64, 435)


_SLOW_MODELS = [
    ("vgg16", "features.28", 420, 64, 196),  # last conv
    ("vgg16", "features", 420, 64, 212),  # after the last max pool (the original tool's 212)
    ("resnet50", "layer4", 480, 64, 427),
    ("inception_v3", "Mixed_7c", 1440, 96, 1311),
    ("mobilenet_v2", "features", 544, 64, 491),
    ("densenet121", "features", 2144, 64, 2071),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "layer", "long", "short", "size"), _SLOW_MODELS)
def test_oracle_torchvision(name: str, layer: str, long: int, short: int, size: int) -> None:
    kwargs = {"init_weights": False, "aux_logits": False} if name == "inception_v3" else {}
    check_model(torchvision.models.get_model(name, weights=None, **kwargs), layer, long, short, size)
