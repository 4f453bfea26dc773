"""The torchvision rules (swin window attention, relative position bias, patch merging's padding,
stochastic depth) against FakeTensor dispatch."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
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


@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    p=st.sampled_from([0.0, 0.2, 1.0, 1.5, -0.1]),
    mode=st.sampled_from(["row", "batch", "column"]),
    training=st.booleans(),
    keyword=st.booleans(),
    transposed=st.booleans(),
)
def test_stochastic_depth(
    shape: list[int], p: float, mode: str, training: bool, keyword: bool, transposed: bool
) -> None:
    """Against dispatch: the input itself in eval mode or at p = 0, a new tensor in training; a bad
    p or mode is torch's error (never answered)."""
    from torchvision.ops import stochastic_depth

    with FakeTensorMode():
        x = torch.empty(shape)
        if transposed and x.dim() >= 2:
            x = x.transpose(0, -1)
        args, kwargs = ((x, p, mode), {"training": training}) if keyword else ((x, p, mode, training), {})
        outcome = check(stochastic_depth, args, kwargs)
    valid = 0.0 <= p <= 1.0 and mode in ("row", "batch")
    if valid and (x.is_contiguous() or not training or p == 0.0):
        assert outcome == "answered"
    if not valid:
        assert outcome == "rejected"


@given(
    shape=st.lists(st.integers(1, 5), min_size=2, max_size=5),
    layout=st.sampled_from(["contiguous", "permuted", "sliced"]),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.int64]),
)
def test_patch_merging_pad(shape: list[int], layout: str, dtype: torch.dtype) -> None:
    """Swin's ``_patch_merging_pad`` of ``[..., H, W, C]`` (odd sizes padded): answered as dispatch makes it
    for a contiguous input of three dims or more, declined for other layouts, torch's error below three."""
    from torchvision.models import swin_transformer as swin

    with FakeTensorMode():
        x = torch.empty(shape, dtype=dtype)
        if layout == "permuted":
            x = x.transpose(0, -1)
        elif layout == "sliced":
            x = x[..., ::2, :]
        outcome = check(swin._patch_merging_pad, (x,))
    if layout == "contiguous" or x.is_contiguous():
        assert outcome == ("answered" if len(shape) >= 3 else "rejected")
    else:
        assert outcome in ("declined", "rejected")
