"""Embedding / EmbeddingBag lookups, and a tied-embedding LM counting its tied weight once."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from tests.ops.helpers import cost, function_cost, spec
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


aten = torch.ops.aten
WEIGHT = torch.randn(10, 4)
INDICES = torch.tensor([[1, 2, 4, 5], [4, 3, 2, 9]])


def test_torch_and_aten_spellings_read_the_indices_by_name() -> None:
    """``torch.embedding(weight, indices)`` and ATen's (a scripted or recorded model's) take the weight first: the
    indices are read by name. ATen's read the weight's 40 elements as indices before (DMAs 40 + 2·32, not 8 + 2·32)."""
    expected = function_cost(F.embedding, INDICES, WEIGHT)
    assert expected == Cost(dmas=8 + 2 * 32)
    assert function_cost(torch.embedding, WEIGHT, INDICES) == expected
    assert function_cost(aten.embedding.default, WEIGHT, INDICES) == expected


def test_embedding_bag_spellings_count_as_f() -> None:
    """``torch.embedding_bag`` and ATen's ``_embedding_bag`` (four results, the output first; ``mode`` an integer)
    cost what ``F.embedding_bag`` costs, offsets and per-sample weights read once."""
    flat, offsets, weights = INDICES.flatten(), torch.tensor([0, 3, 5]), torch.rand(8)
    for mode, number in (("sum", 0), ("mean", 1), ("max", 2)):
        expected = function_cost(F.embedding_bag, flat, WEIGHT, offsets, mode=mode)
        assert expected.dmas == 8 + 3 + 8 * 4 + 3 * 4
        assert function_cost(torch.embedding_bag, WEIGHT, flat, offsets, False, number) == expected
        assert function_cost(aten._embedding_bag.default, WEIGHT, flat, offsets, False, number) == expected
        assert function_cost(aten._embedding_bag_forward_only.default, WEIGHT, flat, offsets, False, number) == expected
    weighted = function_cost(F.embedding_bag, flat, WEIGHT, offsets, mode="sum", per_sample_weights=weights)
    assert weighted.macs == 8 * 4 and weighted.dmas == 8 + 3 + 8 + 8 * 4 + 3 * 4
    assert function_cost(torch.embedding_bag, WEIGHT, flat, offsets, False, 0, False, weights) == weighted


class _Scriptable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 8)
        self.bag = nn.EmbeddingBag(100, 8, mode="mean")

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed(ids), self.bag(ids)


def test_a_scripted_model_counts_its_lookups_as_the_plain_model() -> None:
    """A TorchScript model is recorded op by ATen op: its lookups cost what the plain model's do, and ATen makes the
    bag's offsets for a 2-D input (``arange``: one per sample, written, then read by the bag)."""
    model = _Scriptable().eval()
    plain = crawl_module(model, (5,), dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        scripted = torch.jit.script(model)
    report = crawl_module(scripted, (5,), dtype=torch.long)
    assert report.context.capture == "torchscript-aten" and report.totals.complete
    assert (report.totals.flops, report.totals.dmas) == (plain.totals.flops, plain.totals.dmas + 2 * 1)
