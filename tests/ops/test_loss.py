"""Losses against the counting reference (``tests/reference/loss.py``), in torch's order of computation.

Conventions (``torchscan/ops/loss.py``): FLOPs are the reference's (each term by its definition as torch computes
it, both sides of a branch counted; ``mean`` sums and divides), ``MACs = 0``; DMAs read the input, the target and
the weights once (departure: the reference reads a class-scored input once per pass of its log-softmax) and
write the output once. The legacy ``size_average``/``reduce`` flags count as the reduction they name.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import assert_same, function_cost, module_cost, randn
from tests.reference import loss as reference
from tests.reference.counting import Counted
from torchscan import crawl_module
from torchscan.records import Cost

REDUCTIONS = st.sampled_from(["mean", "sum", "none"])

# name -> (module made from the reduction and a weight or None, function, positive inputs?)
ELEMENTWISE = {
    "l1": (lambda r, w: nn.L1Loss(reduction=r), F.l1_loss, False),
    "mse": (lambda r, w: nn.MSELoss(reduction=r), F.mse_loss, False),
    "smooth_l1": (lambda r, w: nn.SmoothL1Loss(reduction=r), F.smooth_l1_loss, False),
    "huber": (lambda r, w: nn.HuberLoss(reduction=r), F.huber_loss, False),
    "bce": (lambda r, w: nn.BCELoss(weight=w, reduction=r), F.binary_cross_entropy, True),
}


def expected(counted: Counted, *sources: str) -> Cost:
    tally = counted.tally
    assert tally.macs == 0
    return Cost(flops=tally.flops, dmas=tally.dmas(once=sources))


def _cases() -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple)


@given(st.sampled_from(sorted(ELEMENTWISE)), _cases(), REDUCTIONS, st.integers(0, 2**31))
def test_elementwise_losses_count_as_the_reference(
    name: str, shape: tuple[int, ...], reduction: str, seed: int
) -> None:
    make, function, probabilities = ELEMENTWISE[name]
    x, y = randn(seed, *shape), randn(seed + 1, *shape)
    if probabilities:
        x, y = x.sigmoid(), y.sigmoid()
    counted = reference.elementwise(reference.TERMS[name], x, y, reduction)
    assert_same(counted.output, function(x, y, reduction=reduction))
    want = expected(counted, "input", "target")
    assert module_cost(make(reduction, None), x, y) == want
    assert function_cost(function, x, y, reduction=reduction) == want


@pytest.mark.parametrize("name", ["l1", "mse", "huber", "bce"])
def test_a_weight_multiplies_each_term(name: str) -> None:
    """``weight`` (BCELoss's, and the functions' of L1, MSE and Huber): one product per element, its elements read;
    ``F.l1_loss`` and ``F.mse_loss`` divide a weighted mean by the weights' sum, Huber and BCE by the count."""
    _, function, probabilities = ELEMENTWISE[name]
    x, y, w = randn(0, 2, 3), randn(1, 2, 3), randn(2, 2, 3).abs()
    if probabilities:
        x, y = x.sigmoid(), y.sigmoid()
    counted = reference.elementwise(reference.TERMS[name], x, y, "mean", w, mean_by_weights=name in ("l1", "mse"))
    assert_same(counted.output, function(x, y, weight=w))
    assert function_cost(function, x, y, weight=w) == expected(counted, "input", "target", "weight")


def test_smooth_l1_of_beta_zero_is_l1() -> None:
    x, y = randn(0, 2, 3), randn(1, 2, 3)
    assert module_cost(nn.SmoothL1Loss(beta=0.0), x, y) == module_cost(nn.L1Loss(), x, y) == Cost(flops=18, dmas=13)


def test_the_legacy_flags_count_as_the_reduction_they_name() -> None:
    """``size_average=False`` is ``sum``, ``reduce=False`` is ``none``: what ``F.mse_loss`` runs."""
    x, y = randn(0, 2, 3), randn(1, 2, 3)
    with pytest.warns(UserWarning):
        assert function_cost(F.mse_loss, x, y, size_average=False) == function_cost(F.mse_loss, x, y, reduction="sum")
    with pytest.warns(UserWarning):
        assert function_cost(F.mse_loss, x, y, reduce=False) == function_cost(F.mse_loss, x, y, reduction="none")


