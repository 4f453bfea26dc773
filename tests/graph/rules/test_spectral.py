"""``torch.istft``'s shape rule against the real op (its fake kernel cannot run: it checks the window's envelope by
value), and a model round-tripping a spectrogram traced without a real forward."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from torchscan import crawl_module
from torchscan.graph.rules import RULES, Fresh, answer


@given(
    n_fft=st.sampled_from([8, 16, 31]),
    hop_divisor=st.sampled_from([1, 2, 4]),
    length=st.integers(40, 90),
    batched=st.booleans(),
    center=st.booleans(),
    given_length=st.booleans(),
    return_complex=st.booleans(),
    method=st.booleans(),
    hann=st.booleans(),
)
def test_istft_rule_gives_the_real_op_s_shape_and_dtype(
    n_fft: int,
    hop_divisor: int,
    length: int,
    batched: bool,
    center: bool,
    given_length: bool,
    return_complex: bool,
    method: bool,
    hann: bool,
) -> None:
    """A Hamming window (no zero: torch refuses no call) or a Hann window, whose zeros make torch refuse a call where
    its overlap-added squares vanish (no overlap, or an edge not centred): such a call has no shape to compare."""
    hop = max(n_fft // hop_divisor, 1)
    window = torch.hann_window(n_fft) if hann else torch.hamming_window(n_fft)
    signal = torch.randn(2, length) if batched else torch.randn(length)
    onesided = not return_complex  # a complex signal comes from a two-sided spectrum
    spectrum = torch.stft(signal, n_fft, hop, window=window, center=center, onesided=onesided, return_complex=True)
    kwargs = {"hop_length": hop, "window": window, "center": center, "onesided": onesided}
    kwargs |= {"return_complex": return_complex} | ({"length": length} if given_length else {})
    target = torch.Tensor.istft if method else torch.istft
    try:
        expected = target(spectrum, n_fft, **kwargs)
    except RuntimeError:  # the window's overlap-added envelope has a zero (a value: the rule cannot see it)
        assert hann
        return
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake_spectrum, fake_window = mode.from_tensor(spectrum), mode.from_tensor(window)
        got = answer(RULES.rule_for(target), target, (fake_spectrum, n_fft), kwargs | {"window": fake_window})
    assert isinstance(got, Fresh)
    assert (got.shape, got.dtype) == (tuple(expected.shape), expected.dtype)


def test_istft_rule_declines_what_it_does_not_know() -> None:
    """A real input (torch refuses it), an unknown keyword: dispatch decides, with torch's own error."""
    with FakeTensorMode() as mode:
        real = mode.from_tensor(torch.randn(5, 4))
        spectrum = mode.from_tensor(torch.randn(5, 4, dtype=torch.complex64))
        rule = RULES.rule_for(torch.istft)
        assert answer(rule, torch.istft, (real, 8), {}) is None
        assert answer(rule, torch.istft, (spectrum, 8), {"hop": 2}) is None


class _RoundTrip(nn.Module):
    """A spectrogram and back: ``stft`` then ``istft`` with a Hann window."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(x, 64, hop_length=16, window=self.window, return_complex=True)
        return torch.istft(spectrum, 64, hop_length=16, window=self.window)


def test_a_spectrogram_round_trip_is_traced_not_run() -> None:
    """The whole model traced by fx (no real forward, which its ``istft`` needed), complete, its output's shape
    the real one."""
    report = crawl_module(_RoundTrip(), (1000,), batch_size=2)
    assert report.context.capture == "torch.fx"
    assert report.totals.complete
    assert not [d for d in report.diagnostics if d.code == "real-forward"]
    assert report.context.output_shapes == (tuple(_RoundTrip()(torch.randn(2, 1000)).shape),)
