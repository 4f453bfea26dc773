"""Discrete Fourier transforms (``torch.fft``): counted as FFTW counts them.

FFTW's benchmarks rate a transform of ``n`` points by ``5·n·log2 n`` FLOPs when it is complex and by
``2.5·n·log2 n`` when it is real (half the work: the input or the output is real, the other half of the
spectrum is implied), whatever algorithm runs (https://www.fftw.org/speed/method.html). A batch of
``R`` transforms is ``R`` times one, and a transform over several dims of sizes ``n_1…n_k`` has
``n = n_1·…·n_k`` points. So, with ``P`` the points transformed in all (``R·n``: the complex output's
elements for a complex transform, the real side's elements for a real one):

- complex to complex (``fft``, ``ifft``, ``fft2``, ``ifft2``, ``fftn``, ``ifftn``): ``FLOPs = 5·P·log2 n``;
- real to complex and complex to real (``rfft*``, ``irfft*``, ``hfft*``, ``ihfft*``): ``FLOPs = 2.5·P·log2 n``;
- a normalised direction (``norm="ortho"`` both, the default ``"backward"`` the inverse, ``"forward"`` the forward)
  scales each output element: ``N_out`` FLOPs more;
- rounded to the nearest integer; ``MACs = 0`` (the butterflies' multiplies and adds are FLOPs);
  ``DMAs = N_in + N_out`` (elements, complex ones counted once).

The real side's sizes are the signal sizes (``n``/``s``, else the input's along the dims; for ``irfft*`` and
``hfft*`` the output's). ATen's spellings (``_fft_c2c``, ``_fft_r2c``, ``_fft_c2r``: scripted and recorded
models) name their dims and normalisation (0 none, else a scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from torchscan.ops.common import argument
from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall

__all__ = ["TABLE", "transformed_dims"]

TABLE = FormulaTable("spectral")

fft = torch.fft
aten = torch.ops.aten

_COMPLEX, _REAL = 5.0, 2.5
"""FFTW's FLOPs per point per ``log2 n``: complex transforms, and real ones (either side real)."""


def _cost(coefficient: float, points: int, sizes: Sequence[int], scaled: bool, call: OpCall) -> Cost:
    n = math.prod(sizes)
    flops = round(coefficient * points * math.log2(n)) if n > 1 else 0
    n_out = sum(spec.numel for spec in call.outputs)
    return Cost(flops=flops + (n_out if scaled else 0), dmas=call.input.numel + n_out)


def _scaled(call: OpCall, inverse: bool) -> bool:
    """Whether the transform multiplies its output by a normalisation (``norm``: None is ``"backward"``)."""
    norm = argument(call, "norm", 2, None)
    return norm == "ortho" or (norm == "forward" and not inverse) or (norm in (None, "backward") and inverse)


