"""Loss functions: regression (L1, MSE, smooth L1, Huber, Poisson and Gaussian NLL), binary and multi-class
cross-entropy, NLL, KL divergence, margin and embedding losses (soft margin, hinge, ranking, cosine, multi-margin,
triplet).

``N`` is the number of elements the loss compares (the input's, broadcast with the target's), ``R`` the number
of samples of a class-indexed loss (the input's elements over its ``C`` classes). Each loss is an elementwise
term, counted by its definition as torch computes it (FLOPs per element below), then a reduction: ``mean``
sums and divides (``N`` FLOPs: ``N − 1`` adds and a division), ``sum`` adds (``N − 1``), ``none`` keeps the
terms. A ``weight`` multiplies each term (one more FLOP per element); a weighted mean of a class-indexed loss,
and ``F.l1_loss``'s and ``F.mse_loss``'s, divides by the sum of the weights used (``R − 1`` adds more). The
legacy ``size_average``/``reduce`` flags choose the reduction as torch does. ``MACs = 0``; ``DMAs`` read the
input, the target and any weight once and write the output (a class-indexed loss reads the ``R`` input elements
its targets select).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import _reduction

from torchscan.ops.common import argument, broadcast_elements
from torchscan.ops.linear import linear
from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall, TensorSpec

TABLE = FormulaTable("loss")


def reduction_of(call: OpCall, default: str = "mean") -> str:
    """``mean``, ``sum`` or ``none``: the ``reduction`` argument (``default`` where not given), or what the legacy
    ``size_average``/``reduce`` flags say where either is given (a module's, or a function's)."""
    size_average, reduce = call.get("size_average"), call.get("reduce")
    if size_average is not None or reduce is not None:
        return _reduction.legacy_get_string(size_average, reduce, emit_warning=False)
    value = argument(call, "reduction", _NUMBERED.get(call.target), default)
    return _ENUM.get(value, "mean") if isinstance(value, int) else str(value)


_ENUM = {0: "none", 1: "mean", 2: "sum"}
"""ATen's reduction numbers (``torch.kl_div(x, y, 2)``)."""

_NUMBERED = {
    torch.kl_div: 1,
    torch.ops.aten.kl_div.default: 1,
    torch.poisson_nll_loss: 4,
    torch.triplet_margin_loss: 6,
    torch.hinge_embedding_loss: 2,
    torch.margin_ranking_loss: 3,
    torch.cosine_embedding_loss: 3,
}
"""Spellings that take the reduction by number, and where (counted after the first tensor)."""


def reduced(terms: int, reduction: str) -> int:
    """FLOPs of reducing ``terms`` values: ``mean`` ``terms`` (``terms − 1`` adds and a division), ``sum``
    ``terms − 1``, ``none`` 0."""
    if reduction == "none" or terms == 0:
        return 0
    return terms if reduction == "mean" else terms - 1


def _operands(call: OpCall) -> tuple[TensorSpec, TensorSpec]:
    if len(call.inputs) < 2:
        raise ValueError(f"{call.target} compares an input with a target")
    return call.inputs[0], call.inputs[1]


def _pairs(call: OpCall) -> int:
    return broadcast_elements(*_operands(call))


def _elementwise(call: OpCall, per_element: int, weighted_mean_by_weights: bool = False) -> Cost:
    """A loss of ``per_element`` FLOPs a term (one more with a ``weight``), then its reduction (a weighted mean
    divided by the sum of the weights where ``weighted_mean_by_weights``: ``N − 1`` adds more)."""
    x, y = _operands(call)
    terms = _pairs(call)
    weight = call.spec("weight")
    reduction = reduction_of(call)
    flops = per_element * terms + reduced(terms, reduction)
    if weight is not None:
        flops += terms + (terms - 1 if weighted_mean_by_weights and reduction == "mean" and terms else 0)
    weights = weight.numel if weight is not None else 0
    return Cost(flops=flops, dmas=x.numel + y.numel + weights + call.output.numel)


@TABLE.register(nn.L1Loss, F.l1_loss)
def l1_loss(call: OpCall) -> Cost:
    """L1Loss ``|x − y|`` (a subtraction, an abs): ``FLOPs = 2·N + reduction``; ``F.l1_loss``'s ``weight``
    multiplies each term and a weighted mean divides by the weights' sum (``2·N − 1`` more)."""
    return _elementwise(call, 2, weighted_mean_by_weights=True)


