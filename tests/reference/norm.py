"""Normalisations: batch norm (batch or running statistics, the running update), layer, group,
instance and RMS norms.

Statistics are two-pass, as written in the textbook: ``μ = Σx / n`` (``n − 1`` adds, one division),
``σ² = Σ(x − μ)² / n`` (``n`` subtracts, ``n`` squares, ``n − 1`` adds, one division), then
``x̂ = (x − μ) / √(σ² + ε)`` (per group an add and a root; per element a subtract and a division)
and the affine ``x̂·w + b`` (one multiply-add per element; a multiply or an add alone when only one
of ``w``, ``b`` is given). Each pass reads the input again (``Tally.reads``); ``Tally.distinct``
counts it once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from tests.reference.counting import Counted, Index, Num, Sink, Source, Tally, indices, mac, power, sqrt

__all__ = [
    "Normalised",
    "batch_norm",
    "group_norm",
    "instance_norm",
    "layer_norm",
    "local_response_norm",
    "rms_norm",
]


@dataclass(frozen=True)
class Normalised(Counted):
    """A normalisation's result: also the buffers it updated (running statistics)."""

    state: dict[str, torch.Tensor] = field(default_factory=dict)


def _total(values: list[Num]) -> Num:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _statistics(source: Source, group: list[Index]) -> tuple[Num, Num]:
    """The mean ``μ`` of one group and its sum of squared deviations ``Σ(x − μ)²``."""
    n = len(group)
    mean = _total([source[index] for index in group]) / n
    deviations = []
    for index in group:
        centred = source[index] - mean
        deviations.append(centred * centred)
    return mean, _total(deviations)


def _affine(value: Num, weight: Source | None, bias: Source | None, at: Index) -> Num:
    if weight is not None and bias is not None:
        return mac(bias[at], value, weight[at])
    if weight is not None:
        return value * weight[at]
    if bias is not None:
        return value + bias[at]
    return value


