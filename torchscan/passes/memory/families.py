"""Op families for the memory conventions, as tables keyed by op targets.

A target is what fx records a node calling: a module class, a function (``torch.relu``,
``operator.add``) or a tensor method name (``"view"``). A node record keeps the display name of
its target, so lookups go through :func:`op_key`, the lower-cased name without trailing
underscores (``relu_`` and ``F.relu`` are both ``relu``); the tables are declared with the
targets themselves so each entry is a real spelling.
"""

from __future__ import annotations

import enum
import functools
import operator
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.graph.calls import display_type
from torchscan.records import NodeRecord

__all__ = ["FAMILIES", "Family", "family", "op_key"]


class Family(enum.Enum):
    """What autograd keeps for an op (see :func:`~torchscan.passes.memory.saved.saved_for_backward`)."""

    WEIGHTED = "weighted"
    """conv / linear / bilinear: the input, for ``dL/dW``."""
    MATMUL = "matmul"
    """Products of two activations: every input."""
    PRODUCT = "product"
    """``mul`` / ``div``: the inputs when both are tensors."""
    SAVES_OUTPUT = "saves_output"
    """Pointwise ops whose gradient is a function of their output."""
    SAVES_NOTHING = "saves_nothing"
    """Views, metadata, and ops linear in their inputs (the gradient needs only shapes)."""
    MAX_POOL = "max_pool"
    """Max pools: input + int64 indices."""
    DROPOUT = "dropout"
    """Dropout: a bool mask in training."""


_TARGETS: Mapping[Family, tuple[Any, ...]] = {
    Family.WEIGHTED: (
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        F.conv1d,
        F.conv2d,
        F.conv3d,
        nn.ConvTranspose1d,
        nn.ConvTranspose2d,
        nn.ConvTranspose3d,
        F.conv_transpose1d,
        F.conv_transpose2d,
        F.conv_transpose3d,
        nn.Linear,
        F.linear,
        nn.Bilinear,
        F.bilinear,
        nn.LazyLinear,
    ),
    Family.MATMUL: (torch.matmul, operator.matmul, torch.mm, torch.bmm, torch.einsum, torch.addmm, torch.baddbmm),
    Family.PRODUCT: (torch.mul, operator.mul, torch.div),
    Family.SAVES_OUTPUT: (
        nn.ReLU,
        F.relu,
        nn.Sigmoid,
        torch.sigmoid,
        nn.Tanh,
        torch.tanh,
        nn.Softmax,
        F.softmax,
        nn.LogSoftmax,
        F.log_softmax,
        torch.exp,
        torch.sqrt,
        torch.rsqrt,
        nn.ELU,
        F.elu,
    ),
    Family.SAVES_NOTHING: (
        # views and metadata
        operator.getitem,
        "view",
        "view_as",
        "reshape",
        "reshape_as",
        torch.flatten,
        nn.Unflatten,
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
        "expand",
        "expand_as",
        "contiguous",
        torch.detach,
        "size",
        "dim",
        "numel",
        nn.Identity,
        # linear in their inputs: the gradient needs only shapes
        operator.add,
        operator.iadd,
        operator.sub,
        operator.isub,
        operator.neg,
        torch.cat,
        torch.concat,
        torch.concatenate,
        torch.stack,
        torch.sum,
        torch.mean,
        nn.AvgPool1d,
        nn.AvgPool2d,
        nn.AvgPool3d,
        F.avg_pool1d,
        F.avg_pool2d,
        F.avg_pool3d,
        nn.AdaptiveAvgPool1d,
        nn.AdaptiveAvgPool2d,
        nn.AdaptiveAvgPool3d,
        F.adaptive_avg_pool1d,
        F.adaptive_avg_pool2d,
        F.adaptive_avg_pool3d,
        nn.Upsample,
        F.interpolate,
        F.pad,
        nn.ZeroPad2d,
        nn.ConstantPad2d,
        "float",
        "to",
        "type_as",
        torch.clone,
    ),
    Family.MAX_POOL: (
        nn.MaxPool1d,
        nn.MaxPool2d,
        nn.MaxPool3d,
        F.max_pool1d,
        F.max_pool2d,
        F.max_pool3d,
        nn.AdaptiveMaxPool1d,
        nn.AdaptiveMaxPool2d,
        nn.AdaptiveMaxPool3d,
        F.adaptive_max_pool1d,
        F.adaptive_max_pool2d,
        F.adaptive_max_pool3d,
    ),
    Family.DROPOUT: (
        nn.Dropout,
        nn.Dropout1d,
        nn.Dropout2d,
        nn.Dropout3d,
        F.dropout,
        F.dropout1d,
        F.dropout2d,
        F.dropout3d,
        nn.AlphaDropout,
        F.alpha_dropout,
    ),
}


def op_key(name: str) -> str:
    """The lookup key of a target's display name: lower case, trailing ``_`` dropped."""
    return name.lower().rstrip("_")


FAMILIES: Mapping[str, Family] = MappingProxyType(
    {op_key(display_type(target)): kind for kind, targets in _TARGETS.items() for target in targets}
)
"""Op key -> family; an op in none of them saves every activation input (conservative)."""


def family(record: NodeRecord) -> Family | None:
    """The family of a node's op, None when it has none."""
    return _family_of(record.type_name)


@functools.lru_cache(maxsize=1024)
def _family_of(type_name: str) -> Family | None:
    return FAMILIES.get(op_key(type_name))
