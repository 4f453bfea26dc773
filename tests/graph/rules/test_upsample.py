"""``F.interpolate`` and ``nn.Upsample`` against FakeTensor dispatch: answered for a contiguous input
wherever torch accepts the call, never where it refuses it."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn import functional as F

from tests.graph.rules.helpers import check, laid_out

_MODES = ["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"]


@given(
    rank=st.integers(2, 5),
    sizes=st.lists(st.integers(1, 6), min_size=3, max_size=3),
    mode=st.sampled_from(_MODES),
    target=st.sampled_from(["size", "sizes", "scale", "scales", "both", "neither"]),
    scale=st.sampled_from([0.5, 1.5, 2, 2.0, 0.34, 3.7, -1.0]),
    align_corners=st.sampled_from([None, True, False]),
    recompute=st.sampled_from([None, True, False]),
    data=st.data(),
)
def test_interpolate(
    rank: int,
    sizes: list[int],
    mode: str,
    target: str,
    scale: Any,
    align_corners: Any,
    recompute: Any,
    data: st.DataObject,
) -> None:
    dims = rank - 2
    shape = [2, 3, *sizes[:dims]]
    given_size = {"size": 4, "sizes": [4 + d for d in range(dims)], "both": 4}.get(target)
    given_scale = {"scale": scale, "scales": [scale] * dims, "both": scale}.get(target)
    with FakeTensorMode():
        x = laid_out(shape, data)
        kwargs = {"size": given_size, "scale_factor": given_scale, "mode": mode, "align_corners": align_corners}
        outcome = check(F.interpolate, (x,), {**kwargs, "recompute_scale_factor": recompute})
        as_tuple = tuple(given_scale) if isinstance(given_scale, list) else given_scale  # the module's spelling
        module = nn.Upsample(given_size, as_tuple, mode, align_corners, recompute)
        assert check(module, (x,)) == outcome
    accepted = outcome != "rejected"
    scales = given_scale if isinstance(given_scale, list) else [given_scale] * dims
    scaled = given_size is None and given_scale is not None
    lengths = [int(n * f) for n, f in zip(sizes[:dims], scales, strict=True)] if scaled else []
    empty = any(length < 1 for length in lengths)
    # an empty result (``(2, 3, 1)`` at 0.5: a length of 0) is torch's to say, mode by mode: the rule declines it
    if accepted and x.is_contiguous() and mode != "area" and dims > 0 and not empty:
        assert outcome == "answered"
    if mode == "bilinear" and dims == 2:
        with FakeTensorMode():
            x = torch.empty(shape)
            assert check(nn.UpsamplingBilinear2d(scale_factor=2), (x,)) == "answered"
            assert check(nn.UpsamplingNearest2d(size=5), (x,)) == "answered"
