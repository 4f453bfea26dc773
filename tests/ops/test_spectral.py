"""Discrete Fourier transforms: FFTW's rates (``5·P·log2 n`` complex, ``2.5·P·log2 n`` real) on literal
calls, the identities they imply on drawn ones, and whole models."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import function_cost
from tests.profiles import examples
from torchscan import crawl_module
from torchscan.records import Cost

fft = torch.fft
aten = torch.ops.aten
X = torch.randn(2, 8, 8, 4)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        # 512 points, 4 per transform: 5·512·2; the forward direction is not normalised by default
        (lambda: function_cost(fft.fft, X), Cost(flops=5 * 512 * 2, dmas=512 + 512)),
        # the inverse is (1/n): one FLOP per output element more
        (lambda: function_cost(fft.ifft, X), Cost(flops=5 * 512 * 2 + 512, dmas=1024)),
        (lambda: function_cost(fft.fft, X, norm="forward"), Cost(flops=5 * 512 * 2 + 512, dmas=1024)),
        (lambda: function_cost(fft.ifft, X, norm="forward"), Cost(flops=5 * 512 * 2, dmas=1024)),
        # padded to 16 points along dim 1: 2·16·8·4 = 1024 output points
        (lambda: function_cost(fft.fft, X, 16, 1), Cost(flops=5 * 1024 * 4, dmas=512 + 1024)),
        (lambda: function_cost(fft.fft2, X, dim=(1, 2)), Cost(flops=5 * 512 * 6, dmas=1024)),
        (lambda: function_cost(fft.fftn, X), Cost(flops=5 * 512 * 9, dmas=1024)),
        # s names the last len(s) dims: the last (4) padded to 8, 2·8·8·8 output points, 64 per transform
        (lambda: function_cost(fft.fftn, X, s=(8, 8)), Cost(flops=5 * 1024 * 6, dmas=512 + 1024)),
        # real: 512 real points, an 8×5 half spectrum per sample and channel (320 outputs)
        (lambda: function_cost(fft.rfft2, X, dim=(1, 2)), Cost(flops=round(2.5 * 512 * 6), dmas=512 + 320)),
        (lambda: function_cost(fft.rfft2, X, dim=(1, 2), norm="ortho"), Cost(flops=7680 + 320, dmas=832)),
        (lambda: function_cost(fft.rfft, X), Cost(flops=round(2.5 * 512 * 2), dmas=512 + 2 * 8 * 8 * 3)),
        # rfftn halves the last dim it is given (dim 1 here): 2·5·8·4 outputs
        (lambda: function_cost(fft.rfftn, X, dim=(2, 1)), Cost(flops=7680, dmas=512 + 320)),
        (lambda: function_cost(fft.ihfft, X), Cost(flops=round(2.5 * 512 * 2) + 384, dmas=512 + 384)),
    ],
)
def test_transforms_on_literal_calls(call: Any, expected: Cost) -> None:
    assert call() == expected


def test_complex_to_real_transforms_count_their_real_output() -> None:
    spectrum = fft.rfft2(X, dim=(1, 2))  # (2, 8, 5, 4)
    assert function_cost(fft.irfft2, spectrum, s=(8, 8), dim=(1, 2)) == Cost(flops=7680 + 512, dmas=320 + 512)
    assert function_cost(fft.irfft, spectrum, 8, 2) == Cost(flops=round(2.5 * 512 * 3) + 512, dmas=320 + 512)
    assert function_cost(fft.hfft, spectrum, 8, 2) == Cost(flops=round(2.5 * 512 * 3), dmas=320 + 512)


def test_a_transform_of_a_single_point_does_no_arithmetic() -> None:
    assert function_cost(fft.fft, torch.randn(3, 1)) == Cost(flops=0, dmas=6)


def test_aten_spellings_count_as_the_torch_transforms_they_run() -> None:
    """A scripted or recorded model's ``_fft_r2c``/``_fft_c2c``/``_fft_c2r`` (normalisation 0: none)."""
    assert function_cost(aten._fft_r2c.default, X, [1, 2], 0, True) == function_cost(fft.rfft2, X, dim=(1, 2))
    complex_x = X.to(torch.complex64)
    assert function_cost(aten._fft_c2c.default, complex_x, [1, 2], 0, True) == function_cost(
        fft.fft2, complex_x, dim=(1, 2)
    )
    spectrum = fft.rfft2(X, dim=(1, 2))
    assert function_cost(aten._fft_c2r.default, spectrum, [1, 2], 2, 8) == function_cost(
        fft.irfft2, spectrum, s=(8, 8), dim=(1, 2)
    )


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=3),
    st.integers(1, 4),
    st.sampled_from([fft.fftn, fft.rfftn, fft.ifftn]),
)
def test_a_batch_of_transforms_costs_each_transform_once(signal: list[int], batch: int, function: Any) -> None:
    """FFTW's rate is per transform: ``batch`` signals cost ``batch`` times one (reads and writes too)."""
    one = function_cost(function, torch.randn(*signal))
    many = function_cost(function, torch.randn(batch, *signal), dim=tuple(range(1, len(signal) + 1)))
    assert many.flops == pytest.approx(batch * one.flops, abs=batch) and many.dmas == batch * one.dmas
    points = math.prod(signal)
    expected = (5 if function is not fft.rfftn else 2.5) * points * math.log2(points) if points > 1 else 0
    scale = points if function is fft.ifftn else 0
    assert one.flops == round(expected) + scale