def _axes(dim: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """``dim`` non-negative, in its order (the last one given is the one a real transform halves)."""
    return tuple(axis % ndim for axis in ((dim,) if isinstance(dim, int) else dim))


_RANKS: dict[object, int | None] = {
    **dict.fromkeys((fft.fft, fft.ifft, fft.rfft, fft.irfft, fft.hfft, fft.ihfft), 1),
    **dict.fromkeys((fft.fft2, fft.ifft2, fft.rfft2, fft.irfft2, fft.hfft2, fft.ihfft2), 2),
    **dict.fromkeys((fft.fftn, fft.ifftn, fft.rfftn, fft.irfftn, fft.hfftn, fft.ihfftn), None),
}
"""How many dims each ``torch.fft`` function transforms by default: one, two, or as given (``*n``)."""

_INVERSE = frozenset(
    {fft.ifft, fft.ifft2, fft.ifftn, fft.irfft, fft.irfft2, fft.irfftn, fft.ihfft, fft.ihfft2, fft.ihfftn}
)
"""The inverse transforms: normalised by default (``norm="backward"``)."""

_ATEN = (aten._fft_c2c.default, aten._fft_r2c.default, aten._fft_c2r.default)


def transformed_dims(call: OpCall) -> tuple[int, ...]:
    """The dims (non-negative, in the order given) a ``torch.fft`` or ATen transform call transforms, as indices
    of its input (the receptive field's rule reads them too). A ``torch.fft`` call is ``fn(input, n or s, dim,
    norm)``: ``dim`` for a one-dim transform (default the last), ``dim`` for a two-dim one (default the last two),
    ``dim`` else the last ``len(s)`` dims else all of them for ``*fftn``; ATen's name their ``dim`` list."""
    ndim = call.input.ndim
    if call.target in _ATEN:
        return _axes(argument(call, "dim", 0, ()), ndim)
    rank = _RANKS[call.target]
    if rank == 1:
        return _axes(argument(call, "dim", 1, -1), ndim)
    dim = argument(call, "dim", 1, None)
    if dim is None and rank == 2:
        dim = (-2, -1)
    if dim is None:
        sizes = argument(call, "s", 0, None)
        return tuple(range(ndim - len(sizes), ndim)) if sizes is not None else tuple(range(ndim))
    return _axes(dim, ndim)


def _signal_sizes(call: OpCall, axes: tuple[int, ...]) -> tuple[int, ...]:
    """The real side's sizes along ``axes`` of a real-to-complex call: ``n`` / ``s``, else the input's."""
    one = _RANKS[call.target] == 1
    given = argument(call, "n" if one else "s", 0, None)
    if given is None:
        return tuple(call.input.shape[axis] for axis in axes)
    sizes = (given,) if one else tuple(given)
    return tuple(size if size != -1 else call.input.shape[axis] for size, axis in zip(sizes, axes, strict=True))


@TABLE.register(fft.fft, fft.ifft, fft.fft2, fft.ifft2, fft.fftn, fft.ifftn)
def complex_transform(call: OpCall) -> Cost:
    """A complex transform (a real input is made complex first): ``FLOPs = 5·N_out·log2 n + [scaled]·N_out``
    (``n``: the output's points per transform), ``MACs = 0``, ``DMAs = N_in + N_out``."""
    output = call.output
    sizes = [output.shape[axis] for axis in transformed_dims(call)]
    return _cost(_COMPLEX, output.numel, sizes, _scaled(call, call.target in _INVERSE), call)


@TABLE.register(fft.rfft, fft.ihfft, fft.rfft2, fft.ihfft2, fft.rfftn, fft.ihfftn)
def real_to_complex(call: OpCall) -> Cost:
    """A real input's half spectrum (``rfft*``; ``ihfft*``, the inverse): ``n`` real points per transform
    (``n``/``s``, else the input's sizes), ``P = N_out / (⌊n_last/2⌋ + 1) · n_last`` real points in all:
    ``FLOPs = 2.5·P·log2 n + [scaled]·N_out``, ``MACs = 0``, ``DMAs = N_in + N_out``."""
    output = call.output
    axes = transformed_dims(call)
    sizes = _signal_sizes(call, axes)
    last = output.shape[axes[-1]]
    points = output.numel // last * sizes[-1] if last else 0
    return _cost(_REAL, points, sizes, _scaled(call, call.target in _INVERSE), call)


@TABLE.register(fft.irfft, fft.hfft, fft.irfft2, fft.hfft2, fft.irfftn, fft.hfftn)
def complex_to_real(call: OpCall) -> Cost:
    """A real signal from its half spectrum (``irfft*``; ``hfft*``, the forward of a Hermitian signal): ``n``
    real points per transform, the output's sizes: ``FLOPs = 2.5·N_out·log2 n + [scaled]·N_out``, ``MACs = 0``,
    ``DMAs = N_in + N_out``."""
    output = call.output
    sizes = [output.shape[axis] for axis in transformed_dims(call)]
    return _cost(_REAL, output.numel, sizes, _scaled(call, call.target in _INVERSE), call)


@TABLE.register(*_ATEN)
def aten_transform(call: OpCall) -> Cost:
    """ATen's transforms over their ``dim`` list, ``normalization`` 0 (none) or a scale of the output:
    ``_fft_c2c`` as a complex transform (``5·N_out·log2 n``), ``_fft_r2c`` (``n``: the input's sizes; ``P``
    its elements) and ``_fft_c2r`` (the output's) as real ones (``2.5·P·log2 n``); ``+ N_out`` where
    scaled; ``MACs = 0``, ``DMAs = N_in + N_out``."""
    scaled = argument(call, "normalization", 1, 0) != 0
    axes = transformed_dims(call)
    if call.target is aten._fft_r2c.default:
        return _cost(_REAL, call.input.numel, [call.input.shape[axis] for axis in axes], scaled, call)
    output = call.output
    coefficient = _COMPLEX if call.target is aten._fft_c2c.default else _REAL
    return _cost(coefficient, output.numel, [output.shape[axis] for axis in axes], scaled, call)


def _frames(call: OpCall) -> tuple[int, int, int]:
    """``(R, F, n_fft)`` of a short-time transform: the signals (batch), frames per signal and the frame length;
    the frames and frequencies read from the spectrum (``(…, n_freq, F)``, or ``(…, n_freq, F, 2)`` as real pairs)."""
    n_fft = int(argument(call, "n_fft", 0, 0))
    spectrum = call.output if call.target in _FORWARD_STFT else call.input
    complex_pairs = not spectrum.dtype.is_complex and spectrum.ndim >= 3
    frames = spectrum.shape[-2] if complex_pairs else spectrum.shape[-1]
    per_signal = spectrum.shape[-3] * frames * 2 if complex_pairs else spectrum.shape[-2] * frames
    signals = spectrum.numel // per_signal if per_signal else 0
    return signals, frames, n_fft


def _one_sided(call: OpCall, signal: torch.dtype) -> bool:
    """Whether the frames' transform is real (half spectrum): ``onesided``, by default for a real signal."""
    return bool(argument(call, "onesided", 7, not signal.is_complex))


@TABLE.register(torch.stft, torch.Tensor.stft)
def stft(call: OpCall) -> Cost:
    """Short-time Fourier transform of ``R`` signals of length ``L`` into ``F`` frames of ``n_fft`` points: with
    ``center`` the signal padded by ``⌊n_fft/2⌋`` each side first (a copy: ``R·L`` read, ``R·L_pad`` written), each
    frame times the window (``R·F·n_fft`` FLOPs, its ``win_length`` elements read once), then each frame's
    transform as FFTW rates it (real, the default for a real signal: ``2.5·P·log2 n_fft``; complex
    ``5·P·log2 n_fft``; ``P = R·F·n_fft``), ``N_out`` more where ``normalized``: ``MACs = 0``, ``DMAs = [center]·(R·L
    + R·L_pad) + P + [window]·win_length + N_out`` (the frames read, overlapping)."""
    signals, frames, n_fft = _frames(call)
    points = signals * frames * n_fft
    coefficient = _REAL if _one_sided(call, call.input.dtype) else _COMPLEX
    flops = round(coefficient * points * math.log2(n_fft)) if n_fft > 1 else 0
    window = call.spec("window")
    if window is not None:
        flops += points
    n_out = call.output.numel // (1 if call.output.dtype.is_complex else 2)
    if argument(call, "normalized", 6, False):
        flops += n_out
    dmas = points + (window.numel if window is not None else 0) + n_out
    if argument(call, "center", 4, True):
        length = call.input.shape[-1] if call.input.ndim else 1
        dmas += signals * length + signals * (length + 2 * (n_fft // 2))
    return Cost(flops=flops, dmas=dmas)


@TABLE.register(torch.istft, torch.Tensor.istft)
def istft(call: OpCall) -> Cost:
    """Inverse short-time Fourier transform of ``R`` spectra of ``F`` frames: each frame's inverse transform
    (real for a one-sided spectrum, ``2.5·P·log2 n_fft``, else ``5·P·log2 n_fft``; ``P = R·F·n_fft``), times the
    window (``P``), added into the signal where the frames overlap (``P``), the window's squared envelope
    (``2·F·n_fft``, once for the batch) dividing each of the ``N_out`` output samples; ``N_in`` more where
    ``normalized``: ``MACs = 0``, ``DMAs = N_in + [window]·win_length + N_out``."""
    signals, frames, n_fft = _frames(call)
    points = signals * frames * n_fft
    coefficient = _REAL if _one_sided(call, torch.float32) else _COMPLEX
    flops = round(coefficient * points * math.log2(n_fft)) if n_fft > 1 else 0
    flops += 2 * points + 2 * frames * n_fft + call.output.numel
    if argument(call, "normalized", 6, False):
        flops += call.input.numel
    window = call.spec("window")
    return Cost(flops=flops, dmas=call.input.numel + (window.numel if window is not None else 0) + call.output.numel)


_FORWARD_STFT = frozenset({torch.stft, torch.Tensor.stft})
