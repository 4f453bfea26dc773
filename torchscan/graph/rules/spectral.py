"""Shape rule of the inverse short-time Fourier transform, whose fake kernel cannot run.

``torch.istft`` checks its window's overlap-added envelope by value (``aten.equal``), which fake tensors cannot
answer: without this rule the capture falls back to a real forward. The output's shape depends on sizes only; the
envelope check itself (a window whose overlap-added squares have a zero is refused) reads the window's values and
is not made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from torchscan.graph.rules.common import bound, strided_fake
from torchscan.graph.rules.table import Answer, Fresh, RuleTable

__all__ = ["TABLE", "istft_length"]

TABLE = RuleTable("spectral")

_ISTFT = (
    "input",
    "n_fft",
    "hop_length",
    "win_length",
    "window",
    "center",
    "normalized",
    "onesided",
    "length",
    "return_complex",
)
"""``torch.istft``'s parameters in order (``Tensor.istft`` takes the same after ``self``)."""


def istft_length(n_fft: int, hop: int, frames: int, center: bool) -> int:
    """The signal's length from ``frames`` frames of ``n_fft`` points every ``hop``: ``n_fft + hop·(F − 1)``,
    less the ``⌊n_fft/2⌋`` padding of each end where ``center``."""
    return n_fft + hop * (frames - 1) - (2 * (n_fft // 2) if center else 0)


@TABLE.register(torch.istft, torch.Tensor.istft)
def _istft(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Answer:
    """``istft(input, n_fft, hop_length=None, …, center=True, …, length=None, return_complex=False)``: a complex
    spectrum ``(…, n_freq, F)`` (batched or not) to signals ``(…, length)``, real unless ``return_complex``; None
    (dispatch decides, with torch's errors) for anything else."""
    call = bound(_ISTFT, args, kwargs)
    if call is None:
        return None
    x, n_fft = call.get("input"), call.get("n_fft")
    if not strided_fake(x) or not x.dtype.is_complex or x.ndim not in (2, 3) or not isinstance(n_fft, int):
        return None
    hop = call.get("hop_length") or n_fft // 4
    length = call.get("length")
    if length is None:
        length = istft_length(n_fft, hop, x.shape[-1], bool(call.get("center", True)))
    if not isinstance(length, int) or length < 0:
        return None
    shape = (*x.shape[:-2], length)
    return Fresh(shape, x.dtype if call.get("return_complex", False) else x.dtype.to_real(), x.device)
