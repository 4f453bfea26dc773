"""Run torchscan over a corpus of models and say which got a report and which are complete.

    python benchmarks/corpus.py                          # every source that is installed
    python benchmarks/corpus.py --source torchvision timm --timm-count 120
    python benchmarks/corpus.py --filter resnet --json results.json

Sources: every torchvision classifier (``classification``), torchvision ``detection``,
``segmentation``, ``video`` and ``optical_flow`` models, ``timm`` models across all its model
modules (when timm is installed, ``pretrained=False``) and Hugging Face architectures built from
small configs (``huggingface``, when transformers is installed). Models are randomly initialised
on the CPU; nothing is downloaded. Per model it prints the capture method, params, GMACs, GFLOPs,
the unknown ops and the analysis time; the last line gives the share of models that got a
report and the share with no unknown op.

``--ratio`` also times, for each model that got a report, the analysis against one plain
``torch.no_grad`` CPU forward of the same model at the same input (batch 1): wall-time medians of
``--repeat`` interleaved rounds after one warm-up each (as ``benchmarks/speed.py ratio``), then per
source the geometric mean of analysis/forward, the counts above 1 and 3 and the ten highest.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import math
import re
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchscan import crawl_module
from torchscan.records import RECORD

sys.path.insert(0, str(Path(__file__).parent))  # the timing speed.py's ratio uses
from speed import median_times, read_whole

SOURCES = ("classification", "detection", "segmentation", "video", "optical_flow", "timm", "huggingface")


@dataclass(frozen=True)
class Case:
    """One model of the corpus: how to build it and what to call it with."""

    source: str
    name: str
    build: Callable[[], nn.Module]
    inputs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of :func:`torchscan.crawl_module` (``input_shape``, ``args``, ``kwargs``, ``dtype``)."""


@dataclass
class Timing:
    """Median analysis and forward wall times of a model, or why there are none (``skipped``); ``full``: the
    analysis with its whole report read (rows, diagnostics, memory section: each made on its first read), ``full_ratio``
    its ratio."""

    analysis: float = 0.0
    forward: float = 0.0
    ratio: float = 0.0
    skipped: str = ""
    full: float = 0.0
    full_ratio: float = 0.0


@dataclass
class Result:
    source: str
    name: str
    ok: bool
    capture: str = ""
    params: int = 0
    macs: int = 0
    flops: int = 0
    unknown: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
    fallbacks: list[str] = field(default_factory=list)
    timing: Timing | None = None


# -- torchvision -------------------------------------------------------------------------------
def _torchvision(sources: Sequence[str]) -> Iterator[Case]:
    import torchvision
    from torchvision import models

    def build(name: str, **kwargs: Any) -> Callable[[], nn.Module]:
        return lambda: models.get_model(name, weights=None, **kwargs).eval()

    if "classification" in sources:
        for name in models.list_models(module=models):
            shape = (3, 299, 299) if name == "inception_v3" else (3, 224, 224)
            yield Case("classification", name, build(name), {"input_shape": shape})
    if "detection" in sources:
        for name in models.list_models(module=models.detection):
            extra: dict[str, Any] = {"weights_backbone": None}
            if not name.startswith("ssd"):
                extra.update(min_size=256, max_size=256)  # small images: the real forward (NMS) is cheap
            size = 300 if name == "ssd300_vgg16" else 320 if name.startswith("ssdlite") else 256
            image = torch.rand(3, size, size)
            yield Case("detection", name, build(name, **extra), {"args": ([image],)})
    if "segmentation" in sources:
        for name in models.list_models(module=models.segmentation):
            yield Case("segmentation", name, build(name, weights_backbone=None), {"input_shape": (3, 224, 224)})
    if "video" in sources:
        for name in models.list_models(module=models.video):
            shape = (3, 16, 224, 224) if name.startswith(("mvit", "s3d")) else (3, 8, 112, 112)
            yield Case("video", name, build(name), {"input_shape": shape})
    if "optical_flow" in sources:
        for name in models.list_models(module=models.optical_flow):
            yield Case("optical_flow", name, build(name), {"input_shape": ((3, 128, 128), (3, 128, 128))})
    del torchvision


