"""torchvision's fx-wrapped functions (recorded as single calls by torch.fx): stochastic depth,
Swin's shifted-window attention and its helpers.

Loaded lazily (see :class:`~torchscan.ops.registry.LazyTable`): importing torchscan does not
import torchvision. Swin's window attention on ``B·H·W·C`` input, windows ``wh×ww`` (``N = wh·ww``
tokens), padded to ``Hp×Wp`` (``Np = B·Hp·Wp·C`` elements), ``T = B·Hp·Wp`` tokens, ``h`` heads
and ``W = T / N`` windows, with ``Q = W·h·N²`` scores, is counted as:

- ``qkv`` and ``proj`` Linear formulas on ``T`` tokens (``C → 3C``, ``C → C``);
- the SDPA core on ``W·h`` heads of ``N`` queries and keys (scale, relative position bias as the
  mask, softmax, dropout in training), plus ``Q`` FLOPs for the shift mask when shifted;
- Swin V2 cosine attention: ``F.normalize`` of q and k (``2·(3·T·C + 2·T·h)``) and the logit
  scale (``2·h`` clamp/exp, ``Q`` multiplies) instead of the scale;
- data movement ``DMAs += N_in + Np (pad) + 2·Np (window partition) + 4·Np·[shifted] (rolls)
  + 2·Np (window merge) + N_out (crop)`` and the bias read ``h·N²``; dropout on the output in
  training adds ``T·C`` FLOPs.
"""

from __future__ import annotations

from torchscan.ops.attention import AttentionShape, attention_core
from torchscan.ops.common import argument
from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall


def _linear(rows: int, fan_in: int, fan_out: int, bias: bool) -> Cost:
    n_out = rows * fan_out
    params = fan_in * fan_out + fan_out * bias
    return Cost(flops=n_out * (2 * fan_in - 1 + bias), macs=n_out * fan_in, dmas=rows * fan_in + params + n_out)


def stochastic_depth(call: OpCall) -> Cost:
    """``torchvision.ops.stochastic_depth``: ``0 / 0 / 0`` in eval or with ``p = 0`` (returns its
    input); in training ``FLOPs = N_in + M`` (scale the ``M`` noise values, multiply),
    ``DMAs = N_in + M + N_out`` with ``M = B`` (mode "row") or 1 (mode "batch")."""
    if not argument(call, "training", 2, True) or not argument(call, "p", 0, 0.0):
        return Cost()
    n_in = call.input.numel
    noise = call.input.shape[0] if argument(call, "mode", 1, "row") == "row" and call.input.ndim else 1
    return Cost(flops=n_in + noise, dmas=n_in + noise + call.output.numel)


def relative_position_bias(call: OpCall) -> Cost:
    """Swin ``_get_relative_position_bias`` (gather the table by the index, then a contiguous
    copy): ``FLOPs = MACs = 0``, ``DMAs = N_index + 4·N_out``."""
    index = call.inputs[1].numel if len(call.inputs) > 1 else 0
    return Cost(dmas=index + 4 * call.output.numel)


def patch_merging_pad(call: OpCall) -> Cost:
    """Swin ``_patch_merging_pad`` (pad, four strided slices, cat): ``FLOPs = MACs = 0``,
    ``DMAs = N_in + 3·N_out``."""
    return Cost(dmas=call.input.numel + 3 * call.output.numel)


def shifted_window_attention(call: OpCall) -> Cost:
    """Swin (V1/V2) shifted-window attention, closed form in the module docstring."""
    batch, height, width, channels = call.input.shape
    wh, ww = argument(call, "window_size", 4)
    heads = int(argument(call, "num_heads", 5))
    padded_h, padded_w = -(-height // wh) * wh, -(-width // ww) * ww
    shift = list(argument(call, "shift_size", 6, (0, 0)))
    shift[0] = 0 if wh >= padded_h else shift[0]
    shift[1] = 0 if ww >= padded_w else shift[1]
    shifted = sum(shift) > 0
    tokens = batch * padded_h * padded_w
    window = wh * ww
    windows = tokens // window
    padded = tokens * channels
    training = bool(argument(call, "training", 12, True))
    cosine = call.spec("logit_scale") is not None
    qkv = _linear(tokens, channels, 3 * channels, call.spec("qkv_bias") is not None)
    proj = _linear(tokens, channels, channels, call.spec("proj_bias") is not None)
    shape = AttentionShape(
        batch=windows * heads,
        queries=window,
        keys=window,
        head_dim=channels // heads,
        value_dim=channels // heads,
        masked=True,
        dropout=training and float(argument(call, "attention_dropout", 7, 0.0)) > 0,
    )
    core = attention_core(shape)
    scores = shape.scores
    extra_flops = scores * shifted
    if cosine:
        extra_flops += 2 * (3 * tokens * channels + 2 * tokens * heads) + 2 * heads
    if training and float(argument(call, "dropout", 8, 0.0)) > 0:
        extra_flops += tokens * channels
    attention_reads = 3 * tokens * channels + heads * window * window + tokens * channels
    movement = call.input.numel + padded + 2 * padded + 4 * padded * shifted + 2 * padded + call.output.numel
    return qkv + proj + core + Cost(flops=extra_flops, dmas=attention_reads + movement)


def load() -> FormulaTable:
    """The torchvision table (imports torchvision)."""
    from torchvision.models import swin_transformer
    from torchvision.ops import stochastic_depth as stochastic_depth_function

    table = FormulaTable("torchvision")
    table.register(stochastic_depth_function)(stochastic_depth)
    table.register(swin_transformer._get_relative_position_bias)(relative_position_bias)
    table.register(swin_transformer._patch_merging_pad)(patch_merging_pad)
    table.register(swin_transformer.shifted_window_attention)(shifted_window_attention)
    return table
