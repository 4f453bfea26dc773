"""Dropout: free in eval, a mask draw and a multiply in training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.registry import FormulaTable, Saves
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("dropout")


def drops(call: OpCall) -> bool:
    """Whether a dropout call drops: in training with ``p > 0`` (torch returns the input itself in eval or
    with ``p = 0``, on every device: no kernel, no mask, no autograd node). ``torch.dropout(input, p, train)``
    names the flag ``train``."""
    return bool(call.get("training", call.get("train", call.training))) and float(call.get("p", 0.5)) > 0


@TABLE.register(
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
    torch.dropout,
    torch.alpha_dropout,
    torch.feature_alpha_dropout,
    pointwise=True,
)
@TABLE.register(torch.dropout_, torch.alpha_dropout_, torch.feature_alpha_dropout_, inplace=True, pointwise=True)
def dropout(call: OpCall, inplace: bool = False) -> Cost:
    """Dropout: ``0 / 0 / 0`` in eval or with ``p = 0``; in training with ``p > 0``:
    ``FLOPs = N_in``, ``MACs = 0``, ``DMAs = N_in + 1 + N_out·[not inplace]`` (``torch.dropout_(x, p, train)``
    and the alpha dropouts' in-place forms: in place)."""
    if not drops(call):
        return Cost()
    n_in = call.input.numel
    writes = 0 if inplace or call.get("inplace", False) else call.output.numel
    return Cost(flops=n_in, dmas=n_in + 1 + writes)


TABLE.declare(
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    torch.dropout,
    torch.alpha_dropout,
    saves=Saves.DROPOUT,
)


def returns_input(module: nn.Module) -> bool:
    """Whether an ``nn.Dropout`` returns its input itself: in eval or with ``p = 0`` (ATen's dropout returns the
    tensor it was given, in place or not; the 1-D/2-D/3-D variants may return a view of it, and are not declared)."""
    return not module.training or module.p == 0


TABLE.declare(nn.Dropout, returns_input=returns_input)
