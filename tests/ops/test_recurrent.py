"""RNN / LSTM / GRU (+ cells): MACs equal ``T·B·gates·H·(I + H)`` per layer and direction."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from tests.ops.helpers import cost, spec
from tests.profiles import examples
from torchscan import crawl_module
from torchscan.ops import DEFAULT_REGISTRY
from torchscan.ops.recurrent import MKLDNN_RNN_LAYER, mkldnn_rnn_layer_workspace, onednn_leading_dim

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


# -- oneDNN's LSTM workspace (aten.mkldnn_rnn_layer on CPU) -------------------------------------------
_ONEDNN = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
_DTYPES = [
    torch.float32,
    pytest.param(
        torch.bfloat16,
        marks=pytest.mark.skipif(
            not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            reason="no bfloat16 oneDNN kernels on this CPU",
        ),
    ),
]
_SIZES = st.one_of(st.integers(1, 300), st.sampled_from([16, 32, 63, 64, 65, 128, 192, 255, 256, 257]))
"""Layer widths, with the edges of oneDNN's leading dimensions (64-byte rows, multiples of 256)."""


def _layer(steps: int, batch: int, inputs: int, hidden: int, dtype: torch.dtype, **flags: bool) -> tuple[Any, ...]:
    """Arguments of one ``aten.mkldnn_rnn_layer`` call on real (uninitialised) tensors."""

    def empty(*shape: int) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype)

    weights = (empty(4 * hidden, inputs), empty(4 * hidden, hidden), empty(4 * hidden), empty(4 * hidden))
    states = (empty(batch, hidden), empty(batch, hidden))
    return (
        empty(steps, batch, inputs),
        *weights,
        *states,
        flags.get("reverse", False),
        [],
        2,  # ideep's LSTM
        hidden,
        1,
        flags.get("has_biases", True),
        flags.get("bidirectional", False),
        flags.get("batch_first", False),
        flags.get("train", True),
    )


@_ONEDNN
@pytest.mark.parametrize("dtype", _DTYPES)
@settings(max_examples=examples(15))
@given(
    steps=st.integers(1, 40),
    batch=st.integers(1, 12),
    inputs=_SIZES,
    hidden=_SIZES,
    flags=st.fixed_dictionaries(
        {name: st.booleans() for name in ("reverse", "has_biases", "bidirectional", "batch_first", "train")}
    ),
)
def test_onednn_lstm_workspace_equals_the_real_op_s(
    dtype: torch.dtype, steps: int, batch: int, inputs: int, hidden: int, flags: dict[str, bool]
) -> None:
    """The closed form against the workspace the real kernel returns (torch 2.14.1, oneDNN v3.12.0
    when written), for any flags: only the input's shape and dtype and ``hidden_size`` matter."""
    args = _layer(steps, batch, inputs, hidden, dtype, **flags)
    workspace = MKLDNN_RNN_LAYER(*args)[3]
    assert workspace.dtype == torch.uint8
    assert workspace.nbytes == mkldnn_rnn_layer_workspace(*args) > 0


@_ONEDNN
def test_no_workspace_without_grad() -> None:
    args = _layer(5, 3, 8, 16, torch.float32)
    with torch.no_grad():
        assert MKLDNN_RNN_LAYER(*args)[3] is None  # the kernel's undefined tensor
        assert mkldnn_rnn_layer_workspace(*args) == 0
    assert mkldnn_rnn_layer_workspace(*args) > 0


