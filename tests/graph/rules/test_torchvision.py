"""The torchvision rules (swin window attention, relative position bias) against FakeTensor dispatch."""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.graph.rules.helpers import check


def test_swin_rules_answer_what_dispatch_makes_and_decline_bad_shapes(fake: FakeTensorMode) -> None:
    from torchvision.models import swin_transformer as swin

    x, qkv, proj = torch.empty(2, 7, 9, 8), torch.empty(24, 8), torch.empty(8, 8)
    table, index = torch.empty(9 * 9, 2), torch.zeros(25 * 25, dtype=torch.long)
    assert check(swin._get_relative_position_bias, (table, index, [5, 5])) == "answered"
    bias = swin._get_relative_position_bias(table, index, [5, 5])
    for shift in ([0, 0], [2, 2]):
        kwargs = {"shift_size": shift, "qkv_bias": torch.empty(24), "proj_bias": torch.empty(8), "training": False}
        assert check(swin.shifted_window_attention, (x, qkv, proj, bias, [5, 5], 2), kwargs) == "answered"
    assert check(swin.shifted_window_attention, (x, qkv, proj, bias, [5, 5], 3), {"shift_size": [0, 0]}) != "answered"
    assert check(
        swin.shifted_window_attention, (x, torch.empty(24, 7), proj, bias, [5, 5], 2), {"shift_size": [0, 0]}
    ) in (
        "declined",
        "rejected",
    )