# -- timm --------------------------------------------------------------------------------------
_SIZE_WORDS = ("atto", "femto", "pico", "nano", "tiny", "xxs", "xs", "small", "s", "mini", "lite", "b0", "050", "18")


def _size_rank(name: str) -> tuple[int, int, str]:
    words = re.split(r"[_.\-]", name)
    for rank, word in enumerate(_SIZE_WORDS):
        if word in words or any(part.endswith(word) for part in words if len(word) > 2):
            return (rank, len(name), name)
    return (len(_SIZE_WORDS), len(name), name)


def timm_names(count: int) -> list[str]:
    """About ``count`` timm models: the smallest-looking ones of every model module, round robin."""
    import timm

    per_module = {}
    for module in sorted(timm.list_modules()):
        names = sorted((n for n in timm.list_models(module=module) if "." not in n), key=_size_rank)
        if names:
            per_module[module] = names
    chosen: list[str] = []
    round_index = 0
    while len(chosen) < count and any(len(names) > round_index for names in per_module.values()):
        for names in per_module.values():
            if len(names) > round_index and len(chosen) < count:
                chosen.append(names[round_index])
        round_index += 1
    return chosen


def _timm(count: int) -> Iterator[Case]:
    import timm

    for name in timm_names(count):
        try:
            config = timm.models.get_pretrained_cfg(name)
            shape = tuple(config.input_size) if config is not None and config.input_size else (3, 224, 224)
        except Exception:
            shape = (3, 224, 224)
        yield Case(
            "timm", name, lambda name=name: timm.create_model(name, pretrained=False).eval(), {"input_shape": shape}
        )


# -- Hugging Face ------------------------------------------------------------------------------
_SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}


