"""Normalisation formulas on literal shapes: LayerNorm / GroupNorm / InstanceNorm / RMSNorm…"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.ops.helpers import cost, spec
from torchscan import crawl_module
from torchscan.records import Cost

aten = torch.ops.aten
X = spec(2, 4, 3, 5)  # N_in = 120


def norm_cost(groups: int, weight: bool, bias: bool, params: int, n: int = 120) -> Cost:
    return Cost(flops=6 * n + 2 * groups + n * weight + n * bias, macs=n * (1 + (weight or bias)), dmas=n + params + n)


@pytest.mark.parametrize(
    ("target", "inputs", "attrs", "expected"),
    [
        (
            nn.LayerNorm,
            (X,),
            {"normalized_shape": (5,), "weight": spec(5), "bias": spec(5)},
            norm_cost(24, True, True, 10),
        ),
        (nn.LayerNorm, (X,), {"normalized_shape": (3, 5), "weight": None, "bias": None}, norm_cost(8, False, False, 0)),
        (
            F.layer_norm,
            (X, spec(5)),
            {"normalized_shape": (5,), "weight": spec(5), "bias": None},
            norm_cost(24, True, False, 5),
        ),
        (
            aten.native_layer_norm.default,
            (X,),
            {"normalized_shape": (5,), "weight": None, "bias": None},
            norm_cost(24, False, False, 0),
        ),
        (nn.GroupNorm, (X,), {"num_groups": 2, "weight": spec(4), "bias": spec(4)}, norm_cost(4, True, True, 8)),
        (F.group_norm, (X,), {"num_groups": 4, "weight": None, "bias": None}, norm_cost(8, False, False, 0)),
        (
            aten.native_group_norm.default,
            (X,),
            {"N": 2, "C": 4, "HxW": 15, "group": 2, "weight": None, "bias": None},
            norm_cost(4, False, False, 0),
        ),
        (
            nn.InstanceNorm2d,
            (X,),
            {"weight": None, "bias": None, "track_running_stats": False},
            norm_cost(8, False, False, 0),
        ),
        (F.instance_norm, (X,), {"use_input_stats": True}, norm_cost(8, False, False, 0)),
    ],
)
def test_group_normalisations(target: object, inputs: tuple, attrs: dict, expected: Cost) -> None:
    assert cost(target, inputs, (X,), **attrs) == expected


def test_instance_norm_in_eval_with_running_stats_is_batch_norm() -> None:
    attrs = {
        "track_running_stats": True,
        "running_mean": spec(4),
        "running_var": spec(4),
        "weight": None,
        "momentum": 0.1,
    }
    got = cost(nn.InstanceNorm2d, (X,), (X,), **attrs)
    assert got == cost(nn.BatchNorm2d, (X,), (X,), **attrs)


def test_rms_norm() -> None:
    got = cost(nn.RMSNorm, (X,), (X,), normalized_shape=(5,), weight=spec(5))
    assert got == Cost(flops=4 * 120 + 2 * 24 + 120, macs=240, dmas=120 + 5 + 120)


def test_normalize() -> None:
    got = cost(F.normalize, (X,), (X,), p=2.0, dim=1, eps=1e-12)
    assert got == Cost(flops=3 * 120 + 2 * 30, dmas=240)


def test_aten_batch_norm_spelling() -> None:
    attrs = {"weight": spec(4), "bias": spec(4), "running_mean": spec(4), "running_var": spec(4), "momentum": 0.1}
    assert cost(aten._native_batch_norm_legit_no_training.default, (X,), (X,), **attrs) == cost(
        nn.BatchNorm2d, (X,), (X,), **attrs
    )


@pytest.mark.parametrize(
    "module",
    [
        nn.LayerNorm([6, 6]),
        nn.GroupNorm(2, 4),
        nn.InstanceNorm2d(4, affine=True),
        nn.RMSNorm(6),
        nn.LocalResponseNorm(3),
    ],
)
def test_norm_modules_are_counted(module: nn.Module) -> None:
    report = crawl_module(module.eval(), (4, 6, 6))
    assert report.totals.complete
    assert report.totals.flops > 0