@given(_cases(), REDUCTIONS, st.booleans(), st.integers(0, 2**31))
def test_bce_with_logits_counts_as_the_reference(
    shape: tuple[int, ...], reduction: str, positive: bool, seed: int
) -> None:
    x, y = randn(seed, *shape), randn(seed + 1, *shape).sigmoid()
    pos_weight = randn(seed + 2, shape[-1]).abs() if positive else None
    counted = reference.bce_with_logits(x, y, reduction, pos_weight)
    assert_same(counted.output, F.binary_cross_entropy_with_logits(x, y, reduction=reduction, pos_weight=pos_weight))
    sources = ("input", "target", "pos_weight") if positive else ("input", "target")
    want = expected(counted, *sources)
    assert module_cost(nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=pos_weight), x, y) == want
    assert function_cost(F.binary_cross_entropy_with_logits, x, y, reduction=reduction, pos_weight=pos_weight) == want


@given(
    st.integers(1, 3),
    st.integers(2, 4),
    st.sampled_from([(), (2,)]),
    REDUCTIONS,
    st.booleans(),
    st.sampled_from([0.0, 0.1]),
    st.integers(0, 2**31),
)
def test_cross_entropy_of_class_indices_counts_as_the_reference(
    batch: int, classes: int, extra: tuple[int, ...], reduction: str, weighted: bool, smoothing: float, seed: int
) -> None:
    x = randn(seed, batch, classes, *extra)
    target = torch.randint(0, classes, (batch, *extra), generator=torch.Generator().manual_seed(seed))
    weight = randn(seed + 1, classes).abs() + 0.1 if weighted else None
    counted = reference.cross_entropy(x, target, reduction, weight, smoothing)
    kwargs = {"weight": weight, "reduction": reduction, "label_smoothing": smoothing}
    assert_same(counted.output, F.cross_entropy(x, target, **kwargs))
    want = expected(counted, "input", "target", *(("weight",) if weighted else ()))
    assert module_cost(nn.CrossEntropyLoss(**kwargs), x, target) == want
    assert function_cost(F.cross_entropy, x, target, **kwargs) == want


@given(
    st.integers(1, 3),
    st.integers(2, 4),
    REDUCTIONS,
    st.booleans(),
    st.sampled_from([0.0, 0.1]),
    st.integers(0, 2**31),
)
def test_cross_entropy_of_class_probabilities_counts_as_the_reference(
    batch: int, classes: int, reduction: str, weighted: bool, smoothing: float, seed: int
) -> None:
    x, target = randn(seed, batch, classes), randn(seed + 1, batch, classes).softmax(1)
    weight = randn(seed + 2, classes).abs() + 0.1 if weighted else None
    counted = reference.cross_entropy(x, target, reduction, weight, smoothing)
    kwargs = {"weight": weight, "reduction": reduction, "label_smoothing": smoothing}
    assert_same(counted.output, F.cross_entropy(x, target, **kwargs))
    want = expected(counted, "input", "target", *(("weight",) if weighted else ()))
    assert function_cost(F.cross_entropy, x, target, **kwargs) == want


@given(st.integers(1, 3), st.integers(2, 4), REDUCTIONS, st.booleans(), st.integers(0, 2**31))
def test_nll_loss_counts_as_the_reference(batch: int, classes: int, reduction: str, weighted: bool, seed: int) -> None:
    x = randn(seed, batch, classes).log_softmax(1)
    target = torch.randint(0, classes, (batch,), generator=torch.Generator().manual_seed(seed))
    weight = randn(seed + 1, classes).abs() + 0.1 if weighted else None
    counted = reference.nll(x, target, reduction, weight)
    assert_same(counted.output, F.nll_loss(x, target, weight=weight, reduction=reduction))
    tally = counted.tally
    # the picked inputs (R), the targets, every weight (C: the module's buffer is read whole), the output
    weights = classes if weighted else 0
    want = Cost(
        flops=tally.flops, dmas=tally.distinct("input") + tally.distinct("target") + weights + tally.writes.total()
    )
    assert module_cost(nn.NLLLoss(weight=weight, reduction=reduction), x, target) == want
    assert function_cost(F.nll_loss, x, target, weight=weight, reduction=reduction) == want


