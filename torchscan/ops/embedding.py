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
from torchscan.records import Cost, OpCall

TABLE = FormulaTable("embedding")

aten = torch.ops.aten


def _weight_dim(call: OpCall) -> int:
    weight = call.spec("weight")
    if weight is None:
        raise ValueError("embedding without a weight")
    return weight.shape[-1]


@TABLE.register(nn.Embedding, F.embedding, aten.embedding.default)
def embedding(call: OpCall) -> Cost:
    """Embedding (``N_idx`` indices, rows of ``D``): ``FLOPs = 3·N_out·[max_norm]`` (renormalising
    the looked-up rows: square-sum, root, scale), ``MACs = 0``, ``DMAs = N_idx + 2·N_out``
    (indices, looked-up rows read, output written)."""
    n_out = call.output.numel
    indices = call.input.numel
    renorm = argument(call, "max_norm", None) is not None
    return Cost(flops=3 * n_out * renorm, dmas=indices + 2 * n_out)


@TABLE.register(nn.EmbeddingBag, F.embedding_bag)
def embedding_bag(call: OpCall) -> Cost:
    """EmbeddingBag (``N_idx`` indices, rows of ``D``, ``N_out`` bag elements):
    reducing ``N_idx·D`` gathered elements: ``FLOPs = N_idx·D − N_out + N_out·[mean]
    + N_idx·D·[per_sample_weights]``, ``MACs = N_idx·D·[per_sample_weights]``,
    ``DMAs = (index, offset and weight tensors) + N_idx·D + N_out``."""
    dim = _weight_dim(call)
    indices = call.input.numel
    gathered = indices * dim
    n_out = call.output.numel
    mode = argument(call, "mode", None, "mean")
    weighted = argument(call, "per_sample_weights", None) is not None
    weight = call.spec("weight")
    extra = sum(spec.numel for spec in call.inputs[1:] if spec != weight)  # offsets, per-sample weights
    flops = gathered - n_out + n_out * (mode == "mean") + gathered * weighted
    return Cost(flops=flops, macs=gathered * weighted, dmas=indices + extra + gathered + n_out)
