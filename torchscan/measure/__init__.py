"""Real measurements to check the static estimates against: live tensor bytes on CPU, CUDA peaks."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["private_copy"]


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` for a measured run, its parameters leaves with the model's grad flags. A TorchScript
    module's deep copy records the copies in autograd (its parameters are not leaves then, and an optimizer refuses
    them); made with grad disabled, they are leaves that require no grad: the flags are set back."""
    with torch.no_grad():
        clone = copy.deepcopy(model)
    for original, copied in zip(model.parameters(), clone.parameters(), strict=False):
        if copied.requires_grad != original.requires_grad:
            copied.requires_grad_(original.requires_grad)
    return clone
