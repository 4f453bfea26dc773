"""The casts ``torch.autocast``'s cache keeps (``torchscan/passes/memory/casts.py``): the static inference peak
against a closed form and against a real forward's, region by region."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchscan import crawl_module, sweep
from torchscan.measure.cpu import measure_inference

BF16 = torch.bfloat16


class _Mlp(nn.Module):
    """``layers`` bias-free ``n × n`` linear layers, under an autocast region (``whole``: around all of them;
    else around all but a float32 ``tail`` of ``tail`` more layers)."""

    def __init__(self, n: int, layers: int, tail: int = 0) -> None:
        super().__init__()
        self.body = nn.Sequential(*(nn.Linear(n, n, bias=False) for _ in range(layers)))
        self.tail = nn.Sequential(*(nn.Linear(n, n, bias=False) for _ in range(tail)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=BF16):
            h = self.body(x)
        return self.tail(h.float())


def _static_and_real(model: nn.Module, n: int, batch: int = 1) -> tuple[int, int]:
    memory = crawl_module(model, (n,), batch_size=batch).memory
    assert memory is not None
    return memory.activation_peak_bytes, measure_inference(model, [torch.randn(batch, n)]).total_bytes


@pytest.mark.parametrize(("n", "layers"), [(64, 1), (64, 3), (96, 5)])
def test_casts_kept_to_the_end_of_the_region(n: int, layers: int) -> None:
    """At the last layer: the float32 input (``4n``), the layer's bfloat16 input and output (``2n`` each) and
    the bfloat16 copy of every weight (``2n²`` each), which the cache keeps since its layer ran: ``8n + 2Ln²``
    (one layer: its input's cast, ``2n``, instead of the previous output). Before, the peak counted the last
    weight's copy only."""
    static, real = _static_and_real(_Mlp(n, layers).eval(), n)
    assert static == real == 4 * n + 2 * n + 2 * n + 2 * n * n * layers


def test_casts_freed_where_the_region_exits() -> None:
    """A float32 tail after the region: its ops run with the cache cleared (the region exited); a tail layer's
    float32 weight is not copied."""
    model = _Mlp(128, 2, tail=3).eval()
    static, real = _static_and_real(model, 128)
    assert static == real


def test_a_parameter_cast_twice_in_a_region_is_kept_once() -> None:
    """One layer applied three times: its weight is cast once and found in the cache after."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(64, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", dtype=BF16):
                return self.layer(self.layer(self.layer(x)))

    static, real = _static_and_real(Shared().eval(), 64)
    assert static == real


def test_no_copy_kept_of_a_frozen_parameter() -> None:
    """A parameter that requires no grad is cast anew by every op and its copy freed with it (ATen caches only
    leaves that require grad)."""
    model = _Mlp(128, 3).eval().requires_grad_(False)
    static, real = _static_and_real(model, 128)
    assert static == real == 8 * 128 + 2 * 128 * 128


def test_under_the_callers_region_the_copies_are_kept_past_the_forward() -> None:
    model = _Mlp(64, 2, tail=2).eval()
    with torch.autocast("cpu", dtype=BF16):
        static, real = _static_and_real(model, 64, batch=2)
    assert static == real


def test_without_autocast_nothing_is_kept() -> None:
    model = nn.Sequential(nn.Linear(64, 64, bias=False), nn.Linear(64, 64, bias=False)).eval()
    static, real = _static_and_real(model, 64)
    assert static == real == 4 * 64 * 3


class _Nested(nn.Module):
    """An enabled region holding one the forward disables, then float32 ops outside both."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(256, 256) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=BF16):
            x = self.a(x)
            with torch.autocast("cpu", enabled=False):
                x = self.b(x.float())
            x = self.c(x)
        return self.d(x.float()) + 1


def test_a_region_disabled_inside_an_enabled_one_keeps_the_cache() -> None:
    """The cache is cleared when the outermost region exits, not the disabled one (before the depth was noted,
    the copy of ``a``'s weight was freed at ``b``: half the peak)."""
    static, real = _static_and_real(_Nested().eval(), 256)
    assert static == real


class _Recorded(nn.Module):
    """fx cannot trace ``torch.arange(…).expand(n, -1)`` on a size it reads: the forward is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(64, 64), nn.Linear(64, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=BF16):
            ramp = torch.arange(64.0).expand(x.shape[0], -1)
            x = self.second(self.first(x + ramp))
        return x.float() * 2


def test_a_recorded_forward_keeps_the_copies_too() -> None:
    model = _Recorded().eval()
    report = crawl_module(model, (64,), batch_size=2)
    assert report.context.capture != "torch.fx"
    assert report.memory is not None
    assert report.memory.activation_peak_bytes == measure_inference(model, [torch.randn(2, 64)]).total_bytes


def test_a_sweep_keeps_the_copies_as_fresh_analyses_do() -> None:
    model = _Nested().eval()
    swept = sweep(model, [{"batch_size": size} for size in (1, 4, 16)], input_shape=(256,))
    assert [report.to_dict() for report in swept] == [
        crawl_module(model, (256,), batch_size=size).to_dict() for size in (1, 4, 16)
    ]