@TABLE.register(nn.MSELoss, F.mse_loss)
def mse_loss(call: OpCall) -> Cost:
    """MSELoss ``(x − y)²`` (a subtraction, a square): ``FLOPs = 2·N + reduction``; ``F.mse_loss``'s ``weight`` as
    L1's (a weighted mean divided by the weights' sum)."""
    return _elementwise(call, 2, weighted_mean_by_weights=True)


@TABLE.register(nn.SmoothL1Loss, F.smooth_l1_loss)
def smooth_l1_loss(call: OpCall) -> Cost:
    """SmoothL1Loss, ``z = |x − y|``, ``0.5·z²/β if z < β else z − 0.5·β`` computed branch-free (subtract, abs,
    compare, square, halve, divide, subtract): ``FLOPs = 7·N + reduction``; ``β = 0`` is L1 (``2·N``)."""
    beta = float(argument(call, "beta", None, 1.0))
    return _elementwise(call, 7 if beta else 2)


@TABLE.register(nn.HuberLoss, F.huber_loss)
def huber_loss(call: OpCall) -> Cost:
    """HuberLoss, ``z = |x − y|``, ``0.5·z² if z < δ else δ·(z − 0.5·δ)`` computed branch-free (subtract, abs,
    compare, square, halve, subtract, multiply): ``FLOPs = 7·N (+ N with a weight; its mean divides by N) +
    reduction``."""
    return _elementwise(call, 7)


@TABLE.register(nn.BCELoss, F.binary_cross_entropy)
def binary_cross_entropy(call: OpCall) -> Cost:
    """BCELoss as torch's kernel computes it, ``(y − 1)·max(log(1 − x), −100) − y·max(log x, −100)`` (two logs,
    two clamps, ``1 − x``, ``y − 1``, two products, a subtraction): ``FLOPs = 9·N (+ N with a weight) +
    reduction``."""
    return _elementwise(call, 9)


@TABLE.register(nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits, torch.binary_cross_entropy_with_logits)
def binary_cross_entropy_with_logits(call: OpCall) -> Cost:
    """BCEWithLogitsLoss as torch computes it, ``(1 − y)·x − w_p·logsigmoid(x)`` (LogSigmoid's 7, ``1 − y``, a
    product, a subtraction): ``FLOPs = 10·N + reduction``; a ``pos_weight`` ``p`` makes ``w_p = (p − 1)·y + 1``
    and multiplies (``3·N + N_p``), a ``weight`` multiplies (``N``); ``DMAs`` read both weights."""
    x, y = _operands(call)
    terms = _pairs(call)
    weight, positive = call.spec("weight"), call.spec("pos_weight")
    flops = 10 * terms + (terms if weight is not None else 0) + reduced(terms, reduction_of(call))
    if positive is not None:
        flops += 3 * terms + positive.numel
    weights = sum(spec.numel for spec in (weight, positive) if spec is not None)
    return Cost(flops=flops, dmas=x.numel + y.numel + weights + call.output.numel)


