"""einsum (as its contraction), addmm / baddbmm / addbmm: tables and the FlopCounterMode oracle."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import cost, method_cost, spec, torch_flops
from torchscan import crawl_module
from torchscan.ops.linear import einsum_cost
from torchscan.records import Cost

aten = torch.ops.aten


@pytest.mark.parametrize(
    ("equation", "shapes", "macs", "flops"),
    [
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], 2 * 3 * 5 * 4, 2 * 3 * 5 * 7),
        ("ij,jk", [(3, 4), (4, 5)], 60, 15 * 7),
        ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)], 2 * 3 * 5 * 4, 2 * 3 * 5 * 7),
        ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)], 120, 30 * 7),
        ("i,j->ij", [(3,), (4,)], 12, 12),
        ("ii->i", [(4, 4)], 0, 0),
        ("ij->", [(3, 4)], 0, 11),
        ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], 2 * 3 * 4 + 2 * 4 * 5, 8 * 5 + 10 * 7),
    ],
)
def test_einsum_contractions(equation: str, shapes: list, macs: int, flops: int) -> None:
    got = einsum_cost(equation, shapes)
    assert (got.macs, got.flops) == (macs, flops)


def test_einsum_spellings() -> None:
    """``bij,bjk->bik`` on (2, 3, 4), (2, 4, 5): 30 outputs, each a dot product of 4 (4 MACs,
    7 FLOPs): 120 MACs, 210 FLOPs; DMAs 24 + 40 + 30 = 94 — a bmm, however the equation is passed."""
    a, b, out = spec(2, 3, 4), spec(2, 4, 5), spec(2, 3, 5)
    positional = cost(torch.einsum, (a, b), (out,), args=("bij,bjk->bik", a, b))
    named = cost(torch.einsum, (a, b), (out,), equation="bij,bjk->bik", tensors=(a, b))
    assert positional == named == Cost(flops=210, macs=120, dmas=94)


def test_addmm_table() -> None:
    bias, a, b, out = spec(5), spec(3, 4), spec(4, 5), spec(3, 5)
    got = cost(torch.addmm, (bias, a, b), (out,), beta=1, alpha=1)
    assert got == Cost(flops=15 * 7 + 15, macs=60, dmas=5 + 12 + 20 + 15)
    scaled = cost(aten.addmm.default, (bias, a, b), (out,), beta=0.5, alpha=2)
    assert scaled.flops == 15 * 7 + 3 * 15
    dropped = cost(torch.addmm, (bias, a, b), (out,), beta=0, alpha=1)
    assert dropped == Cost(flops=15 * 7, macs=60, dmas=12 + 20 + 15)


def test_addmm_method_defaults() -> None:
    """``bias.addmm(a, b)`` (a method call: no beta or alpha recorded, torch's defaults 1 and 1):
    15 dot products of 4 (7 FLOPs each) and one add each for the bias, no scaling: 120 FLOPs."""
    bias, a, b, out = spec(5), spec(3, 4), spec(4, 5), spec(3, 5)
    got = cost(torch.Tensor.addmm, (bias, a, b), (out,), kind="method", args=(a, b))
    assert got == Cost(flops=15 * 7 + 15, macs=60, dmas=5 + 12 + 20 + 15)
    batched = cost(torch.Tensor.baddbmm, (spec(1, 3, 5), spec(1, 3, 4), spec(1, 4, 5)), (spec(1, 3, 5),), kind="method")
    assert batched == Cost(flops=15 * 7 + 15, macs=60, dmas=15 + 12 + 20 + 15)  # a (1, 3, 5) bias read
    # addbmm sums the 2 products of the batch into one (3, 5): dot products of 2·4 = 8, one add for the bias
    summed = cost(torch.Tensor.addbmm, (spec(3, 5), spec(2, 3, 4), spec(2, 4, 5)), (spec(3, 5),), kind="method")
    assert summed == Cost(flops=15 * (2 * 8 - 1) + 15, macs=15 * 8, dmas=15 + 24 + 40 + 15)


def test_addbmm_table() -> None:
    bias, a, b, out = spec(3, 5), spec(2, 3, 4), spec(2, 4, 5), spec(3, 5)
    got = cost(torch.addbmm, (bias, a, b), (out,), beta=1, alpha=1)
    assert got == Cost(flops=15 * (2 * 8 - 1) + 15, macs=15 * 8, dmas=15 + 24 + 40 + 15)
    # ``out=`` given: a fourth tensor of the call, written, not an operand
    assert cost(torch.addbmm, (bias, a, b, out), (out,), beta=1, alpha=1, out=out) == got


class Products(nn.Module):
    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.op == "baddbmm":
            return torch.baddbmm(bias, a, b)
        if self.op == "addbmm":
            return torch.addbmm(bias[0], a, b)
        if self.op == "einsum":
            return torch.einsum("bmk,bkn->bmn", a, b) + bias
        return torch.addmm(bias[0], a[0], b[0])


@given(
    st.sampled_from(["baddbmm", "einsum", "addmm"]),  # FlopCounterMode does not see addbmm
    st.integers(1, 3),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 6),
)
def test_oracle(op: str, batch: int, m: int, k: int, n: int) -> None:
    assume(op != "einsum" or min(m, k, n) > 1)  # torch turns degenerate einsums into a mul, unseen by the oracle
    shapes = [(batch, m, n), (batch, m, k), (batch, k, n)]
    model = Products(op)
    expected = torch_flops(model, *(torch.randn(s) for s in shapes))
    report = crawl_module(model, shapes, batch_size=None)
    assert report.totals.complete
    assert report.totals.macs * 2 == expected


def test_in_place_products_cost_what_their_op_costs() -> None:
    """``addmm_``, ``baddbmm_``, ``addbmm_`` and ``addmv_`` write ``beta·self + alpha·(a @ b)`` over ``self``: the
    product's FLOPs and MACs, every operand read, the results written (as ``add_``)."""
    m, a, b, v = torch.rand(3, 5), torch.rand(3, 4), torch.rand(4, 5), torch.rand(4)
    batch, left, right = torch.rand(2, 3, 5), torch.rand(2, 3, 4), torch.rand(2, 4, 5)
    for method, args in (
        (torch.Tensor.addmm, (m, a, b)),
        (torch.Tensor.baddbmm, (batch, left, right)),
        (torch.Tensor.addbmm, (m, left, right)),
        (torch.Tensor.addmv, (torch.rand(3), a, v)),
    ):
        plain = method_cost(method, args[0], *args[1:])
        in_place = method_cost(getattr(torch.Tensor, method.__name__ + "_"), args[0].clone(), *args[1:])
        assert in_place == plain, method
