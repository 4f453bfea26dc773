"""Memory op families: the target tables, the package layout and the eager source-line parser."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

import torchscan.passes.memory as memory
from torchscan.graph.calls import display_type
from torchscan.passes.memory.eager_names import assigned_name, is_augmented, root_call
from torchscan.passes.memory.families import _TARGETS, FAMILIES, Family, op_key


def test_every_target_has_one_family() -> None:
    keys = [op_key(display_type(target)) for targets in _TARGETS.values() for target in targets]
    assert len(set(keys)) == len(FAMILIES)
    for kind, targets in _TARGETS.items():
        assert all(FAMILIES[op_key(display_type(target))] is kind for target in targets)


def test_spellings_of_one_op_share_a_family() -> None:
    assert FAMILIES[op_key(display_type(nn.ReLU))] is Family.SAVES_OUTPUT
    assert FAMILIES[op_key(display_type(F.relu_))] is Family.SAVES_OUTPUT
    assert FAMILIES[op_key(display_type(operator.matmul))] is Family.MATMUL
    assert FAMILIES[op_key(display_type(torch.cat))] is Family.SAVES_NOTHING
    assert op_key(display_type(torch.nn.GELU)) not in FAMILIES  # saves its input, the default


def test_public_names_importable_from_the_package() -> None:
    assert set(memory.__all__) <= set(dir(memory))
    for name in ("estimate_memory", "with_output_bytes", "library_modules", "LIBRARY_MODULES", "workspace"):
        assert name in memory.__all__


def test_eager_names_of_source_lines() -> None:
    assert assigned_name("x = self.conv(x)") == "x"
    assert assigned_name("x == y") is None
    assert is_augmented("out += identity") and not is_augmented("out = out + identity")
    assert root_call("x = torch.cat([x, y], 1)") == ("cat", 1)
    assert root_call("x = x + self.f(x)") == ("add", 2)
    assert root_call("a, b = f(x)") == (None, 1)
    assert root_call("not python(") == (None, 1)
