"""Recurrent layers: ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (layers, bidirectional, batch_first,
LSTM projections) and their cells.

Per layer and direction, over ``T`` steps and a batch of ``B``, with ``gates`` = 1 (RNN),
4 (LSTM), 3 (GRU), hidden size ``H``, recurrent size ``Hr`` (``proj_size`` of a projected LSTM,
else ``H``) and layer input size ``I`` (``input_size`` for layer 0, ``dirs·Hr`` above):

- ``MACs = T·B·gates·H·(I + Hr)`` (+ ``T·B·H·Hr`` for an LSTM projection);
- ``FLOPs = T·B·[gates·H·(2I + 2Hr − 1) + 2·gates·H·[bias] + e·H (+ Hr·(2H − 1) projection)]``
  where the elementwise work per hidden unit is ``e`` = 6 (RNN tanh) or 1 (RNN relu),
  28 (LSTM: three sigmoids, two tanh, ``f·c + i·g``, ``o·tanh(c)``), 19 (GRU: two sigmoids,
  ``r·hn``, tanh, ``(1 − z)·n + z·h``); training dropout between layers adds one FLOP per element
  of each non-final layer's output;
- ``DMAs = P_ld + T·B·(I + Hr) + T·B·Hr (+ 2·T·B·H LSTM cell state)``: weights once, ``x_t`` and
  ``h_{t−1}`` read and ``h_t`` written per step, the LSTM cell state read and written.

A cell is one step (``T = 1``) of one layer in one direction.

On CPU, with grad enabled, ``nn.LSTM`` runs one ``aten.mkldnn_rnn_layer`` per layer and direction
(oneDNN's LSTM; not GRU or RNN, not a projected LSTM, not packed sequences), whose kernel returns the
workspace that its backward reads, a buffer the op's fake kernel returns empty; its size is
:func:`onednn_lstm_workspace` (declared as the op's :class:`~torchscan.ops.registry.Workspace`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchscan.ops.registry import FormulaTable, Workspace
from torchscan.records import Cost, OpCall
from torchscan.records.frozen import frozen_record

TABLE = FormulaTable("recurrent")

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
ELEMENTWISE = {"rnn_tanh": 6, "rnn_relu": 1, "lstm": 28, "gru": 19}


@frozen_record
class RecurrentLayer:
    """One layer in one direction over a sequence."""

    kind: str  # rnn_tanh, rnn_relu, lstm, gru
    steps: int
    batch: int
    input_size: int
    hidden_size: int
    recurrent_size: int
    bias: bool

    @property
    def gates(self) -> int:
        return GATES[self.kind.split("_")[0]]

    @property
    def params(self) -> int:
        g, h, hr = self.gates, self.hidden_size, self.recurrent_size
        projection = h * hr if hr != h else 0
        return g * h * (self.input_size + hr) + 2 * g * h * self.bias + projection


def recurrent_layer_cost(layer: RecurrentLayer) -> Cost:
    """Cost of one layer and direction (module docstring)."""
    g, h, hr, i = layer.gates, layer.hidden_size, layer.recurrent_size, layer.input_size
    tokens = layer.steps * layer.batch
    projected = hr != h
    macs = g * h * (i + hr) + h * hr * projected
    flops = g * h * (2 * i + 2 * hr - 1) + 2 * g * h * layer.bias + ELEMENTWISE[layer.kind] * h
    flops += hr * (2 * h - 1) * projected
    state = 2 * h if layer.kind == "lstm" else 0
    dmas = tokens * (i + hr + hr + state)
    return Cost(flops=tokens * flops, macs=tokens * macs, dmas=layer.params + dmas)


def _kind(call: OpCall, family: str) -> str:
    if family == "rnn":
        return f"rnn_{call.get('nonlinearity', 'tanh')}"
    return family


def _sequence(call: OpCall) -> tuple[int, int]:
    """``(T, B)`` of a ``(T, B, I)``/``(B, T, I)`` or unbatched ``(T, I)`` input."""
    spec = call.input
    if spec.ndim < 3:
        return spec.shape[0], 1
    if call.get("batch_first", False):
        return spec.shape[1], spec.shape[0]
    return spec.shape[0], spec.shape[1]


@TABLE.register(nn.RNN, family="rnn")
@TABLE.register(nn.LSTM, family="lstm")
@TABLE.register(nn.GRU, family="gru")
def recurrent(call: OpCall, family: str) -> Cost:
    """RNN / LSTM / GRU: the sum over layers and directions of ``MACs = T·B·gates·H·(I + Hr)``
    (+ ``T·B·H·Hr`` projection); FLOPs and DMAs per the module docstring."""
    steps, batch = _sequence(call)
    hidden = int(call.attrs["hidden_size"])
    recurrent_size = int(call.get("proj_size", 0)) or hidden
    directions = 2 if call.get("bidirectional", False) else 1
    layers = int(call.get("num_layers", 1))
    kind = _kind(call, family)
    cost = Cost()
    for index in range(layers):
        layer = RecurrentLayer(
            kind=kind,
            steps=steps,
            batch=batch,
            input_size=int(call.attrs["input_size"]) if index == 0 else directions * recurrent_size,
            hidden_size=hidden,
            recurrent_size=recurrent_size,
            bias=bool(call.get("bias", True)),
        )
        cost = cost + recurrent_layer_cost(layer).scaled(directions)
    training = bool(call.get("training", call.training))
    if training and float(call.get("dropout", 0.0)) > 0 and layers > 1:
        cost = cost + Cost(flops=(layers - 1) * steps * batch * directions * recurrent_size)
    return cost


@TABLE.register(nn.RNNCell, family="rnn")
@TABLE.register(nn.LSTMCell, family="lstm")
@TABLE.register(nn.GRUCell, family="gru")
def recurrent_cell(call: OpCall, family: str) -> Cost:
    """RNNCell / LSTMCell / GRUCell: one step of one layer: ``MACs = B·gates·H·(I + H)``."""
    spec = call.input
    hidden = int(call.attrs["hidden_size"])
    layer = RecurrentLayer(
        kind=_kind(call, family),
        steps=1,
        batch=spec.shape[0] if spec.ndim > 1 else 1,
        input_size=int(call.attrs["input_size"]),
        hidden_size=hidden,
        recurrent_size=hidden,
        bias=bool(call.get("bias", True)),
    )
    return recurrent_layer_cost(layer)


@TABLE.register(torch.ops.aten.mkldnn_rnn_layer.default)
def mkldnn_rnn_layer(call: OpCall) -> Cost:
    """``aten.mkldnn_rnn_layer`` (what ``nn.LSTM`` runs on CPU per layer and direction; a TorchScript model's
    recording meets it): one LSTM layer in one direction over a time-major ``(T, B, I)`` input, ``hidden_size``
    ``H`` and ``has_biases`` its arguments: the module's per-layer cost (module docstring)."""
    steps, batch, width = call.input.shape
    layer = RecurrentLayer(
        kind="lstm",
        steps=steps,
        batch=batch,
        input_size=width,
        hidden_size=int(call.attrs["hidden_size"]),
        recurrent_size=int(call.attrs["hidden_size"]),
        bias=bool(call.attrs["has_biases"]),
    )
    return recurrent_layer_cost(layer)


