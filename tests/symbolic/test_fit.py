"""Symbolic reports on random nets and small models: at() equals a fresh analysis at random admitted
sizes, in every number; a model that branches on a size says so instead of returning a wrong formula."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from tests.profiles import examples
from tests.strategies import RandomNet, random_nets
from torchscan import Dim, InputError, SymbolicReport, crawl_module
from torchscan.symbolic import NO_FORMULA
from torchscan.symbolic.fit import fit_report
from torchscan.symbolic.report import _peaks_from_phases


def _equal_at_random_sizes(report: SymbolicReport, fresh: callable, count: int, seed: int) -> None:
    """``report.at(point)`` equals ``fresh(point)`` in ``to_dict()`` at ``count`` random admitted sizes."""
    rng = random.Random(seed)
    for _ in range(count):
        point = {dim.name: dim.first + dim.multiple_of * rng.randrange(0, 12) for dim in report.dims}
        assert report.at(**point).to_dict() == fresh(point).to_dict(), point


def _total_stride(net: RandomNet) -> int:
    """The product of the first spatial dim's strides: sizes that are multiples of it keep every
    floor and ceil of the net exact (each block's input size stays in one residue class)."""
    strides = [getattr(module, "stride", 1) for module in net.modules()]
    return math.prod(stride if isinstance(stride, int) else stride[0] for stride in strides)


@given(random_nets(), st.integers(0, 10**6))
@settings(max_examples=examples(6), deadline=None)
def test_at_equals_a_fresh_analysis_on_random_nets(case: tuple[RandomNet, tuple[int, ...]], seed: int) -> None:
    net, (channels, first, *rest) = case
    size = Dim("S", min=first, multiple_of=_total_stride(net))
    report = crawl_module(net, (channels, size, *rest), batch_size=Dim("B"))
    assert isinstance(report, SymbolicReport)
    assert not [path for path in report.unfitted if path.startswith(("totals", "layers", "rows"))]
    _equal_at_random_sizes(
        report, lambda p: crawl_module(net, (channels, p["S"], *rest), batch_size=p["B"]), count=5, seed=seed
    )
    b = report.symbols["B"]
    assert sympy.degree(report.totals.flops, b) <= 1  # batch-linear
    assert report.totals.params == crawl_module(net, (channels, first, *rest)).totals.params


class _Shrinking(nn.Module):
    """Two stride-2 pointwise convolutions, batch norms without running statistics, a residual block: the training
    step's backward peak is reached at one node for batches up to 4 at the smallest length, at another past it."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv1d(1, 3, 1, 2, bias=False),
            nn.BatchNorm1d(3, track_running_stats=False),
            nn.ReLU6(inplace=True),
            nn.Conv1d(3, 1, 1, 2, bias=False),
            nn.BatchNorm1d(1, track_running_stats=False),
            nn.ReLU6(inplace=True),
        )
        self.residual = nn.Sequential(
            nn.Conv1d(1, 1, 1, padding="same", bias=False), nn.BatchNorm1d(1, track_running_stats=False), nn.ReLU()
        )
        self.head = nn.Linear(1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        x = x + self.residual(x)
        return self.head(torch.flatten(F.adaptive_avg_pool1d(x, 1), 1))


def test_a_peak_that_moves_at_an_edge_of_the_sizes_is_not_given_a_formula() -> None:
    """A memory peak is the largest of several polynomials: fitted on the grid (batches 1–4) and checked at random
    sizes, the backward phase here took one node's polynomial, 24 bytes short at batch 10 and length 8 (the
    smallest). The fit checks the edges of the sizes' box too (batch far, length first): the phase has no formula,
    and ``at()`` answers by an analysis at the size asked, equal to a fresh one everywhere."""
    net = _Shrinking()
    report = crawl_module(net, (1, Dim("S", min=8, multiple_of=4)), batch_size=Dim("B"))
    assert "memory.training[0].phases[1][1]" in report.unfitted
    for batch, size in ((10, 8), (1, 8), (10, 12), (4097, 8)):
        assert report.at(B=batch, S=size).to_dict() == crawl_module(net, (1, size), batch_size=batch).to_dict()


def test_formulas_of_a_small_cnn_are_the_closed_forms() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.ReLU(), nn.Flatten())
    report = crawl_module(model, (3, "H", "H"), batch_size="B")
    b, h = report.symbols["B"], report.symbols["H"]
    out = (h - 1) // 2 + 1  # not a polynomial: H odd and even give different floors
    assert report.unfitted or report.totals.macs != 8 * 27 * b * out**2
    even = crawl_module(model, (3, Dim("H", multiple_of=2), Dim("H", multiple_of=2)), batch_size="B")
    assert sympy.expand(even.totals.macs - 8 * 27 * b * (h / 2) ** 2) == 0  # output H/2 × H/2, 27 MACs each
    assert even.context.output_shapes[0] == (b, 2 * h**2)


class _Branches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.short, self.long = nn.Linear(8, 8), nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.short(x) if x.shape[1] <= 3 else self.long(x)[..., :8]


def test_a_branch_on_a_size_is_a_condition_not_a_wrong_formula() -> None:
    report = crawl_module(_Branches(), ("L", 8), batch_size=2)
    assert report.totals.flops is NO_FORMULA  # 256·L·2 up to L = 3, then 512·L·2: no one polynomial
    assert "totals.flops" in report.unfitted
    assert any("no exact formula" in text and "totals.flops" in text for text in report.conditions)
    for length in (2, 3, 4, 9):  # at() still answers exactly, from an analysis where no formula holds
        assert report.at(L=length).to_dict() == crawl_module(_Branches(), (length, 8), batch_size=2).to_dict()


class _Reshapes(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).split(4, dim=1)[0] if x.shape[1] > 2 else x.flatten(1)


def test_a_structure_that_changes_with_the_size_is_a_condition() -> None:
    report = crawl_module(_Reshapes(), ("L", 4), batch_size=1)
    assert not report.fitted.unfitted_values_only
    assert "context.output_shapes[0][1]" in report.unfitted  # 4·L, then 4 from L = 3 on
    for length in (1, 2, 3, 7):
        assert report.at(L=length).to_dict() == crawl_module(_Reshapes(), (length, 4), batch_size=1).to_dict()


def test_at_checks_the_sizes() -> None:
    report = crawl_module(nn.Linear(4, 3), ("L", 4), batch_size="B")
    with pytest.raises(InputError, match="missing L"):
        report.at(B=1)
    with pytest.raises(InputError, match="not an admitted size"):
        report.at(B=1, L=0)
    with pytest.raises(InputError, match="unknown X"):
        report.at(B=1, L=2, X=3)
    assert report.to_dict()["formulas"]["totals.macs"] == "12*B*L"
    assert "SymbolicReport Linear in B, L" in repr(report)


def test_max_fit_returns_the_largest_size_that_fits_and_the_next_does_not() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    report = crawl_module(model, (3, 64, 64), batch_size="B")
    budget = 50 * 2**20
    for optimizer in (None, "adam"):
        fit = report.max_fit("B", memory="50MiB", optimizer=optimizer)
        assert fit.budget_bytes == budget
        assert fit.value is not None and fit.next_value == fit.value + 1
        memory = crawl_module(model, (3, 64, 64), batch_size=fit.value).memory
        after = crawl_module(model, (3, 64, 64), batch_size=fit.next_value).memory
        peak = memory.inference_peak_bytes if optimizer is None else memory.training_for(optimizer).peak_bytes
        later = after.inference_peak_bytes if optimizer is None else after.training_for(optimizer).peak_bytes
        assert peak == fit.peak_bytes <= budget < later == fit.next_peak_bytes
    assert report.max_fit("B", memory=1).value is None
    bounded = crawl_module(model, (3, 64, 64), batch_size=Dim("B", max=6))
    assert bounded.max_fit("B", memory="1TiB").value == 6
    with pytest.raises(InputError, match="no size named"):
        report.max_fit("L", memory="1GiB")


def test_a_fit_analyses_each_size_once() -> None:
    # the branch fails at degree 2, so the cubic grid is tried too: it holds the quadratic grid and the
    # first size past it, which are not analysed again
    asked: list[tuple[int, ...]] = []

    def sample(points: list[dict[str, int]]) -> list:
        asked.extend(tuple(point.values()) for point in points)
        return [crawl_module(_Branches(), (point["L"], 8), batch_size=2) for point in points]

    fitted = fit_report([Dim("L")], sample)
    assert fitted.degree == 3 and ("totals", "flops") in fitted.unfitted
    assert len(asked) == len(set(asked))
    assert {(point["L"],) for point in (*fitted.grid, *fitted.checks)} <= set(asked)


def test_a_training_peak_is_made_from_its_phases() -> None:
    """A training estimate's peak is ``params + buffers + state + max(phases)``: fitted on its own it is one
    phase's polynomial where that phase wins on the grid and at the checks. Hypothesis found a random net whose
    backward won there and whose forward won at ``B=10, S=5``: ``at()`` gave the backward's peak, 112 bytes
    under a fresh analysis. ``at()`` and the formulas now take the maximum of the phases."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    report = crawl_module(model, (3, Dim("H", min=16), 8), batch_size=Dim("B", min=8))
    estimate = report.memory.training_for("sgd")  # Max(96·B·H + 3232, 1120·B·H + 2336) + 3232
    phases = dict(estimate.phases)
    parts = sympy.Add(estimate.param_bytes, estimate.buffer_bytes, estimate.optimizer_state_bytes)
    assert sympy.simplify(estimate.peak_bytes - parts - sympy.Max(*phases.values())) == 0
    concrete = report.at(B=9, H=17)
    wrong = dataclasses.replace(concrete.memory.training[0], peak_bytes=0, peak_phase="step")  # a one-phase fit
    memory = dataclasses.replace(concrete.memory, training=(wrong, *concrete.memory.training[1:]))
    values = dict(concrete.memory.training[0].phases)
    fixed = _peaks_from_phases(dataclasses.replace(concrete, memory=memory)).memory.training[0]
    assert fixed.peak_phase == max(values, key=lambda name: values[name])
    assert fixed.peak_bytes == concrete.memory.training[0].peak_bytes
    assert concrete.to_dict() == crawl_module(model, (3, 17, 8), batch_size=9).to_dict()