class _Layers(TorchDispatchMode):
    """The workspace bytes of each ``mkldnn_rnn_layer`` a real forward runs, and the closed form's."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if func is MKLDNN_RNN_LAYER:
            made = result[3].nbytes if result[3] is not None else 0
            self.seen.append((made, mkldnn_rnn_layer_workspace(*args, **(kwargs or {}))))
        return result


@_ONEDNN
@settings(max_examples=examples(10))
@given(
    steps=st.integers(1, 12),
    batch=st.integers(1, 5),
    inputs=st.integers(1, 40),
    hidden=st.integers(1, 40),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    grad=st.booleans(),
)
def test_every_layer_of_an_lstm_forward(
    steps: int, batch: int, inputs: int, hidden: int, layers: int, bidirectional: bool, batch_first: bool, grad: bool
) -> None:
    """``nn.LSTM`` runs one ``mkldnn_rnn_layer`` per layer and direction (the layers above the first
    read ``dirs·H`` features); each one's workspace is the closed form, none without grad."""
    module = nn.LSTM(inputs, hidden, layers, batch_first=batch_first, bidirectional=bidirectional).train()
    x = torch.zeros((batch, steps, inputs) if batch_first else (steps, batch, inputs))
    mode = _Layers()
    with torch.set_grad_enabled(grad), mode:
        module(x)
    assert len(mode.seen) == layers * (2 if bidirectional else 1)
    assert all(made == expected for made, expected in mode.seen)
    assert all((made > 0) == grad for made, _ in mode.seen)


@_ONEDNN
@pytest.mark.parametrize("module", [nn.GRU(8, 16), nn.RNN(8, 16), nn.LSTM(8, 16, proj_size=4), nn.LSTMCell(8, 16)])
def test_only_the_unprojected_lstm_runs_onednn(module: nn.Module) -> None:
    """GRU, RNN, a projected LSTM and the cells take ATen's own kernels on CPU: no hidden workspace."""
    mode = _Layers()
    with mode:
        module(torch.zeros(5, 8) if isinstance(module, nn.LSTMCell) else torch.zeros(5, 3, 8))
    assert mode.seen == []


def test_onednn_leading_dim() -> None:
    """Rows padded to 64 bytes, one step more at multiples of 256 elements (float32: 16, bfloat16: 32)."""
    assert [onednn_leading_dim(n, 4) for n in (1, 16, 17, 128, 255, 256, 512)] == [16, 16, 32, 128, 272, 272, 528]
    assert [onednn_leading_dim(n, 2) for n in (1, 32, 33, 256, 512)] == [32, 32, 64, 288, 544]


def test_the_workspace_is_declared_with_the_op() -> None:
    declared = DEFAULT_REGISTRY.workspace(MKLDNN_RNN_LAYER)
    assert declared is not None and declared.output == 3 and declared.nbytes is mkldnn_rnn_layer_workspace
    assert DEFAULT_REGISTRY.workspace(torch.ops.aten.lstm.input) is None


class _Packed(nn.Module):
    """An LSTM over padded sequences of given lengths, packed then padded again (the usual variable-length batch)."""

    def __init__(self, cls: type = nn.LSTM) -> None:
        super().__init__()
        self.rnn = cls(4, 8, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_packed_sequences_count_their_valid_steps_only(cls: type) -> None:
    """The recording of a forward taking a ``PackedSequence`` failed (``'Node' object has no attribute 'device'``:
    the named tuple rebuilt around graph nodes checks its fields as tensors); packing and padding had no formula.
    The lengths are data: one real forward. The recurrent layer counts the 5 + 3 + 2 valid steps (its closed form
    at 10 steps of batch 1), packing and padding copy what they read: complete."""
    report = crawl_module(_Packed(cls), args=(torch.zeros(3, 5, 4), torch.tensor([5, 3, 2])))
    assert report.context.capture == "real-forward" and report.totals.complete
    rows = {row.name: row for row in report.rows}
    assert rows["rnn"].macs == closed_form(cls, 10, 1, 4, 8, 1, 1)
    assert rows["_pack_padded_sequence"].dmas == 2 * 10 * 4 + 3 + 5  # data copied, lengths read, batch sizes
    assert rows["_pad_packed_sequence"].dmas == 10 * 8 + 5 + 3 * 5 * 8 + 3  # data, batch sizes; padded, lengths
    assert rows["_pack_padded_sequence"].flops == rows["_pad_packed_sequence"].flops == 0
