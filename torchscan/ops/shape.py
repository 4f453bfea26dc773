"""Views, metadata and data movement: reshape, permute, indexing, cat/stack, Identity.

Views and metadata-only ops cost ``0 / 0 / 0``. A copy that only moves data (``contiguous()``
or ``reshape`` of a non-contiguous tensor) costs ``DMAs = N_in + N_out`` and no FLOPs;
``cat``/``stack`` cost ``DMAs = 2·N_out``.
"""

from __future__ import annotations

import operator

import torch
from torch import nn

from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("shape")

T = torch.Tensor


@TABLE.register(
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    operator.getitem,
    torch.flatten,
    torch.permute,
    torch.transpose,
    torch.swapaxes,
    torch.squeeze,
    torch.unsqueeze,
    torch.chunk,
    torch.split,
    torch.unbind,
    torch.narrow,
    torch.select,
    torch.t,
    torch.movedim,
    T.view,
    T.view_as,
    T.flatten,
    T.permute,
    T.transpose,
    T.swapaxes,
    T.squeeze,
    T.unsqueeze,
    T.chunk,
    T.split,
    T.unbind,
    T.narrow,
    T.select,
    T.t,
    T.movedim,
    T.expand,
    T.expand_as,
    T.unflatten,
    T.__getitem__,
    T.size,
    T.dim,
    T.numel,
    T.detach,
    torch.detach,
)
def view(call: OpCall) -> Cost:
    """Views and metadata: ``0 / 0 / 0``."""
    return Cost()


@TABLE.register(T.contiguous, torch.reshape, T.reshape, T.reshape_as)
def maybe_copy(call: OpCall) -> Cost:
    """``contiguous``/``reshape``: free on contiguous data, else a copy: ``DMAs = N_in + N_out``."""
    if not call.inputs or call.input.contiguous:
        return Cost()
    return Cost(dmas=call.input.numel + call.output.numel)


@TABLE.register(torch.cat, torch.concat, torch.concatenate, torch.stack)
def concatenate(call: OpCall) -> Cost:
    """cat / stack: ``FLOPs = MACs = 0``, ``DMAs = 2·N_out`` (every element read once, written once)."""
    return Cost(dmas=2 * call.output.numel)
