"""Buffers that kernels make and fake kernels do not: oneDNN's LSTM workspace, recorded at its size."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.passes.memory.test_internal import _really_saved
from tests.profiles import examples
from torchscan import crawl_module
from torchscan.ops.recurrent import MKLDNN_RNN_LAYER, onednn_lstm_workspace
from torchscan.passes.memory.kernels import with_workspace

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def _fake_layer(mode: FakeTensorMode) -> tuple[object, ...]:
    """Fake arguments of one LSTM layer: 7 steps, batch 3, 10 features in, hidden 20."""
    with mode:
        tensors = (
            torch.empty(7, 3, 10),
            torch.empty(80, 10),
            torch.empty(80, 20),
            torch.empty(80),
            torch.empty(80),
            torch.empty(3, 20),
            torch.empty(3, 20),
        )
    return (*tensors, False, [], 2, 20, 1, True, False, False, True)


def test_the_fake_workspace_gets_the_real_size_with_grad_only() -> None:
    mode = FakeTensorMode()
    args = _fake_layer(mode)
    with mode:
        fake = MKLDNN_RNN_LAYER(*args)
        assert fake[3].untyped_storage().nbytes() == 0  # what the fake kernel returns
        result = with_workspace(MKLDNN_RNN_LAYER, args, {}, fake)
        with torch.no_grad():
            inference = with_workspace(MKLDNN_RNN_LAYER, args, {}, fake)
        assert with_workspace(torch.ops.aten.add.Tensor, (), {}, fake) is fake  # nothing declared
    assert result[:3] == fake[:3] and result[3].dtype == torch.uint8
    assert result[3].untyped_storage().nbytes() == onednn_lstm_workspace(7, 3, 10, 20, 4)
    assert inference is fake


class _Tagger(nn.Module):
    def __init__(self, hidden: int, layers: int, bidirectional: bool, batch_first: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(40, 12)
        self.lstm = nn.LSTM(12, hidden, layers, batch_first=batch_first, bidirectional=bidirectional)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lstm(self.embed(ids))[0]


@settings(max_examples=examples(6))
@given(
    steps=st.integers(1, 24),
    batch=st.integers(1, 4),
    hidden=st.integers(1, 70),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
)
def test_an_lstm_saves_what_a_real_forward_saves(
    steps: int, batch: int, hidden: int, layers: int, bidirectional: bool, batch_first: bool
) -> None:
    """Workspaces included (one per layer and direction, kept for the backward): the recorded saved
    bytes equal the storages autograd really keeps (its output, not its final states)."""
    model = _Tagger(hidden, layers, bidirectional, batch_first).train()
    ids = torch.zeros((batch, steps) if batch_first else (steps, batch), dtype=torch.long)
    memory = crawl_module(model, args=(ids,), batch_size=None).memory
    assert memory is not None
    workspaces = layers * (2 if bidirectional else 1) * onednn_lstm_workspace(steps, batch, 12, hidden, 4)
    assert memory.saved_activation_bytes == _really_saved(model, ids) > workspaces
