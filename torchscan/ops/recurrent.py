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
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("recurrent")

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
ELEMENTWISE = {"rnn_tanh": 6, "rnn_relu": 1, "lstm": 28, "gru": 19}


@dataclass(frozen=True, slots=True)
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
