"""A small GPT-2 language model's report, shared by the tests of names and bookkeeping rows."""

from __future__ import annotations

import functools

import pytest
import torch

from torchscan import Report, crawl_module


@functools.cache
def gpt2_report() -> Report:
    """A two-layer GPT-2 language model (``transformers``; the test is skipped without it) on 16 token
    ids with an attention mask: Hugging Face's position ids and mask building give many bookkeeping rows.
    Built once per test session."""
    transformers = pytest.importorskip("transformers")
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4)).eval()
    ids = torch.zeros(1, 16, dtype=torch.long)
    return crawl_module(model, kwargs={"input_ids": ids, "attention_mask": torch.ones_like(ids)})