def _normalise_groups(
    x: torch.Tensor,
    groups: Sequence[list[Index]],
    param_index: Callable[[Index], Index],
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> Counted:
    tally = Tally()
    source = Source("input", x, tally)
    weights = Source("weight", weight, tally) if weight is not None else None
    biases = Source("bias", bias, tally) if bias is not None else None
    out = Sink("output", x.shape, tally)
    for group in groups:
        mean, squares = _statistics(source, group)
        std = sqrt(squares / len(group) + eps)
        for index in group:
            normalised = (source[index] - mean) / std
            out[index] = _affine(normalised, weights, biases, param_index(index))
    return Counted(out.tensor(), tally)


def layer_norm(
    x: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> Counted:
    """Groups: the trailing ``normalized_shape`` of each leading index; ``w``, ``b`` of that shape."""
    dims = len(normalized_shape)
    lead = tuple(x.shape[: x.ndim - dims])
    groups = [[(*row, *inner) for inner in indices(normalized_shape)] for row in indices(lead)]
    return _normalise_groups(x, groups, lambda index: index[len(lead) :], weight, bias, eps)


def group_norm(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> Counted:
    """Groups: ``C/G`` channels × the spatial dims of each sample; ``w``, ``b`` per channel."""
    batch, channels = x.shape[:2]
    per_group = channels // num_groups
    spatial = tuple(x.shape[2:])
    groups = [
        [(b, g * per_group + c, *at) for c in range(per_group) for at in indices(spatial)]
        for b, g in indices((batch, num_groups))
    ]
    return _normalise_groups(x, groups, lambda index: (index[1],), weight, bias, eps)


def instance_norm(
    x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, eps: float = 1e-5
) -> Counted:
    """Instance statistics: a group norm with one channel per group."""
    return group_norm(x, x.shape[1], weight, bias, eps)


def rms_norm(
    x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None = None, eps: float = 1e-6
) -> Counted:
    """``x / √(Σx²/n + ε) · w`` over the trailing ``normalized_shape``: per element a square, an add
    (``n − 1`` per group), a division and the scale; per group the mean's division, ``+ ε`` and the root."""
    tally = Tally()
    dims = len(normalized_shape)
    lead = tuple(x.shape[: x.ndim - dims])
    source = Source("input", x, tally)
    weights = Source("weight", weight, tally) if weight is not None else None
    out = Sink("output", x.shape, tally)
    for row in indices(lead):
        group = [(*row, *inner) for inner in indices(normalized_shape)]
        squares = []
        for index in group:
            value = source[index]
            squares.append(value * value)
        rms = sqrt(_total(squares) / len(group) + eps)
        for index in group:
            out[index] = _affine(source[index] / rms, weights, None, index[len(lead) :])
    return Counted(out.tensor(), tally)


def batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    num_batches_tracked: torch.Tensor | None = None,
) -> Normalised:
    """BatchNorm over dim 1 as ``nn.BatchNorm`` runs it: batch statistics in training or without
    running statistics, else the running ones. In training with running statistics the module
    increments ``num_batches_tracked`` (integer arithmetic: a read and a write, no FLOP) and updates
    ``r ← (1 − f)·r + f·s`` per channel with ``f = momentum`` (a hyperparameter: ``1 − f`` is not
    data arithmetic) or ``f = 1/num_batches_tracked`` (a division and a subtract on a buffer's
    value) and ``s`` the batch mean, resp. the unbiased variance ``Σ(x − μ)²/(n − 1)`` (one
    division per channel: Bessel's correction)."""
    tally = Tally()
    channels = x.shape[1]
    source = Source("input", x, tally)
    weights = Source("weight", weight, tally) if weight is not None else None
    biases = Source("bias", bias, tally) if bias is not None else None
    out = Sink("output", x.shape, tally)
    tracked = running_mean is not None and running_var is not None
    batch_stats = training or not tracked
    per_channel = [[index for index in indices(x.shape) if index[1] == c] for c in range(channels)]
    state: dict[str, torch.Tensor] = {}
    means: list[Num] = []
    variances: list[Num] = []
    squares: list[Num] = []
    if batch_stats:
        for group in per_channel:
            mean, square = _statistics(source, group)
            means.append(mean)
            squares.append(square)
            variances.append(square / len(group))
    else:
        stored_mean = Source("running_mean", running_mean, tally)  # type: ignore[arg-type]
        stored_var = Source("running_var", running_var, tally)  # type: ignore[arg-type]
        means = [stored_mean[(c,)] for c in range(channels)]
        variances = [stored_var[(c,)] for c in range(channels)]
    for c, group in enumerate(per_channel):
        std = sqrt(variances[c] + eps)
        for index in group:
            out[index] = _affine((source[index] - means[c]) / std, weights, biases, (c,))
    if training and tracked:
        factor: Num | float
        count = 0
        if num_batches_tracked is not None:
            counter = Source("num_batches_tracked", num_batches_tracked, tally)
            count = counter[()].value + 1  # an integer increment: a read and a write, no FLOP
            written = Sink("num_batches_tracked", (), tally)
            written[()] = Num(count, tally)
            state["num_batches_tracked"] = written.tensor().to(num_batches_tracked.dtype)
        if momentum is None and not count:
            raise ValueError("a cumulative average (momentum=None) needs num_batches_tracked")
        factor = momentum if momentum is not None else 1.0 / Num(count, tally)
        keep = 1.0 - factor
        n = len(per_channel[0])
        for name, stored, fresh in (
            ("running_mean", running_mean, means),
            ("running_var", running_var, [squares[c] / (n - 1) for c in range(channels)]),
        ):
            old = Source(name, stored, tally)  # type: ignore[arg-type]
            new = Sink(name, (channels,), tally)
            for c in range(channels):
                new[(c,)] = keep * old[(c,)] + factor * fresh[c]
            state[name] = new.tensor()
    return Normalised(out.tensor(), tally, state)


def local_response_norm(x: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Counted:
    """``y = x / (k + α/n·Σ_{window} x²)^β`` over a window of ``n = size`` channels (zero-padded
    by ``⌊n/2⌋`` before, ``⌊(n − 1)/2⌋`` after): each square computed once (``N``), per output a
    window sum (``n − 1`` adds, padding taps adding zeros), the scale by ``α/n`` (a constant), ``+ k``,
    the power (one transcendental) and the division."""
    tally = Tally()
    source = Source("input", x, tally)
    out = Sink("output", x.shape, tally)
    squares: dict[Index, Num] = {}
    for index in indices(x.shape):
        value = source[index]
        squares[index] = value * value
    for index in indices(x.shape):
        b, c, *rest = index
        window = [
            squares.get((b, channel, *rest), Num(0.0, tally))
            for channel in range(c - size // 2, c + (size - 1) // 2 + 1)
        ]
        total = window[0]
        for square in window[1:]:
            total = total + square
        base = total * (alpha / size) + k
        out[index] = source[index] / power(base, beta)
    return Counted(out.tensor(), tally)