@given(_cases(), st.sampled_from(["mean", "sum", "none", "batchmean"]), st.booleans(), st.integers(0, 2**31))
def test_kl_div_counts_as_the_reference(shape: tuple[int, ...], reduction: str, log_target: bool, seed: int) -> None:
    x = randn(seed, *shape).log_softmax(-1)
    y = randn(seed + 1, *shape).log_softmax(-1) if log_target else randn(seed + 1, *shape).softmax(-1)
    counted = reference.kl_div(x, y, reduction, log_target)
    assert_same(counted.output, F.kl_div(x, y, reduction=reduction, log_target=log_target))
    want = expected(counted, "input", "target")
    assert module_cost(nn.KLDivLoss(reduction=reduction, log_target=log_target), x, y) == want
    assert function_cost(F.kl_div, x, y, reduction=reduction, log_target=log_target) == want
    if reduction != "batchmean":  # torch's own spelling takes ATen's reduction number
        number = {"none": 0, "mean": 1, "sum": 2}[reduction]
        assert function_cost(torch.kl_div, x, y, number, log_target=log_target) == want


class _Classifier(nn.Module):
    """A linear classifier returning its loss against the labels it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.head, self.loss = nn.Linear(8, 5), nn.CrossEntropyLoss(label_smoothing=0.1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(self.head(x), labels)


def test_a_model_returning_its_loss_is_complete() -> None:
    """A model computing its training loss in its forward (class labels as a second input): complete, the
    loss's row what its formula says (batch 4 of 5 classes: log-softmax 5·20 − 4, NLL 4 + a mean of 4, the
    smoothing term 20 + a mean of 4 and the mix of 3)."""
    x, labels = torch.randn(4, 8), torch.randint(0, 5, (4,))
    report = crawl_module(_Classifier(), args=(x, labels), batch_size=None)
    assert report.totals.complete, report.diagnostics
    assert report.row("loss").flops == (5 * 20 - 4) + (4 + 4) + (20 + 4 + 3)


@given(_cases(), REDUCTIONS, st.integers(0, 2**31))
def test_soft_margin_and_hinge_embedding_count_as_the_reference(
    shape: tuple[int, ...], reduction: str, seed: int
) -> None:
    x = randn(seed, *shape)
    y = torch.where(randn(seed + 1, *shape) > 0, 1.0, -1.0).double()
    for module, function, term in (
        (nn.SoftMarginLoss, F.soft_margin_loss, reference.soft_margin),
        (nn.HingeEmbeddingLoss, F.hinge_embedding_loss, reference.hinge_embedding),
    ):
        counted = reference.elementwise(term, x, y, reduction)
        assert_same(counted.output, function(x, y, reduction=reduction))
        want = expected(counted, "input", "target")
        assert module_cost(module(reduction=reduction), x, y) == want
        assert function_cost(function, x, y, reduction=reduction) == want


@given(_cases(), REDUCTIONS, st.booleans(), st.booleans(), st.integers(0, 2**31))
def test_poisson_nll_counts_as_the_reference(
    shape: tuple[int, ...], reduction: str, log_input: bool, full: bool, seed: int
) -> None:
    x = randn(seed, *shape) if log_input else randn(seed, *shape).abs() + 0.1
    y = 3 * randn(seed + 1, *shape).abs()
    counted = reference.elementwise(reference.poisson_nll(log_input, full), x, y, reduction)
    kwargs = {"log_input": log_input, "full": full, "reduction": reduction}
    assert_same(counted.output, F.poisson_nll_loss(x, y, **kwargs))
    want = expected(counted, "input", "target")
    assert module_cost(nn.PoissonNLLLoss(**kwargs), x, y) == want
    assert function_cost(F.poisson_nll_loss, x, y, **kwargs) == want


@given(_cases(), REDUCTIONS, st.booleans(), st.integers(0, 2**31))
def test_gaussian_nll_counts_as_the_reference(shape: tuple[int, ...], reduction: str, full: bool, seed: int) -> None:
    x, y, var = randn(seed, *shape), randn(seed + 1, *shape), randn(seed + 2, *shape).abs()
    counted = reference.gaussian_nll(x, y, var, reduction, full)
    assert_same(counted.output, F.gaussian_nll_loss(x, y, var, full=full, reduction=reduction))
    want = expected(counted, "input", "target", "var")
    assert module_cost(nn.GaussianNLLLoss(full=full, reduction=reduction), x, y, var) == want
    assert function_cost(F.gaussian_nll_loss, x, y, var, full=full, reduction=reduction) == want


@given(_cases(), REDUCTIONS, st.integers(0, 2**31))
def test_margin_ranking_counts_as_the_reference(shape: tuple[int, ...], reduction: str, seed: int) -> None:
    x1, x2 = randn(seed, *shape), randn(seed + 1, *shape)
    y = torch.where(randn(seed + 2, *shape) > 0, 1.0, -1.0).double()
    counted = reference.margin_ranking(x1, x2, y, reduction, 0.5)
    assert_same(counted.output, F.margin_ranking_loss(x1, x2, y, margin=0.5, reduction=reduction))
    want = expected(counted, "input1", "input2", "target")
    assert module_cost(nn.MarginRankingLoss(0.5, reduction=reduction), x1, x2, y) == want
    assert function_cost(F.margin_ranking_loss, x1, x2, y, margin=0.5, reduction=reduction) == want


@given(st.integers(1, 3), st.integers(1, 4), REDUCTIONS, st.integers(0, 2**31))
def test_multilabel_soft_margin_counts_as_the_reference(batch: int, classes: int, reduction: str, seed: int) -> None:
    x, y = randn(seed, batch, classes), (randn(seed + 1, batch, classes) > 0).double()
    counted = reference.multilabel_soft_margin(x, y, reduction)
    assert_same(counted.output, F.multilabel_soft_margin_loss(x, y, reduction=reduction))
    want = expected(counted, "input", "target")
    assert module_cost(nn.MultiLabelSoftMarginLoss(reduction=reduction), x, y) == want
    assert function_cost(F.multilabel_soft_margin_loss, x, y, reduction=reduction) == want


@given(st.integers(1, 3), st.integers(2, 5), REDUCTIONS, st.sampled_from([1, 2]), st.integers(0, 2**31))
def test_multi_margin_counts_as_the_reference(batch: int, classes: int, reduction: str, p: int, seed: int) -> None:
    x = randn(seed, batch, classes)
    target = torch.randint(0, classes, (batch,), generator=torch.Generator().manual_seed(seed))
    counted = reference.multi_margin(x, target, reduction, p, 1.0)
    assert_same(counted.output, F.multi_margin_loss(x, target, p=p, reduction=reduction))
    want = expected(counted, "input", "target")
    assert module_cost(nn.MultiMarginLoss(p=p, reduction=reduction), x, target) == want
    assert function_cost(F.multi_margin_loss, x, target, p=p, reduction=reduction) == want


def test_cosine_embedding_and_triplet_margin_are_their_parts() -> None:
    """CosineEmbeddingLoss of 3 vectors of 4: the dot products (2·12 − 3), the squared norms with ε (2·(2·12 − 3
    + 3)), their product and root (6), a division (3), ``1 − cos`` (3), ``max(cos − margin, 0)`` (6), the two
    comparisons (6) and the sum (3): 6·12 + 8·3 = 96 FLOPs, a mean of 3 more. TripletMarginLoss: two
    PairwiseDistances (4·12 each), ``margin + d_p − d_n`` clamped (3·3), a mean (3); ``swap`` a third distance and
    the smaller (3 more)."""
    a, b = randn(0, 3, 4), randn(1, 3, 4)
    y = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    assert module_cost(nn.CosineEmbeddingLoss(), a, b, y) == Cost(flops=96 + 3, dmas=12 + 12 + 3 + 1)
    distance = 4 * 12
    negative = randn(2, 3, 4)
    assert module_cost(nn.TripletMarginLoss(), a, b, negative) == Cost(flops=2 * distance + 9 + 3, dmas=37)
    swapped = nn.TripletMarginLoss(swap=True)
    assert module_cost(swapped, a, b, negative) == Cost(flops=3 * distance + 3 + 9 + 3, dmas=37)
    assert function_cost(F.triplet_margin_loss, a, b, negative, swap=True) == module_cost(swapped, a, b, negative)


def test_torch_s_own_loss_functions_take_aten_s_reduction_numbers() -> None:
    """``torch.hinge_embedding_loss(x, y, margin, reduction)`` and its kin take the reduction by number (0 none,
    1 mean, 2 sum), after their other arguments: counted as ``F``'s spelling with that reduction."""
    x, b = randn(0, 2, 3), randn(1, 2, 3)
    y = torch.where(randn(2, 2, 3) > 0, 1.0, -1.0).double()
    for number, name in enumerate(("none", "mean", "sum")):
        assert function_cost(torch.hinge_embedding_loss, x, y, 1.0, number) == function_cost(
            F.hinge_embedding_loss, x, y, reduction=name
        )
        assert function_cost(torch.margin_ranking_loss, x, b, y, 0.5, number) == function_cost(
            F.margin_ranking_loss, x, b, y, margin=0.5, reduction=name
        )
        assert function_cost(torch.poisson_nll_loss, x, b.abs(), True, False, 1e-8, number) == function_cost(
            F.poisson_nll_loss, x, b.abs(), reduction=name
        )
    rows = torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert function_cost(torch.cosine_embedding_loss, x, b, rows, 0.0, 2) == function_cost(
        F.cosine_embedding_loss, x, b, rows, reduction="sum"
    )


