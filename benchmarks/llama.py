"""Analyse a Llama-2-70B-shaped decoder and a Mixtral-8x7B-shaped MoE built on the meta device.

    python benchmarks/llama.py                 # both models, 3 measurements each (a fresh process each)
    python benchmarks/llama.py llama --repeat 5
    python benchmarks/llama.py --hf            # also transformers' LlamaForCausalLM (when installed)

Each measurement runs in its own subprocess, so the peak RSS (``getrusage``) is that of one
analysis: import torch, build the model under ``torch.device("meta")`` (no storage), then
``crawl_module`` + the full per-layer table (``render_table``, every depth). Printed: median wall
time of the analysis, peak RSS of the process (and of the same process before the analysis), the
exact parameter count and the MACs next to a closed form written below, asserted equal; and
PyTorch's ``FlopCounterMode`` on the same meta model, for scale.

Goals (issue 7): Llama-2-70B under 10 s and 1.5 GiB peak RSS on a 2-core machine.

MoE convention: routing is data-dependent and a static analysis has no data, so the MoE block
here is written the way a dropless, statically shaped MoE runs (sort-based dispatch, as in
MegaBlocks/GShard with capacity factor 1): every token is routed to exactly ``top_k`` experts
and, tokens being sorted by expert, each expert processes ``tokens·top_k/experts`` of them (a
balanced load). The total expert cost ``tokens·top_k·(3·hidden·intermediate)`` MACs holds for
*any* dropless routing; only its split between the experts' rows assumes balance. Experts that
are not routed to cost nothing, so counting ``2·params·tokens`` would over-count 4x here.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Config:
    """Shapes of a Llama-style decoder (``experts > 0``: a Mixtral-style MoE MLP)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    sequence: int
    experts: int = 0
    top_k: int = 0
    params: int | None = None
    """The published parameter count, checked exactly."""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


LLAMA_2_70B = Config("Llama-2-70B", 8192, 80, 64, 8, 28672, 32000, 4096, params=68_976_648_192)
MIXTRAL_8X7B = Config("Mixtral-8x7B", 4096, 32, 32, 8, 14336, 32000, 4096, experts=8, top_k=2, params=46_702_792_704)
CONFIGS = {"llama": LLAMA_2_70B, "mixtral": MIXTRAL_8X7B}


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Rotary(nn.Module):
    """Rotary position embedding: ``cos``/``sin`` of position × inverse frequency (a buffer)."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim), False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
        freqs = positions[:, None] * self.inv_freq[None, :]
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


class Attention(nn.Module):
    """Grouped-query causal self-attention with rotary embeddings, no biases."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = config.heads, config.kv_heads, config.head_dim
        self.q_proj = nn.Linear(config.hidden, config.heads * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden, config.kv_heads * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden, config.kv_heads * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.heads * config.head_dim, config.hidden, bias=False)
        self.rotary = Rotary(config.head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rotary(q)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))


