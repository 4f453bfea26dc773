"""torchvision's ops and fx-wrapped functions: stochastic depth, Swin's shifted-window attention
and its helpers, MViT's helpers, NMS and the RoI poolers (``roi_align``, ``roi_pool``,
``ps_roi_align``, ``ps_roi_pool``, ``MultiScaleRoIAlign``'s function), in every spelling: the
Python function (fx), the ``torch.ops.torchvision`` op (recorded forward) and its overload
(scripted models).

Data-dependent ops are counted from the shapes alone, as documented upper bounds:

- NMS on ``N`` boxes: a sort (``N·⌈log2 N⌉`` comparisons), box areas (``3N``) and the IoU of every
  pair, ``N(N − 1)/2`` (what the CUDA kernel computes whatever the scores; the CPU loop's worst
  case), 13 FLOPs each (4 max/min, 2 clamped widths, intersection, union, divide, threshold).
- RoI align: ``S`` samples per output bin, ``S = sampling_ratio²``, or when adaptive
  (``sampling_ratio ≤ 0``) ``⌈H/ph⌉·⌈W/pw⌉`` (an RoI spanning the whole ``H×W`` map); each sample is a
  bilinear blend (4 taps, 3 lerps: 9 FLOPs, 3 MACs, as interpolate) per channel, then the ``S``
  samples are averaged (``S`` FLOPs); sample coordinates cost 2 FLOPs each per point, shared by
  the channels. RoI pool takes the max over a bin of ``⌈H/ph⌉·⌈W/pw⌉`` elements (the same
  whole-map bound); PS RoI pool averages it. Comparisons and sums of the RoI ops are FLOPs only
  (``MACs = 0``): the legacy pool convention ``MACs = FLOPs`` belongs to the published table.

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

import math

from torchscan.ops.attention import AttentionShape, attention_core
from torchscan.ops.common import argument
from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall


def _linear(rows: int, fan_in: int, fan_out: int, bias: bool) -> Cost:
    n_out = rows * fan_out
    params = fan_in * fan_out + fan_out * bias
    return Cost(flops=n_out * (2 * fan_in - 1 + bias), macs=n_out * fan_in, dmas=rows * fan_in + params + n_out)


def stochastic_depth(call: OpCall) -> Cost:
    """``torchvision.ops.stochastic_depth``: ``0 / 0 / 0`` in eval or with ``p = 0`` (returns its
    input); in training ``FLOPs = N_in + M`` (scale the ``M`` noise values, multiply),
    ``DMAs = N_in + M + N_out`` with ``M = B`` (mode "row") or 1 (mode "batch"). Arguments are read
    by name (a Python function's call always binds them). Memory family :attr:`Saves.DROPOUT`: an
    identity in eval (nothing kept, nothing recorded), recorded at the ATen level in training."""
    if not argument(call, "training", None, True) or not argument(call, "p", None, 0.0):
        return Cost()
    n_in = call.input.numel
    noise = call.input.shape[0] if argument(call, "mode", None, "row") == "row" else 1  # "row" indexes dim 0
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
    """Swin (V1/V2) shifted-window attention, closed form in the module docstring. Arguments are
    read by name (a Python function's call always binds them)."""
    batch, height, width, channels = call.input.shape
    wh, ww = argument(call, "window_size", None)
    heads = int(argument(call, "num_heads", None))
    padded_h, padded_w = -(-height // wh) * wh, -(-width // ww) * ww
    shift = list(argument(call, "shift_size"))  # a required argument
    shift[0] = 0 if wh >= padded_h else shift[0]
    shift[1] = 0 if ww >= padded_w else shift[1]
    shifted = sum(shift) > 0
    tokens = batch * padded_h * padded_w
    window = wh * ww
    windows = tokens // window
    padded = tokens * channels
    training = bool(argument(call, "training", None, True))
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
        dropout=training and float(argument(call, "attention_dropout", None, 0.0)) > 0,
    )
    core = attention_core(shape)
    scores = shape.scores
    extra_flops = scores * shifted
    if cosine:
        extra_flops += 2 * (3 * tokens * channels + 2 * tokens * heads) + 2 * heads
    if training and float(argument(call, "dropout", None, 0.0)) > 0:
        extra_flops += tokens * channels
    attention_reads = 3 * tokens * channels + heads * window * window + tokens * channels
    movement = call.input.numel + padded + 2 * padded + 4 * padded * shifted + 2 * padded + call.output.numel
    return qkv + proj + core + Cost(flops=extra_flops, dmas=attention_reads + movement)


def free(call: OpCall) -> Cost:
    """Views and bookkeeping (MViT's ``_unsqueeze``/``_squeeze``, ``MultiScaleRoIAlign``'s input
    filter and scale setup on Python numbers): ``0 / 0 / 0``."""
    return Cost()


def add_shortcut(call: OpCall) -> Cost:
    """MViT ``_add_shortcut(x, shortcut, residual_with_cls_embed)``, in place on ``x``
    (``B·h·T·C``): ``n = N_x``, or without the class token ``n = N_x·(T − 1)/T``:
    ``FLOPs = n``, ``MACs = 0``, ``DMAs = 3n``."""
    x = call.input
    with_cls = bool(argument(call, "residual_with_cls_embed", 1, True))
    tokens = x.shape[2] if x.ndim > 2 else 1
    updated = x.numel if with_cls or tokens < 1 else x.numel // tokens * (tokens - 1)
    return Cost(flops=updated, dmas=3 * updated)


def add_rel_pos(call: OpCall) -> Cost:
    """MViT ``_add_rel_pos(attn, q, q_thw, k_thw, rel_pos_h, rel_pos_w, rel_pos_t)``, in place on
    ``attn``: with ``B·h`` heads, ``Q = q_t·q_h·q_w`` and ``K = k_t·k_h·k_w`` spatial tokens, head
    dim ``c`` and ``k = k_t + k_h + k_w``: the three relative-position products
    ``MACs = B·h·Q·k·c``, ``FLOPs = B·h·Q·k·(2c − 1)``, then their broadcast sum and the add into
    ``attn``: ``FLOPs += 3·B·h·Q·K``; ``DMAs = 3·B·h·Q·c + 2·(q_t·k_t + q_h·k_h + q_w·k_w)·c``
    (gathered tables) ``+ 2·B·h·Q·k + 4·B·h·Q·K``. The tables are assumed not resized."""
    q = call.inputs[1]
    q_t, q_h, q_w = (int(v) for v in argument(call, "q_thw", 1))
    k_t, k_h, k_w = (int(v) for v in argument(call, "k_thw", 2))
    heads = q.shape[0] * q.shape[1]
    channels = q.shape[-1]
    queries, keys = q_t * q_h * q_w, k_t * k_h * k_w
    depth = k_t + k_h + k_w
    products = heads * queries * depth
    tables = 2 * (q_t * k_t + q_h * k_h + q_w * k_w) * channels
    return Cost(
        flops=products * (2 * channels - 1) + 3 * heads * queries * keys,
        macs=products * channels,
        dmas=3 * heads * queries * channels + tables + 2 * products + 4 * heads * queries * keys,
    )


def nms(call: OpCall) -> Cost:
    """NMS on ``N`` boxes (``P = N(N − 1)/2`` pairs, module docstring):
    ``FLOPs = N·⌈log2 N⌉ + 3N + 13·P``, ``MACs = 0``, ``DMAs = 5N + 5·P + N_out`` (boxes and
    scores once, then the other box's 4 coordinates and area per pair; the kept indices)."""
    boxes = call.input.shape[0]  # (N, 4): torchvision's nms takes 2-D boxes only
    pairs = boxes * (boxes - 1) // 2
    sort = boxes * math.ceil(math.log2(boxes)) if boxes > 1 else 0
    return Cost(flops=sort + 3 * boxes + 13 * pairs, dmas=5 * boxes + 5 * pairs + call.output.numel)


def _whole_map_bin(height: int, width: int, pooled_h: int, pooled_w: int) -> int:
    return -(-height // max(pooled_h, 1)) * -(-width // max(pooled_w, 1))


def _roi_align_cost(feature: tuple[int, ...], out: tuple[int, ...], sampling_ratio: int, rois: int) -> Cost:
    n_out = math.prod(out)
    pooled_h, pooled_w = out[-2], out[-1]
    samples = sampling_ratio**2 if sampling_ratio > 0 else _whole_map_bin(feature[-2], feature[-1], pooled_h, pooled_w)
    points = out[0] * pooled_h * pooled_w * samples
    return Cost(
        flops=10 * samples * n_out + 4 * points, macs=3 * samples * n_out, dmas=4 * samples * n_out + rois + n_out
    )


def _rois(call: OpCall) -> int:
    return sum(spec.numel for spec in call.inputs[1:])


def roi_align(call: OpCall, channel_map: bool) -> Cost:
    """RoI align on ``R`` RoIs (``S`` samples per bin, module docstring), ``N_rois`` = elements
    of the boxes: ``FLOPs = 10·S·N_out + 4·R·ph·pw·S``, ``MACs = 3·S·N_out``,
    ``DMAs = 4·S·N_out + N_rois + N_out·(1 + [ps])`` (PS RoI align also writes its channel map)."""
    ratio = int(argument(call, "sampling_ratio", None, -1))
    cost = _roi_align_cost(call.input.shape, call.output.shape, ratio, _rois(call))
    return cost + Cost(dmas=call.output.numel * channel_map)


def roi_pool(call: OpCall, average: bool) -> Cost:
    """RoI pool (max) / PS RoI pool (average) over bins of ``K = ⌈H/ph⌉·⌈W/pw⌉`` elements:
    ``FLOPs = N_out·(K − 1)`` (max) or ``N_out·K`` (sum and divide), ``MACs = 0``,
    ``DMAs = N_out·K + N_rois + 2·N_out`` (the output and its argmax / channel map)."""
    spec, out = call.input, call.output
    window = _whole_map_bin(spec.shape[-2], spec.shape[-1], out.shape[-2], out.shape[-1])
    n_out = out.numel
    return Cost(flops=n_out * (window - 1 + average), dmas=n_out * window + _rois(call) + 2 * n_out)


def multiscale_roi_align(call: OpCall) -> Cost:
    """``MultiScaleRoIAlign``'s ``_multiscale_roi_align`` over ``L`` levels and ``R`` boxes: each
    RoI is aligned once, on its level (adaptive sampling sized on the finest level): the RoI align
    formula on ``N_out`` with ``N_rois = 5R``, plus the RoI format (``DMAs += 9R``: read 4, write 5
    per box) and, when ``L > 1``, the level of each box (area, sqrt, log2, floor, clamp: 12 FLOPs)
    and ``L`` level tests (``FLOPs += (12 + L)·R``), the RoI gathers and the zero-filled result
    written, read and scattered (``DMAs += 10R + 3·N_out``). Arguments are read by name (a Python
    function's call always binds them; the data input is the list ``x_filtered`` itself)."""
    levels = [spec for spec in argument(call, "x_filtered", None, ()) if hasattr(spec, "shape")]
    boxes = sum(spec.numel for spec in argument(call, "boxes", None, ()) if hasattr(spec, "numel")) // 4
    out = call.output
    finest = levels[0].shape if levels else out.shape
    ratio = int(argument(call, "sampling_ratio", None, -1))
    cost = _roi_align_cost(finest, out.shape, ratio, 5 * boxes) + Cost(dmas=9 * boxes)
    if len(levels) > 1:
        cost += Cost(flops=(12 + len(levels)) * boxes, dmas=10 * boxes + 3 * out.numel)
    return cost


def load() -> FormulaTable:
    """The torchvision table (imports torchvision)."""
    import torch
    import torchvision
    from torchvision.models import swin_transformer
    from torchvision.models.video import mvit
    from torchvision.ops import poolers
    from torchvision.ops import stochastic_depth as stochastic_depth_function

    ops = torch.ops.torchvision
    table = FormulaTable("torchvision")
    table.register(stochastic_depth_function, saves=Saves.DROPOUT)(stochastic_depth)
    table.register(swin_transformer._get_relative_position_bias)(relative_position_bias)
    table.register(swin_transformer._patch_merging_pad)(patch_merging_pad)
    table.register(swin_transformer.shifted_window_attention)(shifted_window_attention)
    table.register(mvit._unsqueeze, mvit._squeeze, poolers._filter_input, poolers._setup_scales)(free)
    table.register(mvit._add_shortcut)(add_shortcut)
    table.register(mvit._add_rel_pos)(add_rel_pos)
    table.register(torchvision.ops.nms, ops.nms, ops.nms.default)(nms)
    table.register(
        torchvision.ops.roi_align, torchvision.ops.RoIAlign, ops.roi_align, ops.roi_align.default, channel_map=False
    )(roi_align)
    table.register(
        torchvision.ops.ps_roi_align,
        torchvision.ops.PSRoIAlign,
        ops.ps_roi_align,
        ops.ps_roi_align.default,
        channel_map=True,
    )(roi_align)
    table.register(
        torchvision.ops.roi_pool, torchvision.ops.RoIPool, ops.roi_pool, ops.roi_pool.default, average=False
    )(roi_pool)
    table.register(
        torchvision.ops.ps_roi_pool, torchvision.ops.PSRoIPool, ops.ps_roi_pool, ops.ps_roi_pool.default, average=True
    )(roi_pool)
    table.register(poolers._multiscale_roi_align)(multiscale_roi_align)
    return table
