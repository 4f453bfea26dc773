"""Losses computed the way torch computes them, element by element, then reduced.

An elementwise loss maps each (input, target) pair to a term (:data:`TERMS`), optionally times a weight, then
:func:`reduce` sums (``N − 1`` adds) and, for a mean, divides. Class-indexed losses (cross-entropy, NLL) work per
sample over the ``C`` classes of dim 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from tests.reference.activation import logsigmoid
from tests.reference.counting import (
    Counted,
    Num,
    Sink,
    Source,
    Tally,
    absolute,
    exp,
    indices,
    log,
    log1p,
    maximum,
    total,
)

__all__ = [
    "TERMS",
    "bce_with_logits",
    "cross_entropy",
    "elementwise",
    "gaussian_nll",
    "hinge_embedding",
    "kl_div",
    "margin_ranking",
    "multi_margin",
    "multilabel_soft_margin",
    "nll",
    "poisson_nll",
    "reduce",
    "soft_margin",
]


def l1(x: Num, y: Num) -> Num:
    """``|x − y|``: 2."""
    return absolute(x - y)


def mse(x: Num, y: Num) -> Num:
    """``(x − y)²``: 2."""
    difference = x - y
    return difference * difference


def smooth_l1(x: Num, y: Num, beta: float = 1.0) -> Num:
    """``z = |x − y|``; ``0.5·z²/β if z < β else z − 0.5·β``, both sides computed: 7."""
    z = absolute(x - y)
    small = z < beta
    quadratic, linear = z * z * 0.5 / beta, z - 0.5 * beta
    return quadratic if small else linear


def huber(x: Num, y: Num, delta: float = 1.0) -> Num:
    """``z = |x − y|``; ``0.5·z² if z < δ else δ·(z − 0.5·δ)``, both sides computed: 7."""
    z = absolute(x - y)
    small = z < delta
    quadratic, linear = z * z * 0.5, delta * (z - 0.5 * delta)
    return quadratic if small else linear


def bce(x: Num, y: Num) -> Num:
    """torch's kernel: ``(y − 1)·max(log(1 − x), −100) − y·max(log x, −100)``: 9."""
    return (y - 1.0) * maximum(log(1.0 - x), -100.0) - y * maximum(log(x), -100.0)


TERMS: dict[str, Callable[[Num, Num], Num]] = {"l1": l1, "mse": mse, "smooth_l1": smooth_l1, "huber": huber, "bce": bce}
"""Elementwise loss terms by name."""


def reduce(terms: list[Num], reduction: str, divisor: Num | float | None = None) -> list[Num]:
    """``none``: the terms; ``sum``: their sum; ``mean``: the sum divided by ``divisor`` (their count)."""
    if reduction == "none":
        return terms
    summed = total(terms)
    if reduction == "sum":
        return [summed]
    return [summed / (len(terms) if divisor is None else divisor)]


def _written(values: list[Num], shape: Sequence[int], tally: Tally) -> torch.Tensor:
    out = Sink("output", shape, tally)
    for index, value in zip(indices(shape), values, strict=True):
        out[index] = value
    return out.tensor()


def elementwise(
    term: Callable[[Num, Num], Num],
    x: torch.Tensor,
    y: torch.Tensor,
    reduction: str,
    weight: torch.Tensor | None = None,
    mean_by_weights: bool = False,
) -> Counted:
    """``term(x, y)`` per element (inputs of one shape), times ``weight`` (of that shape too), reduced; a weighted
    mean divided by the sum of the weights where ``mean_by_weights`` (``F.l1_loss``'s, ``F.mse_loss``'s)."""
    tally = Tally()
    a, b = Source("input", x, tally), Source("target", y, tally)
    w = Source("weight", weight, tally) if weight is not None else None
    weights = [w[i] for i in indices(x.shape)] if w is not None else None
    terms = [term(a[i], b[i]) for i in indices(x.shape)]
    if weights is not None:
        terms = [value * factor for value, factor in zip(terms, weights, strict=True)]
    divisor = None
    if weights is not None and mean_by_weights and reduction == "mean":
        divisor = total(weights)
    reduced = reduce(terms, reduction, divisor=divisor)
    return Counted(_written(reduced, x.shape if reduction == "none" else (), tally), tally)