class MLP(nn.Module):
    """SwiGLU: ``down(silu(gate(x)) · up(x))``."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    """Top-k routed SwiGLU experts, dropless with static shapes (module docstring's convention).

    The ``tokens·top_k`` (token, expert) pairs are sorted by expert and cut into ``experts``
    equal chunks, one per expert; outputs are weighted by the routing probabilities and summed
    back per token.
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.top_k = config.top_k
        self.gate = nn.Linear(config.hidden, config.experts, bias=False)
        self.experts = nn.ModuleList(MLP(config.hidden, config.intermediate) for _ in range(config.experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        weights, chosen = torch.topk(F.softmax(self.gate(tokens), dim=-1), self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        order = torch.argsort(chosen.reshape(-1))
        token_of = order // self.top_k
        routed = torch.index_select(tokens, 0, token_of)
        chunks = routed.chunk(len(self.experts))  # indexed, not iterated: torch.fx can trace it
        outputs = torch.cat([expert(chunks[position]) for position, expert in enumerate(self.experts)])
        outputs = outputs * weights.reshape(-1, 1)[order].to(outputs.dtype)
        return torch.zeros_like(tokens).index_add(0, token_of, outputs).reshape(shape)


class DecoderLayer(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.input_layernorm = nn.RMSNorm(config.hidden, eps=1e-5)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden, eps=1e-5)
        self.mlp = MoE(config) if config.experts else MLP(config.hidden, config.intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    """Token ids ``[batch, sequence]`` → logits ``[batch, sequence, vocab]`` (untied head)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab, config.hidden)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.layers))
        self.norm = nn.RMSNorm(config.hidden, eps=1e-5)
        self.lm_head = nn.Linear(config.hidden, config.vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


def closed_form_macs(config: Config, tokens: int) -> dict[str, int]:
    """MACs by term for one forward over ``tokens`` tokens (batch 1), by the torchscan conventions.

    - projections: q, o ``h·h``; k, v ``h·h_kv`` (``h_kv = kv_heads·head_dim``); SwiGLU ``3·h·i``
      per token (MoE: ``top_k`` experts per token, plus the ``h·experts`` router);
    - attention: ``q kᵀ`` and ``attn v`` over all ``L²`` pairs (causal counted in full, as
      FlopCounterMode): ``2·L²·heads·head_dim = 2·L²·h`` per layer;
    - RMSNorm with a weight: 2 MACs per element (square-accumulate, scale), 2 per layer + final;
    - head: ``L·h·vocab``. Embedding, rotary (mul/add: FLOPs, not MACs), SiLU: no MACs.
    """
    h, kv = config.hidden, config.kv_heads * config.head_dim
    mlp = 3 * h * config.intermediate
    if config.experts:
        mlp = config.top_k * mlp + h * config.experts
    per_token = 2 * h * h + 2 * h * kv + mlp
    return {
        "projections": config.layers * tokens * per_token,
        "attention": config.layers * 2 * tokens * tokens * h,
        "rmsnorm": (2 * config.layers + 1) * 2 * tokens * h,
        "head": tokens * h * config.vocab,
    }


def build(config: Config, hf: bool) -> nn.Module:
    with torch.device("meta"):
        if not hf:
            return Decoder(config).to(torch.bfloat16).eval()
        from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

        common = dict(
            hidden_size=config.hidden,
            num_hidden_layers=config.layers,
            num_attention_heads=config.heads,
            num_key_value_heads=config.kv_heads,
            intermediate_size=config.intermediate,
            vocab_size=config.vocab,
            torch_dtype=torch.bfloat16,
        )
        if config.experts:
            hf_config = MixtralConfig(num_local_experts=config.experts, num_experts_per_tok=config.top_k, **common)
            return MixtralForCausalLM(hf_config).to(torch.bfloat16).eval()
        return LlamaForCausalLM(LlamaConfig(**common)).to(torch.bfloat16).eval()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def child(name: str, tool: str, hf: bool) -> dict[str, object]:
    """One measurement (run in a fresh process)."""
    config = CONFIGS[name]
    model = build(config, hf)
    ids = (1, config.sequence)
    before = _peak_rss()
    if tool == "flopcounter":
        from torch.utils.flop_counter import FlopCounterMode

        start = time.perf_counter()
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(ids, dtype=torch.long, device="meta"))
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "rss": _peak_rss(), "rss_before": before, "macs": counter.get_total_flops() // 2}
    from torchscan import crawl_module
    from torchscan.render.table import render_table

    start = time.perf_counter()
    report = crawl_module(model, ids[1:], dtype=torch.long)
    table = render_table(report)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rss": _peak_rss(),
        "rss_before": before,
        "params": report.totals.params,
        "macs": report.totals.macs,
        "flops": report.totals.flops,
        "complete": report.totals.complete,
        "rows": len(report.rows),
        "nodes": report.records.number_of_nodes(),
        "table_lines": table.count("\n") + 1,
        "diagnostics": [d.code for d in report.diagnostics],
    }


def run(name: str, tool: str, hf: bool) -> dict[str, object]:
    command = [sys.executable, __file__, name, "--child", tool] + ["--hf"] * hf
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def report(name: str, repeat: int, hf: bool) -> None:
    config = CONFIGS[name]
    runs, counters = [], []
    for _ in range(repeat):  # interleaved: torchscan, FlopCounterMode, torchscan, ...
        runs.append(run(name, "torchscan", hf))
        counters.append(run(name, "flopcounter", hf))
    last = runs[-1]
    terms = closed_form_macs(config, config.sequence)
    expected = sum(terms.values())
    label = f"{config.name}{' (transformers)' if hf else ''}"
    print(f"## {label}: {config}")
    print(
        f"torchscan: {statistics.median(r['seconds'] for r in runs):.2f} s (median of {repeat}, "
        f"min {min(r['seconds'] for r in runs):.2f}), peak RSS {gib(max(r['rss'] for r in runs))} "
        f"(process before the analysis: {gib(max(r['rss_before'] for r in runs))}); "
        f"{last['nodes']} graph nodes, {last['rows']} rows, {last['table_lines']} table lines, "
        f"diagnostics {last['diagnostics']}"
    )
    print(
        f"FlopCounterMode: {statistics.median(c['seconds'] for c in counters):.2f} s, peak RSS "
        f"{gib(max(c['rss'] for c in counters))}, MACs {counters[-1]['macs']:,}"
    )
    print(f"params   {last['params']:,} (published {config.params:,})")
    print(f"MACs     {last['macs']:,} (torchscan, complete={last['complete']})")
    print(f"closed   {expected:,} = " + " + ".join(f"{k} {v:,}" for k, v in terms.items()))
    print(f"2·P·L    {2 * config.params * config.sequence:,} FLOPs (the rule of thumb, for comparison)")
    print(f"GFLOPs   {last['flops'] / 1e9:,.1f}\n", flush=True)
    if not hf:
        assert last["params"] == config.params, (last["params"], config.params)
        assert last["macs"] == expected, (last["macs"], expected, last["macs"] - expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", choices=[[], *CONFIGS], default=[])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hf", action="store_true", help="also transformers' Llama/Mixtral (when installed)")
    parser.add_argument("--child", choices=["torchscan", "flopcounter"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = args.models or list(CONFIGS)
    if args.child:
        print(json.dumps(child(names[0], args.child, args.hf)))
        return
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{len(__import__('os').sched_getaffinity(0))} cores; batch 1, bfloat16 on meta\n"
    )
    for name in names:
        report(name, args.repeat, hf=False)
    if args.hf:
        try:
            import transformers  # noqa: F401
        except ImportError:
            print("transformers is not installed: skipped the LlamaForCausalLM / MixtralForCausalLM runs")
            return
        for name in names:
            report(name, args.repeat, hf=True)


if __name__ == "__main__":
    main()
