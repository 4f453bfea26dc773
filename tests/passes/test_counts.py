"""Counting pass: unknown ops, free packing calls, parameters never used."""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from torchscan import crawl_module


class Pair(NamedTuple):
    main: torch.Tensor
    aux: torch.Tensor


class WithAux(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.aux_head = nn.Linear(4, 2)  # only used in training
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor | Pair:
        h = self.body(x)
        if self.training:
            return Pair(self.head(h), self.aux_head(h))
        return self.head(h)


def test_packing_outputs_into_a_namedtuple_is_free_not_unknown() -> None:
    report = crawl_module(WithAux().train(), (4,))
    assert report.totals.complete, report.diagnostics
    assert report.context.output_shapes == ((1, 3), (1, 2))


def test_parameters_of_modules_never_called_are_diagnosed() -> None:
    report = crawl_module(WithAux().eval(), (4,))
    assert report.totals.params == 20 + 10 + 15
    unused = [d for d in report.diagnostics if d.code == "unused-params"]
    assert len(unused) == 1 and unused[0].nodes == ("aux_head",) and "10 parameters" in unused[0].message
    assert report.row("aux_head").calls == 0 and report.row("aux_head").flops == 0


def test_a_function_returning_its_argument_is_not_assumed_free() -> None:
    class InPlace(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.renorm_(2, 0, 1.0)  # in place, returning its argument; no formula

    report = crawl_module(InPlace(), (4,))
    assert not report.totals.complete
    assert any(d.code == "unknown-op" and "renorm" in d.message for d in report.diagnostics)


def test_unknown_ops_are_diagnosed_once_per_type_with_their_calls() -> None:
    class Unknowns(nn.Module):
        def __init__(self, calls: int) -> None:
            super().__init__()
            self.calls = calls

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(self.calls):
                x = torch.special.bessel_j0(x) * 0 + x  # no formula for bessel_j0
            return x

    (one,) = crawl_module(Unknowns(1), (4,)).diagnostics
    assert one.code == "unknown-op" and one.nodes == ("special_bessel_j0",)
    assert one.message.startswith("no formula for special_bessel_j0 (1 call, e.g. fx node 'special_bessel_j0'):")
    (two,) = crawl_module(Unknowns(2), (4,)).diagnostics
    assert two.nodes == ("special_bessel_j0", "special_bessel_j0_1")
    assert two.message.startswith("no formula for special_bessel_j0 (2 calls, e.g. fx node 'special_bessel_j0'):")


def test_a_failing_formula_is_diagnosed_with_its_first_call() -> None:
    """A formula that raises leaves its calls uncounted; the one diagnostic names both calls and, as
    its example, the first of them in graph order."""

    def broken(call: object) -> None:
        raise ValueError("no rows")

    model = nn.Sequential(OrderedDict(first=nn.Linear(4, 4), act=nn.ReLU(), second=nn.Linear(4, 4)))
    report = crawl_module(model, (4,), formulas={nn.Linear: broken})
    assert not report.totals.complete
    (failed,) = [d for d in report.diagnostics if d.code == "formula-error"]
    assert failed.nodes == ("first", "second")
    assert failed.message == "formula failed for Linear: no rows (2 calls, e.g. 'first'): not counted"