def _hf_cases() -> Iterator[Case]:
    import transformers as hf

    ids = torch.randint(0, 100, (1, 16))
    mask = torch.ones(1, 16, dtype=torch.long)

    def build(model_cls: str, config_cls: str, **config: Any) -> Callable[[], nn.Module]:
        def make() -> nn.Module:
            settings = {"vocab_size": 1000, **config}
            return getattr(hf, model_cls)(getattr(hf, config_cls)(**settings)).eval()

        return make

    text = {"kwargs": {"input_ids": ids, "attention_mask": mask}}
    yield Case("huggingface", "bert (encoder)", build("BertModel", "BertConfig", **_SMALL), text)
    yield Case("huggingface", "roberta (encoder)", build("RobertaModel", "RobertaConfig", **_SMALL), text)
    yield Case(
        "huggingface",
        "distilbert (encoder)",
        build("DistilBertModel", "DistilBertConfig", dim=64, n_layers=2, n_heads=4, hidden_dim=128),
        text,
    )
    yield Case(
        "huggingface",
        "gpt2 (decoder, tied embeddings)",
        build("GPT2LMHeadModel", "GPT2Config", n_embd=64, n_layer=2, n_head=4, n_positions=128),
        {"kwargs": {"input_ids": ids, "return_dict": False}},
    )
    llama = {**_SMALL, "num_key_value_heads": 2, "max_position_embeddings": 128}
    yield Case("huggingface", "llama (decoder, GQA)", build("LlamaForCausalLM", "LlamaConfig", **llama), text)
    yield Case("huggingface", "qwen2 (decoder)", build("Qwen2ForCausalLM", "Qwen2Config", **llama), text)
    yield Case(
        "huggingface",
        "mixtral (mixture of experts)",
        build("MixtralForCausalLM", "MixtralConfig", **llama, num_local_experts=4, num_experts_per_tok=2),
        text,
    )
    yield Case(
        "huggingface",
        "t5 (encoder-decoder)",
        build("T5ForConditionalGeneration", "T5Config", d_model=64, d_ff=128, num_layers=2, num_heads=4, d_kv=16),
        {"kwargs": {"input_ids": ids, "decoder_input_ids": ids[:, :8]}},
    )
    seq2seq = {  # a small encoder-decoder, shared by BART and Whisper
        "d_model": 64,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 128,
        "decoder_ffn_dim": 128,
    }
    bart = {**seq2seq, "max_position_embeddings": 128}
    yield Case("huggingface", "bart (encoder-decoder)", build("BartModel", "BartConfig", **bart), text)
    vision = {**_SMALL, "image_size": 64, "patch_size": 16}
    pixels = {"kwargs": {"pixel_values": torch.rand(1, 3, 64, 64)}}
    yield Case("huggingface", "vit (vision)", build("ViTModel", "ViTConfig", **vision), pixels)
    yield Case(
        "huggingface",
        "convnext (vision)",
        build("ConvNextModel", "ConvNextConfig", hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1]),
        pixels,
    )
    yield Case(
        "huggingface",
        "wav2vec2 (audio)",
        build("Wav2Vec2Model", "Wav2Vec2Config", **_SMALL, conv_dim=(32,) * 7, num_conv_pos_embeddings=16),
        {"kwargs": {"input_values": torch.rand(1, 4000)}},
    )
    whisper = {
        **seq2seq,
        "num_mel_bins": 80,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 1,
        "max_source_positions": 1500,
        "max_target_positions": 64,
    }
    yield Case(
        "huggingface",
        "whisper (audio encoder-decoder)",
        build("WhisperModel", "WhisperConfig", **whisper),
        {"kwargs": {"input_features": torch.rand(1, 80, 3000), "decoder_input_ids": ids[:, :4]}},
    )
    clip_text = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 1000,
    }
    clip_vision = {**vision}

    def clip() -> nn.Module:
        config = hf.CLIPConfig(text_config=clip_text, vision_config=clip_vision, projection_dim=32)
        return hf.CLIPModel(config).eval()

    yield Case(
        "huggingface",
        "clip (vision-text)",
        clip,
        {"kwargs": {"input_ids": ids, "pixel_values": torch.rand(1, 3, 64, 64), "attention_mask": mask}},
    )


# -- running -----------------------------------------------------------------------------------
def cases(sources: Sequence[str], timm_count: int) -> Iterator[Case]:
    try:
        yield from _torchvision(sources)
    except ImportError:
        print("# torchvision is not installed: its models are skipped", file=sys.stderr)
    if "timm" in sources:
        try:
            yield from _timm(timm_count)
        except ImportError:
            print("# timm is not installed: its models are skipped", file=sys.stderr)
    if "huggingface" in sources:
        try:
            yield from _hf_cases()
        except ImportError:
            print("# transformers is not installed: its models are skipped", file=sys.stderr)


def unknown_ops(report: Any) -> dict[str, int]:
    """Calls per op without a formula (``kind:name``)."""
    counter: collections.Counter[str] = collections.Counter()
    for diagnostic in report.diagnostics:
        if diagnostic.code in ("unknown-op", "formula-error"):
            for node in diagnostic.nodes:
                record = report.records.nodes[node][RECORD]
                counter[f"{record.op.removeprefix('call_')}:{record.type_name}"] += 1
    return dict(counter)


def _real(value: Any) -> Any:
    """``value`` with every meta tensor replaced by a random one (floats only: integer values have a meaning)."""
    if isinstance(value, (tuple, list)):
        return type(value)(_real(item) for item in value)
    if isinstance(value, dict):
        return {key: _real(item) for key, item in value.items()}
    if isinstance(value, torch.Tensor) and value.is_meta:
        if not value.is_floating_point():
            raise ValueError(f"meta {value.dtype} input")
        return torch.rand(value.shape, dtype=value.dtype)
    if type(value).__name__ == "TensorSpec":
        raise ValueError("TensorSpec input")
    return value