ONEDNN_PAGE = 4096
"""oneDNN starts every region of an RNN workspace on a 4 KiB page (``rnn_utils::set_offsets``)."""


def onednn_leading_dim(size: int, itemsize: int) -> int:
    """oneDNN's padded row length of a GEMM operand (``rnn_utils::get_good_ld``): ``size`` rounded
    up to 64 bytes, ``ld = ⌈size / s⌉·s`` with ``s = 64 / itemsize``, plus ``s`` more when ``ld`` is a
    multiple of 256 elements (to avoid 4K aliasing)."""
    step = 64 // itemsize
    ld = -(-size // step) * step
    return ld + step if ld % 256 == 0 else ld


def onednn_lstm_workspace(steps: int, batch: int, input_size: int, hidden_size: int, itemsize: int) -> int:
    """Bytes of the workspace of oneDNN's LSTM forward in training, for one layer in one direction
    (as PyTorch's ``mkldnn_rnn_layer`` calls it), ``T`` steps, batch ``B``, layer input ``I``,
    hidden ``H``, element size ``e`` (4: float32, 2: bfloat16; the accumulator is float32, 4 bytes).

    With ``S = 2·(T + 1)·B`` (the states of the layer's input and output rows at steps ``0…T``),
    ``ld_e(n)`` = :func:`onednn_leading_dim` and ``M = max(I, H)``, the regions are
    the gates ``T·B·ld_e(4H)·e``, the hidden outputs ``T·B·ld_e(H)·e``, the states ``S·ld_e(M)·e``,
    the cell states ``S·H·e``, the state gradients of layer and iteration ``2·S·ld_4(M)·4`` (two
    regions) and the cell-state gradients ``S·H·4``; each region starts on a 4096-byte page and a
    last empty region (the grid compensation, GRU-LBR only) rounds the end up too:
    ``W = Σ_regions ⌈bytes / 4096⌉·4096``.

    Region sizes and leading dimensions are oneDNN's ``rnn_utils`` (``set_workspace_sizes``,
    ``init_conf``, ``set_offsets``); checked against the real op on torch 2.14.1 with oneDNN v3.12.0
    (``tests/ops/test_recurrent.py``: hypothesis-drawn sizes, float32 and bfloat16)."""
    e, t, b, h = itemsize, steps, batch, hidden_size
    states = 2 * (t + 1) * b
    widest = max(input_size, hidden_size)
    regions = (
        t * b * onednn_leading_dim(4 * h, e) * e,
        t * b * onednn_leading_dim(h, e) * e,
        states * onednn_leading_dim(widest, e) * e,
        states * h * e,
        states * onednn_leading_dim(widest, 4) * 4,
        states * onednn_leading_dim(widest, 4) * 4,
        states * h * 4,
    )
    return sum(-(-size // ONEDNN_PAGE) * ONEDNN_PAGE for size in regions)


MKLDNN_RNN_LAYER = torch.ops.aten.mkldnn_rnn_layer.default
_LAYER_ARGUMENTS = tuple(argument.name for argument in MKLDNN_RNN_LAYER._schema.arguments)


def mkldnn_rnn_layer_workspace(*args: Any, **kwargs: Any) -> int:
    """``aten.mkldnn_rnn_layer(input (T, B, I), weight0…3, hx_, cx_, reverse, batch_sizes, mode,
    hidden_size, …)``: its kernel makes the workspace (result 3) only with grad enabled, on CPU:
    :func:`onednn_lstm_workspace` of ``T, B, I, hidden_size`` and the input's element size, else 0.
    ``reverse``, ``has_biases``, ``bidirectional``, ``batch_first`` and ``train`` do not change it
    (the input is time-major whatever ``batch_first`` says)."""
    bound = {**dict(zip(_LAYER_ARGUMENTS, args, strict=False)), **kwargs}
    source: torch.Tensor = bound["input"]
    if not torch.is_grad_enabled() or source.device.type != "cpu" or source.dim() != 3:
        return 0
    steps, batch, width = (int(size) for size in source.shape)
    return onednn_lstm_workspace(steps, batch, width, int(bound["hidden_size"]), source.element_size())


TABLE.declare(MKLDNN_RNN_LAYER, workspace=Workspace(output=3, nbytes=mkldnn_rnn_layer_workspace))
