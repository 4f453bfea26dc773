"""torchvision's fx-wrapped functions (lazy table) and complete reports on real torchvision models."""

from __future__ import annotations

import pytest
import torch

from tests.ops.helpers import spec
from torchscan import crawl_module
from torchscan.ops import DEFAULT_REGISTRY
from torchscan.ops.torchvision_ops import shifted_window_attention, stochastic_depth
from torchscan.records import Cost, OpCall

torchvision = pytest.importorskip("torchvision")


def test_lazy_table_resolves_once_torchvision_is_imported() -> None:
    from torchvision.ops import stochastic_depth as function

    assert DEFAULT_REGISTRY.lookup(function) is not None


def test_stochastic_depth() -> None:
    x = spec(4, 3, 2, 2)
    call = OpCall("function", None, (x,), (x,), {"p": 0.2, "mode": "row", "training": False})
    assert stochastic_depth(call) == Cost()
    call = OpCall("function", None, (x,), (x,), {"p": 0.2, "mode": "row", "training": True})
    assert stochastic_depth(call) == Cost(flops=48 + 4, dmas=48 + 4 + 48)


def test_window_attention_macs() -> None:
    # 1x8x8x16 input, 4x4 windows (4 windows of 16 tokens), 2 heads, no shift
    x = spec(1, 8, 8, 16)
    attrs = {"window_size": [4, 4], "num_heads": 2, "shift_size": [0, 0], "training": False}
    got = shifted_window_attention(OpCall("function", None, (x,), (x,), attrs))
    tokens, channels = 64, 16
    linear_macs = tokens * channels * 3 * channels + tokens * channels * channels
    attention_macs = 2 * 4 * 16 * 16 * channels  # q kᵀ and attn v over 4 windows
    assert got.macs == linear_macs + attention_macs


ZOO = ["vit_b_16", "convnext_tiny", "efficientnet_b0", "mobilenet_v3_large", "swin_t", "regnet_y_400mf", "maxvit_t"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_reports_are_complete(name: str) -> None:
    model = getattr(torchvision.models, name)().eval()
    with torch.no_grad():
        report = crawl_module(model, (3, 224, 224))
    assert report.totals.complete, [d.message for d in report.diagnostics]


def test_swin_t_is_complete_and_close_to_published() -> None:
    model = torchvision.models.swin_t().eval()
    report = crawl_module(model, (3, 224, 224))
    assert report.totals.complete, [d.message for d in report.diagnostics]
    assert abs(report.totals.macs / 4.49e9 - 1) < 0.01  # torchvision's card: 4.49 GFLOPS (multiply-adds)
