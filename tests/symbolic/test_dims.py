"""Named sizes: constraints, where they are found in the inputs, substitution."""

from __future__ import annotations

import random

import pytest
import torch

from torchscan import Dim, InputError, TensorSpec
from torchscan.symbolic.dims import collect_dims, grid_values, has_dims, substitute, verification_values


def test_constraints() -> None:
    h = Dim("H", min=30, multiple_of=32, max=320)
    assert h.first == 32
    assert [h.admits(v) for v in (32, 33, 64, 320, 352, 0)] == [True, False, True, True, False, False]
    assert grid_values(h, 3) == (32, 64, 96)
    with pytest.raises(InputError, match="too few"):
        grid_values(Dim("H", min=32, max=64, multiple_of=32), 3)
    with pytest.raises(InputError, match="identifier"):
        Dim("2x")
    with pytest.raises(InputError, match="no multiple"):
        Dim("H", min=33, max=40, multiple_of=32)
    values = verification_values(h, 20, (32, 64, 96), random.Random(0), 24)
    assert all(h.admits(v) and v not in (32, 64, 96) for v in values)


def test_sizes_are_found_in_shapes_only() -> None:
    spec = TensorSpec((Dim("B"), "L"), torch.long)
    assert has_dims(None, (spec,), {"mode": "nearest"}, 1)
    assert not has_dims(None, (TensorSpec((2, 3)),), {"mode": "nearest"}, 1)  # a string argument is a value
    assert [d.name for d in collect_dims((3, "H", "W"), None, None, "B")] == ["B", "H", "W"]
    with pytest.raises(InputError, match="two different constraints"):
        collect_dims((Dim("H", multiple_of=8), Dim("H", multiple_of=16)), None, None, 1)
    assert collect_dims((Dim("H", multiple_of=8), "H"), None, None, 1) == (Dim("H", multiple_of=8),)


def test_substitution() -> None:
    spec = TensorSpec((Dim("B"), "L"), torch.long)
    point = {"B": 2, "L": 7}
    assert substitute((spec, {"mask": spec, "mode": "L"}), point) == (
        TensorSpec((2, 7), torch.long),
        {"mask": TensorSpec((2, 7), torch.long), "mode": "L"},
    )
    assert substitute((3, "L"), point, shape=True) == (3, 7)