def real_call(inputs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments of a real batch-1 call matching ``crawl_module``'s ``inputs``
    (``ValueError`` when there is no simple one)."""
    if "input_shape" not in inputs:
        return tuple(_real(inputs.get("args") or ())), _real(dict(inputs.get("kwargs") or {}))
    shape = inputs["input_shape"]
    shapes = shape if shape and isinstance(shape[0], (tuple, list)) else [shape]
    dtype = inputs.get("dtype")
    dtypes = dtype if isinstance(dtype, (tuple, list)) else [dtype or torch.float32] * len(shapes)
    if any(not isinstance(size, int) for one in shapes for size in one):
        raise ValueError("named or tensor input shape")
    return tuple(
        torch.rand(1, *one, dtype=kind) if kind.is_floating_point else torch.zeros(1, *one, dtype=kind)
        for one, kind in zip(shapes, dtypes, strict=True)
    ), {}


def timing(model: nn.Module, case: Case, repeat: int) -> Timing:
    """Median ``crawl_module`` time against one ``no_grad`` forward of the same model and input."""
    try:
        args, kwargs = real_call(case.inputs)
    except ValueError as error:
        return Timing(skipped=f"no simple real input ({error})")

    def forward() -> None:
        with torch.no_grad():
            model(*args, **kwargs)

    try:
        forward()
    except Exception as error:
        return Timing(skipped=f"forward failed: {type(error).__name__}: {str(error)[:100]}")

    def full() -> None:
        read_whole(crawl_module(model, **case.inputs))

    analysis, forward_time, whole = median_times([lambda: crawl_module(model, **case.inputs), forward, full], repeat)
    return Timing(analysis, forward_time, analysis / forward_time, full=whole, full_ratio=whole / forward_time)


def run(case: Case, repeat: int = 0) -> Result:
    """The corpus row of ``case``; with ``repeat``, also its analysis/forward :class:`Timing`."""
    start = time.perf_counter()
    try:
        model = case.build()
        report = crawl_module(model, **case.inputs)
        read_whole(report)  # rows, diagnostics, memory made on their first read: a failure there is the model's row too
    except Exception as error:
        message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if "--traceback" in sys.argv:
            traceback.print_exc()
        return Result(case.source, case.name, ok=False, seconds=time.perf_counter() - start, error=message[:300])
    totals = report.totals
    result = Result(
        case.source,
        case.name,
        ok=True,
        capture=report.context.capture,
        params=totals.params,
        macs=totals.macs,
        flops=totals.flops,
        unknown=unknown_ops(report),
        seconds=time.perf_counter() - start,
        fallbacks=[d.message[:200] for d in report.diagnostics if d.code == "capture-fallback"],
    )
    if repeat:
        result.timing = timing(model, case, repeat)
    return result


def line(result: Result) -> str:
    if not result.ok:
        return f"{result.source:<14} {result.name:<44} FAILED {result.seconds:6.1f}s  {result.error}"
    unknown = ", ".join(f"{name}×{count}" for name, count in sorted(result.unknown.items())) or "-"
    text = (
        f"{result.source:<14} {result.name:<44} {result.capture:<14} {result.params / 1e6:9.2f}M "
        f"{result.macs / 1e9:9.3f} GMACs {result.flops / 1e9:9.3f} GFLOPs {result.seconds:6.1f}s  unknown: {unknown}"
    )
    if (timing := result.timing) is None:
        return text
    if timing.skipped:
        return f"{text}  ratio: skipped, {timing.skipped}"
    return (
        f"{text}  ratio: {timing.ratio:.2f} ({timing.analysis:.3f}s / {timing.forward:.3f}s), "
        f"read whole {timing.full_ratio:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--timm-count", type=int, default=120, help="timm models to run (default 120)")
    parser.add_argument("--filter", default=None, help="only models whose name contains this")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--traceback", action="store_true", help="print the traceback of failures")
    parser.add_argument("--shard", default="0/1", help="run every N-th model from the I-th: I/N (for parallel runs)")
    parser.add_argument("--ratio", action="store_true", help="also time the analysis against one CPU forward")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved timing rounds of --ratio (default 3)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    results: list[Result] = []
    shard, shards = (int(part) for part in args.shard.split("/"))
    for index, case in enumerate(cases(args.source, args.timm_count)):
        if (args.filter and args.filter not in case.name) or index % shards != shard:
            continue
        result = run(case, args.repeat if args.ratio else 0)
        results.append(result)
        print(line(result), flush=True)
        gc.collect()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            rows = [asdict(result) for result in results]
            if not args.ratio:  # the rows as they were before --ratio
                for row in rows:
                    del row["timing"]
            json.dump(rows, handle, indent=1)
    print(summary(results))
    if args.ratio:
        print(ratio_summary(results))
    return 0


def ratio_summary(results: Sequence[Result]) -> str:
    """Per source: the geometric mean of analysis/forward, the counts above 1 and 3, the ten highest."""
    lines = [""]
    for source in dict.fromkeys(result.source for result in results):
        timings = [(r.name, r.timing) for r in results if r.source == source and r.timing]
        skipped = [f"{name} ({t.skipped})" for name, t in timings if t.skipped]
        for label, ratio_of in (("", lambda t: t.ratio), (" with the whole report read", lambda t: t.full_ratio)):
            ratios = sorted(((ratio_of(t), name) for name, t in timings if not t.skipped), reverse=True)
            if not ratios:
                continue
            mean = math.exp(statistics.fmean(math.log(value) for value, _ in ratios))
            lines.append(
                f"RATIO {source}{label}: geometric mean of analysis/forward {mean:.3f} over {len(ratios)} models, "
                f"{sum(value > 1 for value, _ in ratios)} above 1, {sum(value > 3 for value, _ in ratios)} above 3"
            )
            lines.append("  top 10: " + ", ".join(f"{name} {value:.2f}" for value, name in ratios[:10]))
        if skipped:
            lines.append(f"  {source} ratio skipped: " + ", ".join(skipped))
    return "\n".join(lines)


def summary(results: Sequence[Result]) -> str:
    """Per-source and overall counts, captures used and the unknown ops seen."""
    if not results:
        return "no models run"
    lines = ["", "source          models  report  complete"]
    for source in dict.fromkeys(result.source for result in results):
        group = [result for result in results if result.source == source]
        ok = sum(result.ok for result in group)
        complete = sum(result.ok and not result.unknown for result in group)
        lines.append(f"{source:<14} {len(group):7d} {ok:7d} {complete:9d}")
    captures = collections.Counter(result.capture for result in results if result.ok)
    lines.append("captures: " + ", ".join(f"{name} {count}" for name, count in captures.most_common()))
    ops: collections.Counter[str] = collections.Counter()
    models_per_op: collections.Counter[str] = collections.Counter()
    for result in results:
        ops.update(result.unknown)
        models_per_op.update(result.unknown.keys())
    if ops:
        lines.append(
            "unknown ops (models, calls): "
            + ", ".join(f"{op} ({models_per_op[op]}, {ops[op]})" for op, _ in models_per_op.most_common())
        )
    failed = [f"{result.source}/{result.name}" for result in results if not result.ok]
    if failed:
        lines.append("no report: " + ", ".join(failed))
    total = len(results)
    reported = sum(result.ok for result in results)
    complete = sum(result.ok and not result.unknown for result in results)
    lines.append(
        f"SUMMARY: {reported}/{total} models got a report ({100 * reported / total:.1f}%), "
        f"{complete}/{total} with no unknown op ({100 * complete / total:.1f}%), "
        f"{sum(r.seconds for r in results):.0f} s in all"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
