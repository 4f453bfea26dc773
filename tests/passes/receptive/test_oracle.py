"""Receptive field along graph paths: literal tables, and the gradient-footprint oracle.

The oracle is independent of our formulas: with every weight positive (biases 0), average instead
of max pooling, ReLU instead of ReLU6 and an all-ones input, the input pixels with a non-zero
gradient of one output unit are exactly its receptive field (clipped to the image).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.overrides import TorchFunctionMode

from torchscan import crawl_module
from torchscan.cli import main
from torchscan.passes.receptive import DEFAULT_RULES, Marker, RuleTable, receptive_fields
from torchscan.passes.receptive.geometry import Bound, Field, Span
from torchscan.records import RECORD
from torchscan.report import Report

# ---------------------------------------------------------------- geometry


def test_classic_recurrence_three_3x3_convs() -> None:
    span = Span.identity()
    sizes = []
    for _ in range(3):
        span = span.window(1, 1, 3)
        sizes.append(span.summary().size)
    assert sizes == [3, 5, 7]  # the original tool's latest release shows 3, 3, 3
    assert span.summary().start == -3


@pytest.mark.parametrize(
    ("layers", "size", "jump", "start"),
    [
        ([(2, 3, 7)], 7, 2, -3),  # ResNet stem conv: k7 s2 p3
        ([(2, 3, 7), (2, 1, 3)], 11, 4, -5),  # + max pool k3 s2 p1
        ([(1, 0, 5), (1, 0, 5)], 9, 1, 0),  # dilation 2 of a 3-kernel is an extent of 5
        ([(4, 0, 4), (1, 1, 3)], 12, 4, -4),  # patchify then 3x3
    ],
)
def test_window_table(layers: list[tuple[int, int, int]], size: int, jump: int, start: int) -> None:
    span = Span.identity()
    for stride, padding, extent in layers:
        span = span.window(stride, padding, extent)
    assert span.summary().size == size
    assert span.summary().jump == jump
    assert span.summary().start == start


def test_transposed_shrinks_jump_and_varies_by_position() -> None:
    span = Span.identity().window(2, 1, 3).transposed(2, 1, 4)  # conv k3 s2 p1, then convT k4 s2 p1
    assert [span.extent_at(i) for i in range(4)] == [(-3, 1), (-1, 3), (-1, 3), (1, 5)]
    assert span.summary().size == 5
    assert span.summary().jump == 1


def test_bound_reduces_its_period() -> None:
    bound = Bound.identity().compose(1, 0, 2).compose(2, 0)  # upsample x2 then stride 2: identity
    assert bound == Bound((0,), 1)


def test_hull_of_misaligned_paths() -> None:
    left = Span.identity().window(1, 1, 3)  # [i - 1, i + 1]
    right = Span.identity().window(1, 0, 3)  # [i, i + 2]
    assert left.hull(right).extent_at(0) == (-1, 2)


# ---------------------------------------------------------------- literal models


def _report(model: nn.Module, shape: Sequence[int]) -> Report:
    return crawl_module(model.eval(), tuple(shape), receptive_field=True)


class PerDim(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Conv2d(2, 2, (1, 7), stride=(1, 2), padding=(0, 3))
        self.tall = nn.Conv2d(2, 2, (3, 1), padding=(1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tall(self.wide(x))


class Shifted(nn.Module):
    """Two paths whose fields are misaligned: [i - 1, i + 1] and [i, i + 2]."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(1, 1, 3, padding=1)
        self.b = nn.Conv1d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x)[..., :-2] + self.b(x)


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.mlp = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = self.mlp(tokens)
        scores = (tokens @ tokens.transpose(1, 2)).softmax(-1)
        return scores @ tokens