def bce_with_logits(
    x: torch.Tensor, y: torch.Tensor, reduction: str, pos_weight: torch.Tensor | None = None
) -> Counted:
    """``(1 − y)·x − w_p·logsigmoid(x)``, ``w_p = (p − 1)·y + 1`` with a ``pos_weight`` ``p`` of the last dim's size
    (``p − 1`` once per class)."""
    tally = Tally()
    a, b = Source("input", x, tally), Source("target", y, tally)
    shifted = None
    if pos_weight is not None:
        p = Source("pos_weight", pos_weight, tally)
        shifted = [p[(c,)] - 1.0 for c in range(pos_weight.shape[0])]
    terms = []
    for index in indices(x.shape):
        value, target = a[index], b[index]
        log_sigmoid = logsigmoid(value)
        if shifted is not None:
            log_sigmoid = (shifted[index[-1]] * target + 1.0) * log_sigmoid
        terms.append((1.0 - target) * value - log_sigmoid)
    reduced = reduce(terms, reduction)
    return Counted(_written(reduced, x.shape if reduction == "none" else (), tally), tally)


def kl_div(x: torch.Tensor, y: torch.Tensor, reduction: str, log_target: bool = False) -> Counted:
    """``y·(log y − x)``, or ``exp(y)·(y − x)`` for a log-target; ``batchmean`` divides the sum by the batch."""
    tally = Tally()
    a, b = Source("input", x, tally), Source("target", y, tally)
    terms = []
    for index in indices(x.shape):
        value, target = a[index], b[index]
        terms.append(exp(target) * (target - value) if log_target else target * (log(target) - value))
    divisor = float(x.shape[0]) if reduction == "batchmean" else None
    reduced = reduce(terms, "mean" if reduction == "batchmean" else reduction, divisor=divisor)
    return Counted(_written(reduced, x.shape if reduction == "none" else (), tally), tally)


def _log_softmax(row: list[Num]) -> list[Num]:
    """Stable: max (``C − 1``), subtract, exp, sum (``C − 1``), log, subtract: ``5·C − 1``."""
    top = row[0]
    for value in row[1:]:
        top = maximum(top, value)
    shifted = [value - top for value in row]
    norm = log(total(exp(value) for value in shifted))
    return [value - norm for value in shifted]


def _picked(
    values: list[Num], classes: list[int], reduction: str, weights: list[Num] | None
) -> tuple[list[Num], Num | None]:
    """NLL terms ``−w_y·x_y`` of each sample's picked value, and for a weighted mean the sum of the weights used."""
    terms = [-value * weights[c] if weights is not None else -value for value, c in zip(values, classes, strict=True)]
    return terms, _used(classes, reduction, weights)


def _used(classes: list[int], reduction: str, weights: list[Num] | None) -> Num | None:
    """The sum of the weights of the classes picked, what a weighted mean divides by (None: no weighted mean)."""
    if weights is None or reduction != "mean":
        return None
    return total(weights[c] for c in classes)


def _samples(x: torch.Tensor) -> list[tuple[int, ...]]:
    """The index of each sample's class vector: ``(n,)`` of an ``(N, C)`` input."""
    return list(indices((x.shape[0], *x.shape[2:])))


def _row(source: Source, sample: tuple[int, ...], classes: int) -> list[Num]:
    return [source[(sample[0], c, *sample[1:])] for c in range(classes)]


