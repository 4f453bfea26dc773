"""Random draws: their output written, their tensor parameters read, no arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.ops.helpers import function_cost, method_cost
from torchscan import crawl_module
from torchscan.records import Cost

T = torch.Tensor


@pytest.mark.parametrize(
    ("method", "args"),
    [
        (T.uniform_, (-1.0, 1.0)),
        (T.normal_, ()),
        (T.exponential_, ()),
        (T.geometric_, (0.3,)),
        (T.cauchy_, ()),
        (T.log_normal_, ()),
        (T.random_, (0, 4)),
        (T.bernoulli_, (0.5,)),
    ],
)
def test_a_fill_in_place_writes_its_tensor_without_reading_it(method: object, args: tuple) -> None:
    generator_state = torch.get_rng_state()
    try:
        assert method_cost(method, torch.empty(3, 5), *args) == Cost(dmas=15)
    finally:
        torch.set_rng_state(generator_state)


def test_a_tensor_parameter_is_read() -> None:
    generator_state = torch.get_rng_state()
    try:
        probabilities = torch.full((3, 5), 0.5)
        assert method_cost(T.bernoulli_, torch.empty(3, 5), probabilities) == Cost(dmas=15 + 15)
        assert function_cost(torch.bernoulli, probabilities) == Cost(dmas=15 + 15)
        assert function_cost(torch.normal, torch.zeros(3, 5), torch.ones(5)) == Cost(dmas=15 + 5 + 15)
        assert function_cost(torch.poisson, torch.ones(4)) == Cost(dmas=4 + 4)
        assert function_cost(torch.multinomial, torch.ones(3, 6), 2) == Cost(dmas=18 + 6)
        assert function_cost(torch.randint_like, torch.zeros(3, 5), 4) == Cost(dmas=15)
        assert function_cost(torch.randperm, 7) == Cost(dmas=7)
    finally:
        torch.set_rng_state(generator_state)


class _DropPath(nn.Module):
    """timm's ``drop_path`` in training: a per-sample keep mask drawn into a new tensor, and a draw of probabilities."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = x.new_empty((x.shape[0], 1)).bernoulli_(0.8)
        noise = torch.empty_like(x).normal_() + torch.bernoulli(x.sigmoid())
        return x.div(0.8) * keep + noise + torch.randint_like(x, 3)


def test_draws_leave_the_totals_complete() -> None:
    """Before, every draw but ``torch.rand``/``randn`` was an unknown op (partial totals)."""
    report = crawl_module(_DropPath().train(), (6,), batch_size=4)
    assert report.totals.complete and report.totals.unknown_ops == 0
    nodes = report.records.nodes
    costs = {nodes[name]["record"].type_name: nodes[name].get("cost") for name in report.records}
    assert costs["normal_"] == Cost(dmas=24) and costs["randint_like"] == Cost(dmas=24)