class Shuffle(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = F.max_pool2d(x, 2)
        return x.view(n, 2, c // 2, h // 2, w // 2).transpose(1, 2).reshape(n, c, h // 2, w // 2)


class Unknown(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cumsum(x, dim=2))


@pytest.mark.parametrize(
    ("model", "shape", "row", "size", "stride", "padding"),
    [
        (nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=1) for _ in range(3))), (1, 16, 16), "2", (7, 7), (1, 1), (3, 3)),
        (PerDim(), (2, 20, 20), "wide", (1, 7), (1, 2), (0, 3)),
        (PerDim(), (2, 20, 20), "tall", (3, 7), (1, 2), (1, 3)),
        (nn.Conv1d(1, 1, 3, dilation=2, padding=2), (1, 16), "", None, None, None),
        (nn.Sequential(nn.Conv3d(1, 1, (1, 3, 5), stride=(1, 1, 2))), (1, 8, 8, 8), "0",
         (1, 3, 5), (1, 1, 2), (0, 0, 0)),
        (nn.Sequential(nn.Conv2d(1, 1, 3, 2, 1), nn.ConvTranspose2d(1, 1, 4, 2, 1)), (1, 8, 8), "1",
         (5, 5), (1, 1), (3, 3)),
        (nn.Sequential(nn.Identity(), nn.Upsample(scale_factor=2)), (1, 4, 4), "1", (1, 1), (0.5, 0.5), (0, 0)),
        (Shifted(), (1, 16), "add", (4,), (1,), (1,)),
        (Tokens(), (3, 16, 16), "mlp", (4, 4), (4, 4), (0, 0)),
        (Tokens(), (3, 16, 16), "matmul_1", "global", "global", "global"),
        (Shuffle(), (4, 8, 8), "reshape", (2, 2), (2, 2), (0, 0)),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2)), (1, 8, 8), "1",
         "global", "global", "global"),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d((3, 1))), (1, 9, 8), "1", (5, 8), (7 / 3, 6), (0, 0)),
        (nn.Sequential(nn.AdaptiveAvgPool2d((3, 4))), (1, 9, 8), "0", (3, 2), (3, 2), (0, 0)),
        (Unknown(), (1, 8, 8), "conv", "unknown", "unknown", "unknown"),
    ],
)  # fmt: skip
def test_rows(model: nn.Module, shape: Sequence[int], row: str, size: Any, stride: Any, padding: Any) -> None:
    report = _report(model, shape)
    if not row:  # a bare leaf model: its only row
        fields = receptive_fields(report.records)
        (node,) = [name for name, data in report.records.nodes(data=True) if data[RECORD].op == "call_module"]
        summary = fields.of(node)
        assert not isinstance(summary, Marker) and summary is not None
        assert [f.size for f in summary] == [5]
        return
    found = report.row(row)
    assert (found.receptive_field, found.effective_stride, found.effective_padding) == (size, stride, padding)


def test_adaptive_pool_global_only_when_every_spatial_dim_pools_to_one() -> None:
    report = _report(nn.Sequential(nn.AdaptiveAvgPool2d((1, 2))), (1, 4, 4))
    assert report.row("0").receptive_field == (4, 2)


def test_unknown_op_stops_with_a_diagnostic() -> None:
    report = _report(Unknown(), (1, 8, 8))
    codes = {diagnostic.code for diagnostic in report.diagnostics}
    assert "rf-unknown-op" in codes
    assert report.row("cumsum").receptive_field == "unknown"


def test_no_spatial_input() -> None:
    report = _report(nn.Sequential(nn.Linear(4, 2)), (4,))
    assert report.row("0").receptive_field is None
    assert "rf-no-spatial-input" in {diagnostic.code for diagnostic in report.diagnostics}


def test_off_by_default_and_exported() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1))
    plain = crawl_module(model, (1, 8, 8))
    assert plain.row("0").receptive_field is None
    layers = _report(model, (1, 8, 8)).to_dict()["layers"]
    assert layers[0]["receptive_field"] == [3, 3]
    assert layers[0]["effective_stride"] == [1, 1]
    assert layers[0]["effective_padding"] == [0, 0]
    assert layers[1]["receptive_field"] == "global"


def test_table_column_and_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resnet18", "--receptive-field", "--max-depth", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "Receptive field" in text
    assert "435x435" in text