def _samples(x: TensorSpec) -> tuple[int, int]:
    """``(R, C)`` of a class-scored input: ``(N, C, d…)`` or one sample ``(C,)``."""
    classes = x.shape[1] if x.ndim > 1 else (x.shape[0] if x.ndim else 1)
    return (x.numel // classes if classes else 0), classes


def _picked(call: OpCall, samples: int, reduction: str) -> tuple[int, int]:
    """FLOPs and weight reads of taking each sample's picked term, negated, weighted and reduced (``R`` negations;
    ``R`` products and, for a mean, the sum of the weights used: ``R − 1`` adds), and the weights read."""
    weight = call.spec("weight")
    flops = samples + reduced(samples, reduction)
    if weight is None:
        return flops, 0
    flops += samples + (samples - 1 if reduction == "mean" and samples else 0)
    return flops, weight.numel


@TABLE.register(nn.NLLLoss, F.nll_loss, nn.NLLLoss2d)
def nll_loss(call: OpCall) -> Cost:
    """NLLLoss, ``−w_y·x[y]`` per sample (``R`` samples; the input's ``C`` classes along dim 1): ``FLOPs = R (+ R
    with a weight) + reduction`` (a weighted mean divides by the sum of the weights used: ``2·R − 1``),
    ``DMAs = 2·R + C_w + N_out`` (the picked inputs and the targets; the ``C_w`` weights)."""
    x, y = _operands(call)
    samples, _ = _samples(x)
    flops, weights = _picked(call, samples, reduction_of(call))
    return Cost(flops=flops, dmas=samples + y.numel + weights + call.output.numel)


@TABLE.register(nn.CrossEntropyLoss, F.cross_entropy)
def cross_entropy(call: OpCall) -> Cost:
    """CrossEntropyLoss as torch computes it: a log-softmax over the ``C`` classes (``5·N − R``, LogSoftmax's),
    then the loss.

    - Class indices: NLLLoss's (``R``, ``R`` more with a weight, the reduction). A label smoothing ``ε`` adds
      ``b = −Σ_c w_c·log p_c`` per sample (``N``, ``N`` more with a weight), reduced as the NLL term, and
      ``(1 − ε)·a + (ε/C)·b`` (3 per output).
    - Class probabilities (a float target of the input's shape): ``−Σ w_c·y_c·log p_c`` (``N`` products, ``N``
      more with a weight), the target smoothed first, ``y·(1 − ε) + ε/C`` (``2·N``); summed and negated (``N``),
      a mean divided by ``R`` (one more).

    ``DMAs = N + N_target + C_w + N_out``."""
    x, y = _operands(call)
    samples, _ = _samples(x)
    terms = x.numel
    reduction = reduction_of(call)
    weight = call.spec("weight")
    weighted = terms if weight is not None else 0
    smoothing = float(argument(call, "label_smoothing", None, 0.0))
    flops = 5 * terms - samples
    if y.dtype.is_floating_point:  # class probabilities
        flops += terms + weighted + (2 * terms if smoothing else 0) + terms + (reduction == "mean")
    else:
        picked, _ = _picked(call, samples, reduction)
        flops += picked
        if smoothing:
            divided = samples - 1 if weight is not None and reduction == "mean" and samples else 0
            flops += terms + weighted + reduced(samples, reduction) + divided + 3 * call.output.numel
    weights = weight.numel if weight is not None else 0
    return Cost(flops=flops, dmas=terms + y.numel + weights + call.output.numel)


@TABLE.register(nn.KLDivLoss, F.kl_div, torch.kl_div, torch.ops.aten.kl_div.default)
def kl_div(call: OpCall) -> Cost:
    """KLDivLoss of log-probabilities ``x`` to a target ``y``: ``y·(log y − x)`` (a log, a subtraction, a
    product), ``exp(y)·(y − x)`` where ``log_target`` (an exp, a subtraction, a product): ``FLOPs = 3·N +
    reduction`` (``batchmean`` divides the sum by the batch size: ``N``). ``torch.kl_div`` and ``aten.kl_div``
    take ATen's reduction number; ``torch.kl_div`` reduces nothing unless told (``aten.kl_div`` averages)."""
    x, y = _operands(call)
    terms = _pairs(call)
    reduction = reduction_of(call, "none" if call.target is torch.kl_div else "mean")
    flops = 3 * terms + reduced(terms, "mean" if reduction == "batchmean" else reduction)
    return Cost(flops=flops, dmas=x.numel + y.numel + call.output.numel)


@TABLE.register(nn.SoftMarginLoss, F.soft_margin_loss)
def soft_margin_loss(call: OpCall) -> Cost:
    """SoftMarginLoss as torch computes it, ``log1p(exp(−x·y))`` (a negation, a product, an exp, a ``log1p``):
    ``FLOPs = 4·N + reduction``."""
    return _elementwise(call, 4)


@TABLE.register(nn.MultiLabelSoftMarginLoss, F.multilabel_soft_margin_loss)
def multilabel_soft_margin_loss(call: OpCall) -> Cost:
    """MultiLabelSoftMarginLoss, ``−(y·logsigmoid(x) + (1 − y)·logsigmoid(−x))`` averaged over the ``C`` classes of
    the last dim (two LogSigmoids of 7, ``−x``, ``1 − y``, two products, a sum, a negation: 20 per element, one
    more with a weight; ``N − R`` adds and ``R`` divisions over the classes), then reduced over the ``R`` samples:
    ``FLOPs = 20·N (+ N) + N + reduction(R)``."""
    x, y = _operands(call)
    terms = _pairs(call)
    samples = terms // x.shape[-1] if x.ndim and x.shape[-1] else terms
    weight = call.spec("weight")
    flops = 20 * terms + (terms if weight is not None else 0) + terms + reduced(samples, reduction_of(call))
    weights = weight.numel if weight is not None else 0
    return Cost(flops=flops, dmas=x.numel + y.numel + weights + call.output.numel)


@TABLE.register(nn.HingeEmbeddingLoss, F.hinge_embedding_loss, torch.hinge_embedding_loss)
def hinge_embedding_loss(call: OpCall) -> Cost:
    """HingeEmbeddingLoss as torch computes it, ``where(y ≠ 1, max(margin − x, 0), 0) + where(y ≠ −1, x, 0)`` (a
    subtraction, a clamp, two comparisons, an addition; the selections move data): ``FLOPs = 5·N + reduction``."""
    return _elementwise(call, 5)


@TABLE.register(nn.MarginRankingLoss, F.margin_ranking_loss, torch.margin_ranking_loss)
def margin_ranking_loss(call: OpCall) -> Cost:
    """MarginRankingLoss, ``max(−y·(x1 − x2) + margin, 0)`` (a negation, a subtraction, a product, an addition, a
    clamp): ``FLOPs = 5·N + reduction``, ``DMAs = N_x1 + N_x2 + N_y + N_out``."""
    inputs = call.inputs[:3]
    terms = broadcast_elements(*inputs)
    flops = 5 * terms + reduced(terms, reduction_of(call))
    return Cost(flops=flops, dmas=sum(spec.numel for spec in inputs) + call.output.numel)


@TABLE.register(nn.CosineEmbeddingLoss, F.cosine_embedding_loss, torch.cosine_embedding_loss)
def cosine_embedding_loss(call: OpCall) -> Cost:
    """CosineEmbeddingLoss as torch computes it over vectors of the last dim (``R`` of them, ``N`` elements each
    operand): ``cos = Σ x1·x2 / √((Σx1² + ε)·(Σx2² + ε))`` (``2·N − R`` and twice ``2·N``, a product, a root, a
    division), then ``1 − cos`` where ``y = 1`` and ``max(cos − margin, 0)`` where ``y = −1`` (5 with the two
    comparisons) and their sum: ``FLOPs = 6·N + 8·R + reduction(R)``, ``DMAs = 2·N + N_y + N_out``."""
    x1, x2 = _operands(call)
    terms = x1.numel
    samples = terms // x1.shape[-1] if x1.ndim and x1.shape[-1] else terms
    flops = 6 * terms + 8 * samples + reduced(samples, reduction_of(call))
    target = call.inputs[2].numel if len(call.inputs) > 2 else samples
    return Cost(flops=flops, dmas=x1.numel + x2.numel + target + call.output.numel)


@TABLE.register(nn.GaussianNLLLoss, F.gaussian_nll_loss)
def gaussian_nll_loss(call: OpCall) -> Cost:
    """GaussianNLLLoss as torch computes it, ``0.5·(log(max(σ², ε)) + (x − y)²/max(σ², ε))`` (the variance's
    ``N_v`` elements clamped and logged, then a subtraction, a square, a division, an addition and a halving per
    element; the constant ``0.5·log 2π`` added where ``full``): ``FLOPs = 5·N + 2·N_v (+ N) + reduction``
    (``N_v = N`` for a number)."""
    x, y = _operands(call)
    terms = _pairs(call)
    variance = call.inputs[2].numel if len(call.inputs) > 2 else terms
    full = bool(argument(call, "full", None, False))
    flops = 5 * terms + 2 * variance + (terms if full else 0) + reduced(terms, reduction_of(call))
    return Cost(flops=flops, dmas=x.numel + y.numel + variance + call.output.numel)


@TABLE.register(nn.PoissonNLLLoss, F.poisson_nll_loss, torch.poisson_nll_loss)
def poisson_nll_loss(call: OpCall) -> Cost:
    """PoissonNLLLoss as torch computes it: ``exp(x) − y·x`` of a log-rate (3 per element), ``x − y·log(x + ε)``
    of a rate (4); ``full`` adds Stirling's ``y·log y − y + 0.5·log(2π·y)`` where ``y > 1`` (a log, a product, a
    subtraction, a product, a log, a halving, a comparison, two additions: 9): ``FLOPs = (3 | 4)·N (+ 9·N) +
    reduction``."""
    log_input = bool(argument(call, "log_input", 1, True))
    full = bool(argument(call, "full", 2, False))
    return _elementwise(call, (3 if log_input else 4) + (9 if full else 0))


@TABLE.register(nn.MultiMarginLoss, F.multi_margin_loss)
def multi_margin_loss(call: OpCall) -> Cost:
    """MultiMarginLoss as torch's kernel computes it, per sample of ``C`` classes: ``Σ_{i≠y} max(0, margin − x_y +
    x_i)^p·w_y / C`` (a subtraction, an addition and a comparison per other class, a square for ``p = 2``, a
    product with a weight; ``C − 2`` adds and a division): ``FLOPs = R·((C − 1)·(3 + [p = 2] + [weight]) + C − 1)
    + reduction(R)``, ``DMAs = N + R + C_w + N_out``."""
    x, y = _operands(call)
    classes = x.shape[-1] if x.ndim else 1
    samples = x.numel // classes if classes else 0
    square = int(argument(call, "p", None, 1)) == 2
    weight = call.spec("weight")
    per_sample = (classes - 1) * (3 + square + (weight is not None)) + max(classes - 2, 0) + 1
    flops = samples * per_sample + reduced(samples, reduction_of(call))
    weights = weight.numel if weight is not None else 0
    return Cost(flops=flops, dmas=x.numel + y.numel + weights + call.output.numel)


@TABLE.register(nn.TripletMarginLoss, F.triplet_margin_loss, torch.triplet_margin_loss)
def triplet_margin_loss(call: OpCall) -> Cost:
    """TripletMarginLoss as torch computes it: the pairwise distances anchor–positive and anchor–negative (and,
    with ``swap``, positive–negative and the smaller of the two negatives' distances), then ``max(margin + d_p −
    d_n, 0)``: ``FLOPs = 4·N·(2 + [swap]) + [swap]·R + 3·R + reduction(R)`` (PairwiseDistance's ``4·N`` each),
    ``DMAs = N_a + N_p + N_n + N_out``."""
    inputs = call.inputs[:3]
    if len(inputs) < 3:
        raise ValueError("a triplet margin loss takes an anchor, a positive and a negative")
    terms = broadcast_elements(*inputs)
    width = inputs[0].shape[-1] if inputs[0].ndim else 1
    samples = terms // width if width else 0
    swap = bool(argument(call, "swap", None, False))
    flops = 4 * terms * (2 + swap) + swap * samples + 3 * samples + reduced(samples, reduction_of(call))
    return Cost(flops=flops, dmas=sum(spec.numel for spec in inputs) + call.output.numel)


@TABLE.register(F.linear_cross_entropy)
def linear_cross_entropy(call: OpCall) -> Cost:
    """``F.linear_cross_entropy``, the logits of a linear layer (``C`` classes, times any ``out_features``) and their
    cross-entropy, counted as the two calls it stands for (:func:`~torchscan.ops.linear.linear` on ``k`` input
    features, then :func:`cross_entropy`), whether or not torch computes it in chunks; ``nn.LinearCrossEntropyLoss``
    is traced through to it."""
    if len(call.inputs) < 3:
        raise ValueError("linear_cross_entropy takes an input, a weight and a target")
    x, weight, target = call.inputs[:3]
    bias = call.spec("linear_bias")
    features = weight.shape[-1]
    classes = weight.numel // features if features else 0
    rows = x.numel // features if features else 0
    logits = TensorSpec((rows, weight.shape[0], *weight.shape[1:-1]), x.dtype)
    product = linear(
        OpCall(
            kind="function",
            target=F.linear,
            inputs=(x, weight) if bias is None else (x, weight, bias),
            outputs=(logits,),
            attrs={"weight": TensorSpec((classes, features), weight.dtype), "bias": bias},
        )
    )
    loss = cross_entropy(
        OpCall(
            kind="function",
            target=F.cross_entropy,
            inputs=(logits, target),
            outputs=call.outputs,
            attrs={name: call.attrs[name] for name in ("weight", "reduction", "label_smoothing") if name in call.attrs},
        )
    )
    return product + loss


TRACE_THROUGH: frozenset[type[nn.Module]] = frozenset({nn.LinearCrossEntropyLoss})
"""Loss modules the tracer enters (their forward reshapes a held layer's weights for the function counted here)."""
