"""Ops the model corpus met without a formula: logical/bitwise, remainder, any/all, unique, histc,
meshgrid/tensor_split, one_hot, grid_sample, grouped matmul, parametrized convs, ATen spellings."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.ops.helpers import cost, spec
from torchscan import crawl_module
from torchscan.ops import DEFAULT_REGISTRY
from torchscan.ops.conv import conv
from torchscan.records import Cost

T = torch.Tensor
aten = torch.ops.aten
X = spec(2, 5)
MASK = spec(450, dtype=torch.bool)


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        (T.__and__, "method"),
        (T.__or__, "method"),
        (T.__xor__, "method"),
        (T.bitwise_and_, "method"),
        (operator.and_, "function"),
        (torch.logical_or, "function"),
        (aten.bitwise_and.Tensor, "function"),
    ],
)
def test_logical_and_bitwise_binary(target: object, kind: str) -> None:
    assert cost(target, (MASK, MASK), (MASK,), kind=kind) == Cost(flops=450, dmas=1350)


@pytest.mark.parametrize("target", [T.__invert__, torch.bitwise_not, T.bitwise_not, operator.invert, torch.logical_not])
def test_logical_and_bitwise_not(target: object) -> None:
    assert cost(target, (X,), (X,), kind="method") == Cost(flops=10, dmas=20)


@pytest.mark.parametrize("target", [T.remainder, T.__mod__, T.fmod, aten.remainder.Scalar, aten.add_.Scalar])
def test_remainder_and_scalar_spellings(target: object) -> None:
    assert cost(target, (X,), (X,), kind="method", args=(3,)) == Cost(flops=10, dmas=20)


def test_any_all_reduce() -> None:
    assert cost(T.any, (X,), (spec(),), kind="method") == Cost(flops=9, dmas=11)
    assert cost(torch.all, (X,), (spec(2),), dim=1) == Cost(flops=8, dmas=12)


@pytest.mark.parametrize(
    "target", [torch.meshgrid, torch.tensor_split, T.tensor_split, torch.hsplit, aten.tensor_split.sections]
)
def test_meshgrid_and_tensor_split_are_views(target: object) -> None:
    assert cost(target, (spec(10), spec(10)), (spec(10, 10), spec(10, 10))) == Cost()


def test_unique_is_sort_based() -> None:
    # 16 elements: 16·⌈log2 16⌉ sort + 15 neighbour comparisons; values (5) and inverse (16) written
    assert cost(torch.unique, (spec(16),), (spec(5), spec(16)), return_inverse=True) == Cost(flops=79, dmas=37)
    # along dim 0 of 8×3: n = 8, s = 3 slices
    assert cost(torch.unique, (spec(8, 3),), (spec(5, 3),), dim=0) == Cost(flops=24 * 3 + 24 - 3, dmas=39)
    assert cost(torch.unique_consecutive, (spec(10),), (spec(4),)) == Cost(flops=9, dmas=14)


def test_histc_bins_directly() -> None:
    assert cost(torch.histc, (spec(32),), (spec(4),), bins=4, min=0, max=3) == Cost(flops=192, dmas=36)
    # min = max: the range comes from the data first
    assert cost(torch.histc, (spec(32),), (spec(4),), bins=4, min=0, max=0) == Cost(flops=192 + 62, dmas=68)


def test_one_hot_writes_its_output() -> None:
    ids = spec(6, dtype=torch.int64)
    assert cost(F.one_hot, (ids,), (spec(6, 4, dtype=torch.int64),), num_classes=4) == Cost(dmas=30)
    assert cost(F.one_hot, (ids,), (spec(6, 4, dtype=torch.int64),), num_classes=-1) == Cost(flops=5, dmas=36)


def test_grid_sample_taps_and_coordinates() -> None:
    x, grid, out = spec(1, 3, 8, 8), spec(1, 4, 4, 2), spec(1, 3, 4, 4)  # N_out 48, N_grid 32
    bilinear = Cost(flops=9 * 48 + 2 * 32, macs=3 * 48, dmas=4 * 48 + 48 + 32)
    assert cost(F.grid_sample, (x, grid), (out,), mode="bilinear", padding_mode="zeros") == bilinear
    nearest = Cost(flops=(2 + 2) * 32, dmas=48 + 48 + 32)
    assert cost(F.grid_sample, (x, grid), (out,), mode="nearest", padding_mode="border") == nearest
    # the ATen spelling's enums: 0 = bilinear, 2 = reflection
    reflected = bilinear + Cost(flops=4 * 32)
    assert cost(aten.grid_sampler_2d.default, (x, grid), (out,), interpolation_mode=0, padding_mode=2) == reflected
    # 5-D "bilinear" is trilinear: 8 taps, 7 lerps
    volume = cost(F.grid_sample, (spec(1, 2, 4, 4, 4), spec(1, 2, 2, 2, 3)), (spec(1, 2, 2, 2, 2),), mode="bilinear")
    assert volume == Cost(flops=21 * 16 + 2 * 24, macs=7 * 16, dmas=8 * 16 + 16 + 24)


def test_grouped_mm() -> None:
    # tokens × experts (2-D × 3-D): each of the 32·256 outputs a dot product of length 64
    a, b, offs = spec(32, 64), spec(4, 64, 256), spec(4, dtype=torch.int32)
    macs = 32 * 256 * 64
    expected = Cost(flops=2 * macs - 32 * 256, macs=macs, dmas=32 * 64 + 4 * 64 * 256 + 4 + 32 * 256)
    assert cost(torch._grouped_mm, (a, b, offs), (spec(32, 256),)) == expected
    # 2-D × 2-D: K = 24 split into 3 groups, output 3 × 8 × 5
    a, b, offs = spec(8, 24), spec(24, 5), spec(3, dtype=torch.int32)
    expected = Cost(flops=2 * 8 * 5 * 24 - 120, macs=8 * 5 * 24, dmas=192 + 120 + 3 + 120)
    assert cost(F.grouped_mm, (a, b, offs), (spec(3, 8, 5),)) == expected


def test_native_batch_norm_is_batch_norm() -> None:
    x, c = spec(2, 3, 4, 4), spec(3)
    attrs = {"weight": c, "bias": c, "running_mean": c, "running_var": c, "momentum": 0.1}
    eval_cost = Cost(flops=2 * 3 + 4 * 96, macs=192, dmas=96 + 1 + 6 + 6 + 1 + 96)
    outputs = (x, spec(0), spec(0))
    assert cost(aten.native_batch_norm.default, (x, c, c, c, c), outputs, training=False, **attrs) == eval_cost


def test_aten_pool_spellings() -> None:
    x = spec(1, 2, 8, 8)
    out, indices = spec(1, 2, 4, 4), spec(1, 2, 4, 4, dtype=torch.int64)
    pooled = cost(aten.max_pool2d_with_indices.default, (x,), (out, indices), kernel_size=[2, 2])
    assert pooled == Cost(flops=96, macs=96, dmas=160)
    assert cost(aten.avg_pool2d.default, (x,), (out,), kernel_size=[2, 2]) == Cost(flops=160, macs=160, dmas=160)
    assert cost(aten._adaptive_avg_pool2d.default, (x,), (spec(1, 2, 1, 1),), output_size=[1, 1]) == Cost(
        flops=130, macs=130, dmas=130
    )


class WeightNormConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 8, 3, padding=1, groups=2), dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).relu()


def test_parametrized_conv_counts_as_its_base() -> None:
    model = WeightNormConv()
    assert type(model.conv).__name__ == "ParametrizedConv1d"
    assert DEFAULT_REGISTRY.lookup(type(model.conv)) is conv  # the MRO finds Conv1d's formula
    report = crawl_module(model, (4, 16))
    assert report.totals.complete, [d.message for d in report.diagnostics]
    assert report.totals.macs == 8 * 16 * 2 * 3  # N_out·(C_in/g)·K, as the plain conv


class Mixed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
        grid = torch.stack((xs, ys), dim=-1).reshape(1, 4, 4, 2) / 2 - 1
        y = F.grid_sample(x, grid.expand(x.shape[0], 4, 4, 2), align_corners=False)
        keep = (y > 0) & ~(y > 1)
        parts = torch.tensor_split(y.remainder(2) * keep, 2, dim=1)
        flag = keep.any() | keep.all()
        return parts[0] + parts[1] + flag


def test_complete() -> None:
    report = crawl_module(Mixed(), (2, 8, 8))
    assert report.totals.complete, [d.message for d in report.diagnostics]
