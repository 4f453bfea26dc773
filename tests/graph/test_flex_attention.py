"""Models calling ``flex_attention`` get a complete report however they spell the call, and the analysis leaves
torch's process state as found (the function warns once per process and compiles its kernel when run)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.attention import flex_attention as fa
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from torchscan import crawl_module


def _alibi(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> Any:
    return score + (q - k) * (h + 1)


def _causal(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> Any:
    return q >= k


_compiled = torch.compile(flex_attention)


class _Block(nn.Module):
    """A pre-projected attention block: q, k, v heads of a fused projection (strided: the result is laid out as
    the query), flex attention spelled as ``how`` says, an output projection on the transposed result."""

    def __init__(self, how: str, heads: int = 4, width: int = 64) -> None:
        super().__init__()
        self.how, self.heads = how, heads
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor, block_mask: BlockMask | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.how == "global":
            y = flex_attention(q, k, v)
        elif self.how == "module":
            y = fa.flex_attention(q, k, v)
        elif self.how == "compiled":
            y = _compiled(q, k, v)
        elif self.how == "score_mod":
            y = flex_attention(q, k, v, score_mod=_alibi)
        elif self.how == "block_mask":
            y = flex_attention(q, k, v, block_mask=block_mask)
        else:  # a helper holding it in a closure's cell (imported where the helper was made)
            y = _attend(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, c))


def _helper() -> Any:
    from torch.nn.attention.flex_attention import flex_attention as imported

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return imported(q, k, v)

    return attend


_attend = _helper()


_SPELLINGS = ("global", "module", "compiled", "score_mod", "block_mask", "closure")


@pytest.mark.parametrize("how", _SPELLINGS)
def test_every_spelling_is_one_counted_call(how: str) -> None:
    """Imported at module level, through its module, compiled, with a ``score_mod`` or a ``BlockMask`` (values fx
    has no argument form for: constants of the graph), or through a closure: one ``flex_attention`` node, complete
    totals equal to the plain spelling's but the one FLOP a score a modification adds; the trace is no fallback."""
    length = 128
    kwargs = {"block_mask": create_block_mask(_causal, None, None, length, length, device="cpu")}
    given = {"args": (torch.randn(1, length, 64),), "kwargs": kwargs if how == "block_mask" else {}}
    report = crawl_module(_Block(how), **given)
    plain = crawl_module(_Block("global"), input_shape=(length, 64))
    assert report.totals.complete and not report.diagnostics
    nodes = [name for name in report.records if report.records.nodes[name]["record"].type_name == "flex_attention"]
    assert len(nodes) == 1
    scores = 4 * length * length
    modified = scores if how in ("score_mod", "block_mask") else 0
    assert (report.totals.flops, report.totals.macs) == (plain.totals.flops + modified, plain.totals.macs)
    if how != "block_mask":  # which makes no one-block mask; the backward's FLOPs follow the forward's
        memory, expected = report.to_dict()["memory"], plain.to_dict()["memory"]
        assert {k: v for k, v in memory.items() if not k.startswith("backward")} == {
            k: v for k, v in expected.items() if not k.startswith("backward")
        }


def test_the_analysis_leaves_torch_as_found() -> None:
    """No warning (torch's once-per-process "called without torch.compile" is neither shown nor marked shown) and
    no compilation: the call is answered from shapes."""
    shown = set(fa._WARNINGS_SHOWN)
    counters = {key: dict(value) for key, value in torch._dynamo.utils.counters.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = crawl_module(_Block("score_mod"), input_shape=(32, 64))
        report.memory  # noqa: B018 (made on first read)
    assert not caught
    assert shown == fa._WARNINGS_SHOWN
    assert {key: dict(value) for key, value in torch._dynamo.utils.counters.items()} == counters


def test_memory_counts_what_the_kernel_keeps() -> None:
    """Trained, the call keeps q, k, v (views of the projection's output, kept by it already), its result (viewed
    by the transpose and reshape the output projection keeps: one storage) and the float32 log-sum-exp and max
    score of each of its B·H·L rows, plus the one-block mask it makes: the saved bytes are the two projections'
    inputs and output plus ``8·R + 16``."""
    length, width, heads = 32, 64, 4
    report = crawl_module(_Block("global").train(), input_shape=(length, width))
    rows = heads * length
    projections = 4 * (length * width + length * 3 * width + length * width)  # x, qkv's output, out's input
    assert report.memory.saved_activation_bytes == projections + 8 * rows + 16


class _Documents(nn.Module):
    """Document masking: a block mask made in the forward from the traced sizes, its ``mask_mod`` reading the
    forward's document ids (a tensor of the trace)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(64, 192)

    def forward(self, x: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, 4, c // 4).permute(2, 0, 3, 1, 4)

        def same_document(batch: torch.Tensor, head: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> Any:
            return (documents[batch, i] == documents[batch, j]) & (i >= j)

        mask = create_block_mask(same_document, b, None, n, n, device=x.device)
        return flex_attention(q, k, v, block_mask=mask)


def test_a_block_mask_made_in_the_forward() -> None:
    """Traced (was no report: the sizes traced, the mask compiled), the mask made from shapes and counted (``2N``
    FLOPs for ``N = 2·256·256`` positions), the attention reading it (its mask FLOP a score); nothing said."""
    length = 256
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = crawl_module(_Documents(), args=(torch.randn(2, length, 64), torch.zeros(2, length, dtype=torch.long)))
    assert not caught and not report.diagnostics and report.totals.complete
    records = report.records
    made = next(n for n in records if records.nodes[n]["record"].type_name == "create_block_mask")
    attention = next(n for n in records if records.nodes[n]["record"].type_name == "flex_attention")
    assert records.nodes[made]["cost"].flops == 2 * 2 * length * length
    assert made in set(records.predecessors(attention))
