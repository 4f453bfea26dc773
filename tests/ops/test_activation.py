"""Activation formulas in all their spellings, on literal shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.ops.helpers import cost, spec
from torchscan import crawl_module
from torchscan.records import Cost

T = torch.Tensor
aten = torch.ops.aten
X = spec(2, 3, 4)  # N = 24, rows over the last dim R = 6


@pytest.mark.parametrize(
    ("target", "attrs", "per_element"),
    [
        (nn.GELU, {"approximate": "none"}, 5),
        (nn.GELU, {"approximate": "tanh"}, 14),
        (F.gelu, {"approximate": "tanh"}, 14),
        (aten.gelu.default, {}, 5),
        (nn.SiLU, {"inplace": False}, 5),
        (F.silu, {"inplace": False}, 5),
        (nn.Mish, {}, 10),
        (F.mish, {}, 10),
        (nn.Hardswish, {}, 5),
        (F.hardswish, {}, 5),
        (nn.Hardsigmoid, {}, 4),
        (F.hardsigmoid, {}, 4),
        (nn.Softplus, {"beta": 1.0}, 6),
        (F.softplus, {}, 6),
    ],
)
def test_pointwise_activations(target: object, attrs: dict, per_element: int) -> None:
    assert cost(target, (X,), (X,), **attrs) == Cost(flops=per_element * 24, dmas=48)


def test_inplace_writes_nothing() -> None:
    assert cost(nn.SiLU, (X,), (X,), inplace=True) == Cost(flops=5 * 24, dmas=24)
    assert cost(nn.Hardswish, (X,), (X,), inplace=True).dmas == 24


SOFTMAX = Cost(flops=5 * 24 - 2 * 6, dmas=48)
LOG_SOFTMAX = Cost(flops=5 * 24 - 6, dmas=48)


@pytest.mark.parametrize(
    ("target", "kind", "attrs", "expected"),
    [
        (nn.Softmax, "module", {"dim": -1}, SOFTMAX),
        (F.softmax, "function", {"dim": 2}, SOFTMAX),
        (torch.softmax, "function", {"dim": -1}, SOFTMAX),
        (T.softmax, "method", {"args": (-1,)}, SOFTMAX),
        (T.softmax, "method", {"args": (), "dim": -1}, SOFTMAX),
        (aten._softmax.default, "function", {"dim": -1, "half_to_float": False}, SOFTMAX),
        (nn.LogSoftmax, "module", {"dim": -1}, LOG_SOFTMAX),
        (F.log_softmax, "function", {"dim": -1}, LOG_SOFTMAX),
        (T.log_softmax, "method", {"args": (-1,)}, LOG_SOFTMAX),
        (nn.Softmax, "module", {"dim": 0}, Cost(flops=5 * 24 - 2 * 12, dmas=48)),
    ],
)
def test_softmax_spellings(target: object, kind: str, attrs: dict, expected: Cost) -> None:
    assert cost(target, (X,), (X,), kind=kind, **attrs) == expected


class Acts(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(x, approximate="tanh") + F.silu(x) + F.hardswish(x) + F.mish(x)
        return x.softmax(-1) + torch.log_softmax(x, dim=1) + F.softplus(x)


def test_functional_spellings_are_complete() -> None:
    report = crawl_module(Acts(), (3, 4))
    assert report.totals.complete, report.diagnostics