class _GlobalFilter(nn.Module):
    """GFNet's global filter layer: a learned filter applied in the frequency domain of the tokens."""

    def __init__(self, size: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(size, size // 2 + 1, channels, 2) * 0.02)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = fft.rfft2(x, dim=(1, 2), norm="ortho") * torch.view_as_complex(self.weight)
        return fft.irfft2(spectrum, s=(self.size, self.size), dim=(1, 2), norm="ortho")


def test_a_global_filter_model_is_complete_and_linear_in_its_batch() -> None:
    """The transforms are counted (no unknown op), and every count grows by the same step per sample (the
    parameters are read once whatever the batch)."""
    model = nn.Sequential(nn.LayerNorm(6), _GlobalFilter(8, 6), nn.Linear(6, 6)).eval()
    one, two, three = (crawl_module(model, (8, 8, 6), batch_size=batch) for batch in (1, 2, 3))
    assert one.totals.complete and not [d for d in one.diagnostics if d.code == "unknown-op"]
    transforms = [row for row in one.rows if row.type in ("fft_rfft2", "fft_irfft2")]
    assert [row.flops for row in transforms] == [round(2.5 * 384 * 6) + 8 * 5 * 6, round(2.5 * 384 * 6) + 384]
    assert three.totals.flops == 3 * one.totals.flops
    assert three.totals.dmas - two.totals.dmas == two.totals.dmas - one.totals.dmas


class _SpectralNet(nn.Module):
    """A patch stem, a global filter over the token grid, a 1×1 head; with ``channels_only`` a transform over the
    channels alone instead of the filter."""

    def __init__(self, channels_only: bool) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 4, stride=4)
        self.filter = _GlobalFilter(8, 6)
        self.head = nn.Conv2d(6, 6, 1)
        self.channels_only = channels_only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        if self.channels_only:
            return self.head(fft.fft(y, dim=1).real)
        return self.head(self.filter(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_a_transform_over_the_spatial_dims_sees_the_whole_input_and_one_over_channels_keeps_the_field() -> None:
    """Receptive field: ``rfft2`` over the token grid mixes every position (global, and so is all that follows);
    ``fft`` over the channels mixes none (the stem's 4×4 field is kept)."""
    spatial = crawl_module(_SpectralNet(channels_only=False), (3, 32, 32), receptive_field=True)
    assert spatial.row("filter.fft_rfft2").receptive_field == "global"
    assert spatial.row("head").receptive_field == "global"
    channels = crawl_module(_SpectralNet(channels_only=True), (3, 32, 32), receptive_field=True)
    assert channels.row("fft_fft").receptive_field == (4, 4) and channels.row("head").receptive_field == (4, 4)
    assert not [d for d in (*spatial.diagnostics, *channels.diagnostics) if d.code.startswith("rf-")]


@given(
    length=st.integers(64, 200),
    n_fft=st.sampled_from([16, 32, 64]),
    hop_divisor=st.sampled_from([1, 2, 4]),
    batch=st.integers(1, 3),
    windowed=st.booleans(),
    center=st.booleans(),
    onesided=st.booleans(),
    normalized=st.booleans(),
)
@settings(max_examples=examples(20))
def test_stft_is_its_frames_transforms(
    length: int,
    n_fft: int,
    hop_divisor: int,
    batch: int,
    windowed: bool,
    center: bool,
    onesided: bool,
    normalized: bool,
) -> None:
    """``torch.stft`` counts the transforms of its frames as ``fft.rfft`` (one-sided) or ``fft.fft`` counts the
    framed signal (``F`` frames of ``n_fft``, reflect-padded by ``⌊n_fft/2⌋`` where ``center``), plus a product per
    framed point with a window, an output element more where ``normalized``; DMAs: the padding's copy, the frames
    read (overlapping), the window, the output."""
    hop = n_fft // hop_divisor
    x = torch.randn(batch, length)
    window = torch.hann_window(n_fft) if windowed else None
    kwargs = {"hop_length": hop, "window": window, "center": center, "onesided": onesided, "normalized": normalized}
    spectrum = torch.stft(x, n_fft, **kwargs, return_complex=True)
    padded = nn.functional.pad(x[:, None], (n_fft // 2, n_fft // 2), mode="reflect")[:, 0] if center else x
    frames = padded.unfold(-1, n_fft, hop)
    assert frames.shape[1] == spectrum.shape[-1]
    transform = function_cost(fft.rfft if onesided else fft.fft, frames)
    points, n_out = frames.numel(), spectrum.numel()
    copy = batch * length + padded.numel() if center else 0
    want = Cost(
        flops=transform.flops + (points if windowed else 0) + (n_out if normalized else 0),
        dmas=copy + points + (n_fft if windowed else 0) + n_out,
    )
    assert function_cost(torch.stft, x, n_fft, **kwargs, return_complex=True) == want


def test_istft_on_a_literal_call() -> None:
    """Two spectra of 33 frequencies × 63 frames (n_fft 64, hop 16, a Hann window) back to 992 samples each: the
    frames' inverse real transforms (2.5·P·6, P = 2·63·64 = 8,064), the window's products and the overlap-add's
    additions (P each), the window's squared envelope (2·63·64, once) and a division per output sample (1,984);
    DMAs: the spectra (4,158), the window (64), the signals (1,984)."""
    window = torch.hann_window(64)
    spectrum = torch.stft(torch.randn(2, 1000), 64, 16, window=window, return_complex=True)
    points = 2 * 63 * 64
    want = Cost(flops=round(2.5 * points * 6) + 2 * points + 2 * 63 * 64 + 1984, dmas=4158 + 64 + 1984)
    assert function_cost(torch.istft, spectrum, 64, 16, window=window) == want
