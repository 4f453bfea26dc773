"""RNN / LSTM / GRU (+ cells): MACs equal ``T·B·gates·H·(I + H)`` per layer and direction."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.ops.helpers import cost, spec
from torchscan import crawl_module

GATES = {nn.RNN: 1, nn.LSTM: 4, nn.GRU: 3}


def closed_form(cls: type, steps: int, batch: int, inputs: int, hidden: int, layers: int, dirs: int) -> int:
    total = 0
    for layer in range(layers):
        size = inputs if layer == 0 else dirs * hidden
        total += dirs * steps * batch * GATES[cls] * hidden * (size + hidden)
    return total


@given(
    cls=st.sampled_from([nn.RNN, nn.LSTM, nn.GRU]),
    steps=st.integers(1, 5),
    batch=st.integers(1, 3),
    inputs=st.integers(1, 6),
    hidden=st.integers(1, 6),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    bias=st.booleans(),
)
def test_closed_form(
    cls: type,
    steps: int,
    batch: int,
    inputs: int,
    hidden: int,
    layers: int,
    bidirectional: bool,
    batch_first: bool,
    bias: bool,
) -> None:
    module = cls(inputs, hidden, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional).eval()
    shape = (batch, steps, inputs) if batch_first else (steps, batch, inputs)
    report = crawl_module(module, shape, batch_size=None)
    assert report.totals.complete
    dirs = 2 if bidirectional else 1
    assert report.totals.macs == closed_form(cls, steps, batch, inputs, hidden, layers, dirs)
    assert report.totals.flops > 2 * report.totals.macs - report.totals.macs  # gates and nonlinearities


def test_unbatched_and_projected_lstm() -> None:
    module = nn.LSTM(4, 6, proj_size=3).eval()
    report = crawl_module(module, (5, 4), batch_size=None)
    # gates over (I + proj) inputs, then the projection H -> proj
    assert report.totals.macs == 5 * 4 * 6 * (4 + 3) + 5 * 6 * 3


def test_lstm_table_flops_and_dmas() -> None:
    attrs = {"input_size": 3, "hidden_size": 2, "num_layers": 1, "bias": True, "batch_first": False, "proj_size": 0}
    got = cost(nn.LSTM, (spec(4, 1, 3),), (spec(4, 1, 2),), **attrs)
    per_step_flops = 4 * 2 * (2 * 3 + 2 * 2 - 1) + 2 * 4 * 2 + 28 * 2
    params = 4 * 2 * (3 + 2) + 2 * 4 * 2
    assert got.macs == 4 * 4 * 2 * (3 + 2)
    assert got.flops == 4 * per_step_flops
    assert got.dmas == params + 4 * (3 + 2 + 2 + 2 * 2)


def test_projected_lstm_flops_and_dmas() -> None:
    """LSTM(4, 6, proj_size=3) over 5 steps, unbatched: g = 4, H = 6, Hr = 3, I = 4.
    Per step: gates 24·(2·4 + 2·3 − 1) = 312, biases 2·24 = 48, cell 28·6 = 168, projection
    3·(2·6 − 1) = 33: 561, 2805 over 5 steps. Parameters 96 (W_ih) + 72 (W_hh) + 48 (biases) +
    18 (W_hr) = 234, read once; per step x (4), h (3) read, h (3) written, cell state (6) read and
    written: 5·22 = 110. DMAs 344."""
    attrs = {"input_size": 4, "hidden_size": 6, "num_layers": 1, "bias": True, "batch_first": False, "proj_size": 3}
    got = cost(nn.LSTM, (spec(5, 4),), (spec(5, 3),), **attrs)
    assert got.flops == 2805
    assert got.dmas == 344
    assert sum(p.numel() for p in nn.LSTM(4, 6, proj_size=3).parameters()) == 234


@pytest.mark.parametrize(
    "module",
    [
        nn.LSTM(4, 6, proj_size=3),
        nn.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True),
        nn.LSTM(3, 5, bias=False, proj_size=4),
        nn.GRU(3, 4, num_layers=2),
        nn.RNN(2, 3, bias=False, bidirectional=True),
    ],
)
def test_weights_are_read_once(module: nn.Module) -> None:
    """The DMAs of one step of an unbatched sequence less its per-step traffic are the module's
    parameters, counted by torch: per layer and direction ``x`` (I) and ``h`` (Hr) read, ``h``
    written, an LSTM's cell state (H) read and written."""
    module = module.eval()
    hidden, proj = module.hidden_size, module.proj_size or module.hidden_size
    dirs = 2 if module.bidirectional else 1
    state = 2 * hidden if isinstance(module, nn.LSTM) else 0
    traffic = sum(
        dirs * ((module.input_size if layer == 0 else dirs * proj) + 2 * proj + state)
        for layer in range(module.num_layers)
    )
    report = crawl_module(module, (1, module.input_size), batch_size=None)
    assert report.totals.dmas - traffic == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("cls", "gates"), [(nn.RNNCell, 1), (nn.LSTMCell, 4), (nn.GRUCell, 3)])
def test_cells(cls: type, gates: int) -> None:
    report = crawl_module(cls(5, 7).eval(), (5,), batch_size=3)
    assert report.totals.complete
    assert report.totals.macs == 3 * gates * 7 * (5 + 7)


def test_relu_rnn_is_cheaper_than_tanh() -> None:
    tanh = crawl_module(nn.RNN(3, 4).eval(), (2, 3), batch_size=None).totals.flops
    relu = crawl_module(nn.RNN(3, 4, nonlinearity="relu").eval(), (2, 3), batch_size=None).totals.flops
    assert tanh - relu == 2 * 4 * (6 - 1)


def test_training_dropout_between_layers() -> None:
    module = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    train = crawl_module(module.train(), (2, 1, 3), batch_size=None).totals
    evaluated = crawl_module(module.eval(), (2, 1, 3), batch_size=None).totals
    assert train.flops - evaluated.flops == 2 * 1 * 4
    assert train.macs == evaluated.macs
    torch.manual_seed(0)
