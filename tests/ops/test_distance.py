"""Bilinear layers, distances and cosine similarity against the counting reference (``tests/reference/distance.py``).

Conventions (``torchscan/ops/distance.py``, ``torchscan/ops/linear.py``): FLOPs and MACs are the reference's, each
op computed in torch's order (a bilinear's ``x1`` with its weight first; a cosine similarity's operands normalised
first; ``cdist`` by matrix products past 25 rows at ``p = 2``). DMAs read each input element once (a kernel's
one pass, as a matrix product's operands; departure: the reference reads them once per use) and write each output
once.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, crawled_cost, function_cost, module_cost, randn
from tests.reference import distance as reference
from tests.reference.counting import Counted
from torchscan import crawl_module
from torchscan.records import Cost


def expected(counted: Counted, *inputs: str) -> Cost:
    tally = counted.tally
    return Cost(flops=tally.flops, macs=tally.macs, dmas=tally.dmas(once=inputs))


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.booleans(), st.integers(0, 2**31))
def test_bilinear_counts_as_the_reference(batch: int, k1: int, k2: int, out: int, bias: bool, seed: int) -> None:
    layer = nn.Bilinear(k1, k2, out, bias=bias).double()
    x1, x2 = randn(seed, batch, k1), randn(seed + 1, batch, k2)
    counted = reference.bilinear(x1, x2, layer.weight.detach(), layer.bias.detach() if bias else None)
    assert_same(counted.output, layer(x1, x2))
    want = expected(counted, "x1", "x2", "weight", "bias")
    assert module_cost(layer, x1, x2) == want
    assert function_cost(F.bilinear, x1, x2, layer.weight, layer.bias) == want
    n_out = batch * out
    assert want == Cost(
        flops=n_out * (k2 * (2 * k1 - 1) + 2 * k2 - 1 + bias),
        macs=n_out * k2 * (k1 + 1),
        dmas=x1.numel() + x2.numel() + layer.weight.numel() + (out if bias else 0) + n_out,
    )


def test_bilinear_end_to_end() -> None:
    """``nn.Bilinear(4, 5, 6)`` on a batch of 3: 18 outputs of ``5·(2·4 − 1) + 2·5 − 1 + 1`` = 45 FLOPs and
    ``5·5`` = 25 MACs; DMAs 12 + 15 + 120 + 6 + 18. (PyTorch's FlopCounterMode counts a bilinear layer as 0.)"""
    report = crawl_module(nn.Bilinear(4, 5, 6), [(4,), (5,)], batch_size=3)
    assert report.totals.complete
    assert (report.totals.flops, report.totals.macs, report.totals.dmas) == (810, 450, 171)


@given(st.integers(1, 3), st.integers(1, 5), st.sampled_from([1.0, 2.0]), st.integers(0, 2**31))
def test_pairwise_distance_counts_as_the_reference(batch: int, length: int, p: float, seed: int) -> None:
    x1, x2 = randn(seed, batch, length), randn(seed + 1, batch, length)
    counted = reference.pairwise_distance(x1, x2, p)
    assert_same(counted.output, F.pairwise_distance(x1, x2, p))
    want = expected(counted, "x1", "x2")
    assert module_cost(nn.PairwiseDistance(p), x1, x2) == want
    assert function_cost(F.pairwise_distance, x1, x2, p) == want
    assert want == Cost(flops=4 * batch * length, dmas=2 * batch * length + batch)


@given(
    st.sampled_from([((2, 3), (2, 3)), ((3, 4), (1, 4)), ((1, 2, 5), (3, 1, 5)), ((4,), (4,))]),
    st.integers(0, 2**31),
)
def test_cosine_similarity_counts_as_the_reference(shapes: tuple[tuple[int, ...], ...], seed: int) -> None:
    x1, x2 = randn(seed, *shapes[0]), randn(seed + 1, *shapes[1])
    counted = reference.cosine_similarity(x1, x2)
    assert_same(counted.output, F.cosine_similarity(x1, x2, dim=-1))
    want = expected(counted, "x1", "x2")
    assert module_cost(nn.CosineSimilarity(dim=-1), x1, x2) == want
    assert function_cost(F.cosine_similarity, x1, x2, dim=-1) == want
    if shapes[0] == shapes[1]:  # one shape: 8·N + R
        pairs, vectors = x1.numel(), x1.numel() // x1.shape[-1]
        assert want == Cost(flops=8 * pairs + vectors, macs=pairs, dmas=2 * pairs + vectors)


def test_cosine_similarity_along_another_dim() -> None:
    """``nn.CosineSimilarity()`` compares along dim 1: on (2, 3, 4) that is 8 vectors of 3, counted as the
    reference does along the last dim of the transposed operands."""
    x1, x2 = randn(0, 2, 3, 4), randn(1, 2, 3, 4)
    counted = reference.cosine_similarity(x1.transpose(1, 2), x2.transpose(1, 2))
    assert_same(counted.output, nn.CosineSimilarity()(x1, x2))
    assert module_cost(nn.CosineSimilarity(), x1, x2) == expected(counted, "x1", "x2")


@given(st.integers(2, 5), st.integers(1, 4), st.sampled_from([1.0, 2.0]), st.integers(0, 2**31))
def test_pdist_counts_as_the_reference(rows: int, length: int, p: float, seed: int) -> None:
    x = randn(seed, rows, length)
    counted = reference.pdist(x, p)
    assert_same(counted.output, F.pdist(x, p))
    want = expected(counted, "input")
    assert function_cost(F.pdist, x, p) == want
    assert want == Cost(flops=3 * length * math.comb(rows, 2), dmas=x.numel() + math.comb(rows, 2))


@pytest.mark.parametrize(
    ("left", "right", "p", "mode", "products"),
    [
        (3, 4, 2.0, "use_mm_for_euclid_dist_if_necessary", False),
        (26, 2, 2.0, "use_mm_for_euclid_dist_if_necessary", True),
        (3, 4, 2.0, "use_mm_for_euclid_dist", True),
        (30, 30, 2.0, "donot_use_mm_for_euclid_dist", False),
        (30, 3, 1.0, "use_mm_for_euclid_dist", False),
    ],
)
def test_cdist_counts_as_the_reference_in_torch_s_two_forms(
    left: int, right: int, p: float, mode: str, products: bool
) -> None:
    """Directly (a subtraction and the norm per pair of elements) or, at ``p = 2`` past 25 rows on either side or
    when asked, by one matrix product of padded operands (``M + 2`` MACs a distance)."""
    x1, x2 = randn(0, left, 3), randn(1, right, 3)
    counted = reference.cdist(x1, x2, p, products)
    assert_same(counted.output, torch.cdist(x1, x2, p, compute_mode=mode))
    assert function_cost(torch.cdist, x1, x2, p, compute_mode=mode) == expected(counted, "x1", "x2")


def test_distances_end_to_end() -> None:
    """Each layer in a whole analysis counts what its formula says, the totals complete."""
    x1, x2 = randn(0, 2, 6), randn(1, 2, 6)
    assert crawled_cost(nn.PairwiseDistance(), x1, x2) == Cost(flops=48, dmas=26)
    assert crawled_cost(nn.CosineSimilarity(), x1, x2) == expected(reference.cosine_similarity(x1, x2), "x1", "x2")