@given(st.integers(1, 3), st.integers(1, 4), st.integers(2, 4), st.booleans(), st.sampled_from([0.0, 0.1]), REDUCTIONS)
def test_linear_cross_entropy_is_a_linear_layer_then_cross_entropy(
    batch: int, features: int, classes: int, bias: bool, smoothing: float, reduction: str
) -> None:
    """``F.linear_cross_entropy`` (torch computes it in chunks, or not) counts as the linear layer and the
    cross-entropy it stands for; ``nn.LinearCrossEntropyLoss`` in a model as the two modules it replaces."""
    x, weight = randn(0, batch, features), randn(1, classes, features)
    target = torch.randint(0, classes, (batch,), generator=torch.Generator().manual_seed(batch))
    linear_bias = randn(2, classes) if bias else None
    logits = F.linear(x, weight, linear_bias)
    parts = function_cost(F.linear, x, weight, linear_bias) + function_cost(
        F.cross_entropy, logits, target, reduction=reduction, label_smoothing=smoothing
    )
    fused = function_cost(
        F.linear_cross_entropy,
        x,
        weight,
        target,
        linear_bias=linear_bias,
        reduction=reduction,
        label_smoothing=smoothing,
    )
    assert fused == parts


class _Fused(nn.Module):
    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.loss = nn.LinearCrossEntropyLoss(8, 5, bias=bias, label_smoothing=0.1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(x, labels)


class _Unfused(nn.Module):
    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.head, self.loss = nn.Linear(8, 5, bias=bias), nn.CrossEntropyLoss(label_smoothing=0.1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(self.head(x), labels)


@pytest.mark.parametrize("bias", [False, True])
def test_a_fused_linear_cross_entropy_loss_counts_as_its_two_layers(bias: bool) -> None:
    args = (torch.randn(4, 8), torch.randint(0, 5, (4,)))
    fused = crawl_module(_Fused(bias), args=args, batch_size=None).totals
    unfused = crawl_module(_Unfused(bias), args=args, batch_size=None).totals
    assert fused.complete
    assert (fused.flops, fused.macs, fused.dmas, fused.params) == (
        unfused.flops,
        unfused.macs,
        unfused.dmas,
        unfused.params,
    )
