"""The private copy every measured run makes of the model (:func:`torchscan.measure.private_copy`)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from torchscan.measure import private_copy
from torchscan.measure.cpu import OPTIMIZER_FACTORIES, measure_training


def _model() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model[0].bias.requires_grad_(False)  # a frozen parameter stays frozen
    return model


def test_a_scripted_module_copy_has_leaf_parameters_with_the_model_grad_flags() -> None:
    """A TorchScript module's deep copy records the copies in autograd: its parameters were not leaves, and every
    measured training step of a scripted model failed (``can't optimize a non-leaf Tensor``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(_model())
    for model in (_model(), scripted):
        clone = private_copy(model)
        copied = list(clone.parameters())
        assert all(tensor.is_leaf for tensor in copied)
        assert [tensor.requires_grad for tensor in copied] == [tensor.requires_grad for tensor in model.parameters()]
        assert all(a is not b for a, b in zip(copied, model.parameters(), strict=True))
    step = measure_training(scripted, [torch.randn(3, 4)], OPTIMIZER_FACTORIES["sgd"])
    assert step.total_bytes > 0