def nll(x: torch.Tensor, target: torch.Tensor, reduction: str, weight: torch.Tensor | None = None) -> Counted:
    """``−w_y·x[y]`` per sample (only the picked elements read)."""
    tally = Tally()
    a, t = Source("input", x, tally), Source("target", target.double(), tally)
    w = Source("weight", weight, tally) if weight is not None else None
    samples = _samples(x)
    classes = [int(t[sample].value) for sample in samples]
    picked = [a[(sample[0], c, *sample[1:])] for sample, c in zip(samples, classes, strict=True)]
    weights = [w[(c,)] for c in range(x.shape[1])] if w is not None else None
    terms, used = _picked(picked, classes, reduction, weights)
    reduced = reduce(terms, reduction, divisor=used)
    return Counted(_written(reduced, target.shape if reduction == "none" else (), tally), tally)


def cross_entropy(
    x: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> Counted:
    """torch's order: log-softmax per sample, then NLL of class indices (and, smoothing, ``−Σ_c w_c·log p_c``
    reduced alike, mixed in as ``(1 − ε)·a + (ε/C)·b``), or ``−Σ w·y·log p`` of class probabilities (the target
    smoothed to ``y·(1 − ε) + ε/C`` first)."""
    tally = Tally()
    a = Source("input", x, tally)
    w = Source("weight", weight, tally) if weight is not None else None
    classes = x.shape[1]
    samples = _samples(x)
    rows = [_log_softmax(_row(a, sample, classes)) for sample in samples]
    weights = [w[(c,)] for c in range(classes)] if w is not None else None
    if target.dtype.is_floating_point:
        t = Source("target", target, tally)
        products = []
        for sample, row in zip(samples, rows, strict=True):
            targets = _row(t, sample, classes)
            if label_smoothing:
                targets = [value * (1 - label_smoothing) + label_smoothing / classes for value in targets]
            scaled = [value * weights[c] for c, value in enumerate(row)] if weights is not None else row
            products.append([value * target_value for value, target_value in zip(scaled, targets, strict=True)])
        if reduction == "none":
            sums = []
            for terms in products:
                sums.append(-total(terms))
            return Counted(_written(sums, (x.shape[0], *x.shape[2:]), tally), tally)
        flat = [term for terms in products for term in terms]
        summed = total(flat)
        result = -summed if reduction == "sum" else -summed / float(len(samples))
        return Counted(_written([result], (), tally), tally)
    t = Source("target", target.double(), tally)
    picks = [int(t[sample].value) for sample in samples]
    terms, used = _picked([row[c] for row, c in zip(rows, picks, strict=True)], picks, reduction, weights)
    reduced = reduce(terms, reduction, divisor=used)
    if label_smoothing:
        smooth_terms = []
        for row in rows:
            scaled = [value * weights[c] for c, value in enumerate(row)] if weights is not None else row
            smooth_terms.append(-total(scaled))
        # torch sums the weights used again for this term
        smooth = reduce(smooth_terms, reduction, divisor=_used(picks, reduction, weights))
        reduced = [
            nll_part * (1 - label_smoothing) + smooth_part * (label_smoothing / classes)
            for nll_part, smooth_part in zip(reduced, smooth, strict=True)
        ]
    return Counted(_written(reduced, target.shape if reduction == "none" else (), tally), tally)


def soft_margin(x: Num, y: Num) -> Num:
    """``log1p(exp(−x·y))``: a negation, a product, an exp, a ``log1p`` (one transcendental): 4."""
    return log1p(exp(-x * y))


def hinge_embedding(x: Num, y: Num, margin: float = 1.0) -> Num:
    """``where(y ≠ 1, max(margin − x, 0), 0) + where(y ≠ −1, x, 0)``, both comparisons made: 5."""
    clamped = maximum(margin - x, 0.0)
    not_positive, not_negative = _differs(y, 1.0), _differs(y, -1.0)
    zero = Num(0.0, x.tally)
    return (clamped if not_positive else zero) + (x if not_negative else zero)


def _differs(value: Num, other: float) -> bool:
    """``value ≠ other``: one comparison."""
    value.tally.ops["cmp"] += 1
    return value.value != other


def poisson_nll(log_input: bool, full: bool, eps: float = 1e-8) -> Callable[[Num, Num], Num]:
    """``exp(x) − y·x`` (a log-rate) or ``x − y·log(x + ε)``; ``full``: ``+ y·log y − y + 0.5·log(2π·y)`` where
    ``y > 1`` (computed everywhere, a comparison chooses)."""

    def term(x: Num, y: Num) -> Num:
        loss = exp(x) - y * x if log_input else x - y * log(x + eps)
        if not full:
            return loss
        stirling = y * log(y) - y + log(2 * math.pi * y) * 0.5
        large = y > 1.0
        return loss + (stirling if large else Num(0.0, x.tally))

    return term


def gaussian_nll(x: torch.Tensor, y: torch.Tensor, var: torch.Tensor, reduction: str, full: bool) -> Counted:
    """``0.5·(log(max(σ², ε)) + (x − y)²/max(σ², ε))`` (``+ 0.5·log 2π`` where ``full``), ``σ²`` of the input's
    shape, clamped and logged once per element of its own."""
    tally = Tally()
    a, b, v = Source("input", x, tally), Source("target", y, tally), Source("var", var, tally)
    terms = []
    for index in indices(x.shape):
        clamped = maximum(v[index], 1e-6)
        difference = a[index] - b[index]
        loss = (log(clamped) + difference * difference / clamped) * 0.5
        terms.append(loss + 0.5 * math.log(2 * math.pi) if full else loss)
    reduced = reduce(terms, reduction)
    return Counted(_written(reduced, x.shape if reduction == "none" else (), tally), tally)


def margin_ranking(x1: torch.Tensor, x2: torch.Tensor, y: torch.Tensor, reduction: str, margin: float) -> Counted:
    """``max(−y·(x1 − x2) + margin, 0)``: 5 per element."""
    tally = Tally()
    a, b, t = Source("input1", x1, tally), Source("input2", x2, tally), Source("target", y, tally)
    terms = [maximum(-t[i] * (a[i] - b[i]) + margin, 0.0) for i in indices(x1.shape)]
    reduced = reduce(terms, reduction)
    return Counted(_written(reduced, x1.shape if reduction == "none" else (), tally), tally)


def multilabel_soft_margin(x: torch.Tensor, y: torch.Tensor, reduction: str) -> Counted:
    """``−(y·logsigmoid(x) + (1 − y)·logsigmoid(−x))``, summed over the classes of the last dim and divided by
    their number, then reduced over the samples."""
    tally = Tally()
    a, b = Source("input", x, tally), Source("target", y, tally)
    classes = x.shape[-1]
    per_sample = []
    for lead in indices(x.shape[:-1]):
        terms = []
        for c in range(classes):
            value, target = a[(*lead, c)], b[(*lead, c)]
            terms.append(-(target * logsigmoid(value) + (1.0 - target) * logsigmoid(-value)))
        per_sample.append(total(terms) / float(classes))
    reduced = reduce(per_sample, reduction)
    return Counted(_written(reduced, x.shape[:-1] if reduction == "none" else (), tally), tally)


def multi_margin(x: torch.Tensor, target: torch.Tensor, reduction: str, p: int, margin: float) -> Counted:
    """torch's kernel per sample of ``C`` classes: ``Σ_{i≠y} max(0, margin − x_y + x_i)^p / C`` (a subtraction, an
    addition, a comparison per other class, a square for ``p = 2``; ``C − 2`` adds and a division)."""
    tally = Tally()
    a, t = Source("input", x, tally), Source("target", target.double(), tally)
    rows, classes = x.shape
    per_sample = []
    for row in range(rows):
        picked = int(t[(row,)].value)
        chosen = a[(row, picked)]
        terms = []
        for c in range(classes):
            if c == picked:
                continue
            z = margin - chosen + a[(row, c)]
            positive = z > 0.0
            hinge = z if positive else Num(0.0, tally)
            terms.append(hinge * hinge if p == 2 else hinge)  # the square counted whichever side
        per_sample.append(total(terms) / float(classes))
    reduced = reduce(per_sample, reduction)
    return Counted(_written(reduced, (rows,) if reduction == "none" else (), tally), tally)
