"""Parameter ownership and reading: the ``unused-params`` diagnostic names only parameters no op reads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from torchscan import crawl_module


def _unused(model: nn.Module, *shape: int) -> list[str]:
    report = crawl_module(model, shape)
    return [name for d in report.diagnostics if d.code == "unused-params" for name in d.nodes]


class _Functional(nn.Module):
    """Swin's pattern: sub-modules' weights passed to a functional call, the sub-modules never called."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)  # never used

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.proj.weight, self.proj.bias)


class _Tied(nn.Module):
    """T5's pattern: an embedding owned by ``shared`` (first), its weight tied to a called ``lookup``."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Embedding(10, 4)
        self.lookup = nn.Embedding(10, 4)
        self.lookup.weight = self.shared.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lookup(ids)


def test_parameters_read_by_a_functional_call_are_used() -> None:
    assert _unused(_Functional(), 8) == ["head"]


def test_a_tied_parameter_read_through_another_module_is_used() -> None:
    report = crawl_module(_Tied(), (5,), dtype=torch.long)
    assert not [d for d in report.diagnostics if d.code == "unused-params"]
    assert report.row("shared").params == 40 and report.row("lookup").shared_params == 40


def test_swin_attention_weights_are_used_and_an_aux_head_in_eval_is_not() -> None:
    assert _unused(torchvision.models.swin_t(), 3, 224, 224) == []
    assert _unused(torchvision.models.inception_v3(init_weights=False).eval(), 3, 299, 299) == ["AuxLogits"]


def test_buffer_bytes_per_module_and_in_total() -> None:
    """BatchNorm2d(3): running mean and variance (3 float32 each) and an int64 batch counter,
    3·4 + 3·4 + 8 = 32 bytes; BatchNorm1d(2) in float64: 2·8 + 2·8 + 8 = 40; a buffer shared by
    two modules counts once, under its first owner."""
    from torchscan.passes.params import collect_params

    model = nn.Sequential(nn.BatchNorm2d(3), nn.BatchNorm1d(2).double(), nn.Module())
    model[2].register_buffer("alias", model[0].running_mean)
    summary = collect_params(model)
    assert [summary.by_module[path].buffer_bytes for path in ("", "0", "1", "2")] == [0, 32, 40, 0]
    assert summary.buffer_bytes == 72
    assert summary.param_bytes == 2 * 3 * 4 + 2 * 2 * 8