def test_rule_table() -> None:
    class MyConv(nn.Conv2d):
        pass

    class OwnForward(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    assert DEFAULT_RULES.lookup(MyConv) is DEFAULT_RULES.lookup(nn.Conv2d) is not None
    assert DEFAULT_RULES.lookup(OwnForward) is None
    table = RuleTable("test")
    table.register(nn.ReLU)(lambda call, operands: Marker.GLOBAL)
    with pytest.raises(ValueError, match="twice"):
        table.register(nn.ReLU)(lambda call, operands: Marker.GLOBAL)


# ---------------------------------------------------------------- the oracle

_MAX_TO_AVG = {F.max_pool1d: F.avg_pool1d, F.max_pool2d: F.avg_pool2d, F.max_pool3d: F.avg_pool3d}
_POOL_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")


class _OracleMode(TorchFunctionMode):
    """Average instead of max pooling, ReLU instead of ReLU6/Hardtanh (which would saturate)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _MAX_TO_AVG:
            bound = dict(zip(_POOL_ARGS, args[1:], strict=False)) | kwargs
            assert bound.get("dilation", 1) in (1, (1, 1), [1, 1]) and not bound.get("return_indices", False)
            return _MAX_TO_AVG[func](
                args[0],
                bound["kernel_size"],
                bound.get("stride"),
                bound.get("padding", 0),
                ceil_mode=bound.get("ceil_mode", False),
            )
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
        return F.interpolate(x, scale_factor=self.factor, mode=self.mode)


def _tuple_of(dims: int, values: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[values] * dims)


@st.composite
def blocks(draw: st.DrawFn, dims: int, chain_only: bool) -> nn.Module:
    small = dims == 3
    kinds = ["conv", "pool", "tconv", "up"] + ([] if chain_only else ["residual", "concat", "misaligned"])
    kind = draw(st.sampled_from(kinds))
    kmax = 3 if small else 7
    if kind == "conv":
        kernel = draw(_tuple_of(dims, st.integers(1, kmax)))
        stride = draw(_tuple_of(dims, st.integers(1, 2)))
        dilation = draw(_tuple_of(dims, st.integers(1, 2 if small else 3)))
        padding = tuple(draw(st.integers(0, d * (k - 1) // 2)) for k, d in zip(kernel, dilation, strict=True))
        return nn.Sequential(_CONV[dims](C, C, kernel, stride, padding, dilation), nn.ReLU())
    if kind == "pool":
        kernel = draw(_tuple_of(dims, st.integers(1, 3)))
        stride = draw(_tuple_of(dims, st.integers(1, 2)))
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        pool = draw(st.sampled_from([_MAXPOOL, _AVGPOOL]))[dims]
        return pool(kernel, stride, padding, ceil_mode=draw(st.booleans()))
    if kind == "tconv":
        stride = draw(_tuple_of(dims, st.integers(1, 2)))
        kernel = tuple(draw(st.integers(s, 4)) for s in stride)
        padding = tuple(draw(st.integers(0, k - 1)) for k in kernel)
        return _CONVT[dims](C, C, kernel, stride, padding)
    if kind == "up":
        mode = draw(st.sampled_from(["nearest", "linear"]))
        factor = draw(st.sampled_from([2, 3])) if mode == "nearest" else 2
        return Upsample(factor, "nearest" if mode == "nearest" else _LINEAR[dims])
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
    for (lo, hi), span, summary in zip(bounds, field.spans, summaries, strict=True):
        if span.left.period == span.right.period == 1:  # affine: the same size at every unit
            assert hi - lo + 1 == summary.size
            assert lo == summary.start + summary.jump * unit[field.spans.index(span)]


@settings(max_examples=25, deadline=None)
@given(nets(chain_only=True))
def test_oracle_random_chains(net: tuple[nn.Module, int]) -> None:
    check_oracle(*net)


@settings(max_examples=25, deadline=None)
@given(nets(chain_only=False))
def test_oracle_random_branched_nets(net: tuple[nn.Module, int]) -> None:
    check_oracle(*net)


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


def test_fraction_strides_are_exported_as_numbers() -> None:
    report = _report(nn.Sequential(nn.Upsample(scale_factor=2)), (1, 4))
    assert report.row("0").effective_stride == (0.5,)
    assert Fraction(1, 2) == report.row("0").effective_stride[0]
