"""Embedding lookups: ``nn.Embedding``/``F.embedding`` and ``nn.EmbeddingBag``/``F.embedding_bag``.

A lookup does no arithmetic: it reads the indices and the looked-up rows and writes them. A
tied weight (an embedding shared with an LM head) is one tensor: the params pass counts it once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchscan.ops.common import argument
from torchscan.ops.registry import FormulaTable
from torchscan.records import Cost, OpCall, TensorSpec

TABLE = FormulaTable("embedding")

aten = torch.ops.aten


def _weight_dim(call: OpCall) -> int:
    weight = call.spec("weight")
    if weight is None:
        raise ValueError("embedding without a weight")
    return weight.shape[-1]


def _indices(call: OpCall) -> TensorSpec:
    """The looked-up indices: ``F``'s first argument (``input``), ``indices`` in torch's and ATen's own spellings
    (``torch.embedding(weight, indices)``: their first tensor is the weight)."""
    indices = call.spec("indices")
    return indices if indices is not None else call.input


@TABLE.register(nn.Embedding, F.embedding, torch.embedding, aten.embedding.default)
def embedding(call: OpCall) -> Cost:
    """Embedding (``N_idx`` indices, rows of ``D``): ``FLOPs = 3·N_out·[max_norm]`` (renormalising
    the looked-up rows: square-sum, root, scale), ``MACs = 0``, ``DMAs = N_idx + 2·N_out``
    (indices, looked-up rows read, output written)."""
    n_out = call.output.numel
    indices = _indices(call).numel
    renorm = argument(call, "max_norm", None) is not None
    return Cost(flops=3 * n_out * renorm, dmas=indices + 2 * n_out)


_BAG_MODES = {0: "sum", 1: "mean", 2: "max"}
"""torch's and ATen's ``mode`` integers (``torch.embedding_bag``, ``aten._embedding_bag``) by ``F``'s names."""

_BAG_TENSORS = ("offsets", "per_sample_weights")
"""The bag's tensors besides the weight and the indices, by name."""


@TABLE.register(
    nn.EmbeddingBag,
    F.embedding_bag,
    torch.embedding_bag,
    aten._embedding_bag.default,
    aten._embedding_bag_forward_only.default,
)
def embedding_bag(call: OpCall) -> Cost:
    """EmbeddingBag (``N_idx`` indices, rows of ``D``, ``N_out`` bag elements):
    reducing ``N_idx·D`` gathered elements: ``FLOPs = N_idx·D − N_out + N_out·[mean]
    + N_idx·D·[per_sample_weights]``, ``MACs = N_idx·D·[per_sample_weights]``,
    ``DMAs = (index, offset and weight tensors) + N_idx·D + N_out`` (torch's and ATen's spellings: the output is
    the first of the four tensors they return, their ``mode`` an integer)."""
    dim = _weight_dim(call)
    indices = _indices(call).numel
    gathered = indices * dim
    n_out = call.output.numel
    mode = argument(call, "mode", None, "mean")
    mode = _BAG_MODES.get(mode, mode) if type(mode) is int else mode
    weighted = argument(call, "per_sample_weights", None) is not None
    if call.kind == "module" or "args" in call.attrs:  # tensors after the indices, by position: offsets, weights
        weight = call.spec("weight")
        extra = sum(spec.numel for spec in call.inputs[1:] if spec != weight)
    else:
        extra = sum(spec.numel for name in _BAG_TENSORS if (spec := call.spec(name)) is not None)
    flops = gathered - n_out + n_out * (mode == "mean") + gathered * weighted
    return Cost(flops=flops, macs=gathered * weighted, dmas=indices + extra + gathered + n_out)
