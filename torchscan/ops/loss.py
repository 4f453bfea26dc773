"""Loss functions: regression (L1, MSE, smooth L1, Huber), binary and multi-class cross-entropy, NLL, KL divergence.

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

from torchscan.ops.common import argument
from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall, TensorSpec

TABLE = FormulaTable("loss")


def reduction_of(call: OpCall, default: str = "mean") -> str:
    """``mean``, ``sum`` or ``none``: the ``reduction`` argument (``default`` where not given), or what the legacy
    ``size_average``/``reduce`` flags say where either is given (a module's, or a function's)."""
    size_average, reduce = call.get("size_average"), call.get("reduce")
    if size_average is not None or reduce is not None:
        return _reduction.legacy_get_string(size_average, reduce, emit_warning=False)
    value = argument(call, "reduction", 1 if call.target in _NUMBERED else None, default)
    return _ENUM.get(value, "mean") if isinstance(value, int) else str(value)


_ENUM = {0: "none", 1: "mean", 2: "sum"}
"""ATen's reduction numbers (``torch.kl_div(x, y, 2)``)."""

_NUMBERED = frozenset({torch.kl_div, torch.ops.aten.kl_div.default})
"""Spellings that take the reduction by number, third (after the input and the target)."""


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
    x, y = _operands(call)
    shape = torch.broadcast_shapes(x.shape, y.shape)
    count = 1
    for size in shape:
        count *= size
    return count


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
