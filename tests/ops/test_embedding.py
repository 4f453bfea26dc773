"""Embedding / EmbeddingBag lookups, and a tied-embedding LM counting its tied weight once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.ops.helpers import cost, spec
from torchscan import crawl_module
from torchscan.records import Cost

IDS = spec(2, 3, dtype=torch.int64)


def test_embedding_table() -> None:
    out = spec(2, 3, 4)
    assert cost(nn.Embedding, (IDS,), (out,), weight=spec(10, 4), max_norm=None) == Cost(dmas=6 + 48)
    assert cost(F.embedding, (IDS, spec(10, 4)), (out,), weight=spec(10, 4)) == Cost(dmas=6 + 48)
    assert cost(nn.Embedding, (IDS,), (out,), weight=spec(10, 4), max_norm=1.0).flops == 3 * 24


def test_embedding_bag_table() -> None:
    out = spec(2, 4)
    got = cost(nn.EmbeddingBag, (IDS,), (out,), weight=spec(10, 4), mode="mean")
    assert got == Cost(flops=24 - 8 + 8, dmas=6 + 24 + 8)
    assert cost(nn.EmbeddingBag, (IDS,), (out,), weight=spec(10, 4), mode="sum").flops == 16


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 50, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.body = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(self.embed(ids))))


def test_tied_embedding_lm_counts_the_weight_once() -> None:
    model = TinyLM()
    report = crawl_module(model, (5,), dtype=torch.int64)
    assert report.totals.complete
    assert report.totals.params == 50 * 8 + 8 * 8 + 8
    assert report.totals.macs == 5 * 8 * 8 + 5 * 8 * 50
