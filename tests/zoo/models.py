"""Small models for the zoo's tests, built by ``tests/zoo/models.py:NAME`` specs (each a factory with no
arguments). Three misbehave where only a real forward reaches (``torch.nonzero``: a data-dependent shape
makes the analysis run one real forward, on real random weights): one segfaults, one hangs, one
allocates far past any memory limit; a fourth ends its process from its factory."""

from __future__ import annotations

import ctypes
import os
import time

import torch
from torch import nn


class _RealForward(nn.Module):
    """A convolution, then ``misbehave`` once the forward runs on real tensors (after ``torch.nonzero``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def misbehave(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        hits = torch.nonzero(y > 0)  # data-dependent: only a real forward gets past here
        self.misbehave(y)
        return y.flatten(1)[:, : hits.shape[0] % 2 + 1]


class _Segfault(_RealForward):
    def misbehave(self, x: torch.Tensor) -> None:
        ctypes.string_at(0)  # reads address 0: SIGSEGV


class _Hang(_RealForward):
    def misbehave(self, x: torch.Tensor) -> None:
        time.sleep(3600)


class _Hog(_RealForward):
    def misbehave(self, x: torch.Tensor) -> None:
        torch.empty(2**36, dtype=torch.uint8)  # 64 GiB of address space (never touched)


class _CrashAt16(nn.Module):
    """Fine at any width but 16, where its real forward segfaults."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if x.shape[-1] == 16:
            hits = torch.nonzero(y > 0)
            ctypes.string_at(hits.shape[0] * 0)
        return y


def segfault() -> nn.Module:
    return _Segfault()


def hang() -> nn.Module:
    return _Hang()


def hog() -> nn.Module:
    return _Hog()


def crash_at_16() -> nn.Module:
    return _CrashAt16()


def exits() -> nn.Module:
    os._exit(7)


def raises() -> nn.Module:
    raise ValueError("this factory refuses")


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


def residual() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _Residual(), _Residual())


def depthwise() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 3, 3, groups=3), nn.Conv2d(3, 12, 1), nn.Hardswish())


class _Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        return self.attention(x, x, x, need_weights=False)[0]


def tokens() -> nn.Module:
    return _Tokens()


def encoder() -> nn.Module:
    return nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 16, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


def recurrent() -> nn.Module:
    return _Recurrent()


class _ValueBranch(nn.Module):
    """Python control flow on a value: no capture on fake tensors, one real forward on real weights."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return y * 2 if y.sum() > 0 else y - 1


def value_branch() -> nn.Module:
    return _ValueBranch()


class _Unknown(nn.Module):
    """An op without a formula: the counts are a lower bound."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.erfcx(self.linear(x))


def unknown() -> nn.Module:
    return _Unknown()


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.embed = nn.Embedding(50, 8)

    def forward(self, image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.conv(image).mean((2, 3)) + self.embed(ids).mean(1)


def two_inputs() -> nn.Module:
    return _TwoInputs()


def upsample() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.Upsample(scale_factor=2), nn.ConvTranspose2d(4, 2, 2, stride=2))


def halves() -> nn.Module:
    """Analysed in float16 (the inputs say so: the model is cast)."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU())


def leaky() -> nn.Module:
    """Changes process-wide state from its factory: torch's default dtype (float64 from here on)."""
    torch.set_default_dtype(torch.float64)
    return nn.Linear(4, 4)


def probe() -> nn.Module:
    """A linear layer made with whatever default dtype the process has: 4 bytes a weight in a fresh one."""
    return nn.Linear(4, 4)
